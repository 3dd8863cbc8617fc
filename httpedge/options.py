"""How both services read their settings: one table of options per service, flag over
environment variable over default, ``--help`` generated from the table. Pure: each entry point
passes its argv and environment in; nothing here reads ``os.environ``.

An :class:`Option` names the field of the service's configuration record it sets, its flag (None:
environment only, for secrets that must not show in a process listing), its environment
variable, the parser that turns text into the value (raising ``ValueError`` with a message that
starts "must ..."), and its help. Defaults are the record's own (one definition, with the reason
for each beside it in the service's config module); ``--help`` and docs/configuration.md show them.

A value that does not parse is an :class:`OptionError` naming where it came from:
``BFF_PORT must be a TCP port (0 to 65535), got '70000'``. An empty environment variable counts
as unset (a compose file's ``FOO=`` leaves the default).
"""

from __future__ import annotations

import argparse
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from httpedge.forwarded import parse_networks

LOG_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_DIGITS = re.compile(r"[0-9]+")


class OptionError(ValueError):
    """A setting that cannot be used; the message names the flag or variable it came from."""


@dataclass(frozen=True)
class Option:
    field: str  # the configuration record's field ("db." prefix: the database settings)
    flag: str | None  # None: environment only (a secret must not show in argv)
    env: str
    parse: Callable[[str], Any]
    help: str
    # How --help and docs/configuration.md show the default when the record's value does not
    # say it well (None as "one per core", an empty tuple as "none").
    default_text: str | None = None
    secret: bool = False  # never shown, in --help or anywhere else

    @property
    def names(self) -> str:
        return self.env if self.flag is None else f"{self.flag} / {self.env}"


def show_default(option: Option, default: object) -> str:
    """The default as --help and the settings tables of docs/configuration.md show it."""
    if option.default_text is not None:
        return option.default_text
    if isinstance(default, bool):
        return "on" if default else "off"
    if isinstance(default, float):
        return f"{default:g}"
    if isinstance(default, tuple | list):
        return ",".join(map(str, default)) or "none"
    return str(default)


def build_parser(
    options: Sequence[Option],
    *,
    prog: str,
    description: str,
    defaults: Callable[[Option], object],
) -> argparse.ArgumentParser:
    """An argparse parser with one flag per option that has one; the help of each names its
    environment variable and default, and the epilog lists the variables without a flag."""
    env_only = [o for o in options if o.flag is None]
    epilog = None
    if env_only:
        epilog = "Environment only: " + "; ".join(
            f"{o.env}: {o.help} (default {show_default(o, defaults(o))})" for o in env_only
        )
    parser = argparse.ArgumentParser(prog=prog, description=description, epilog=epilog)
    for option in options:
        if option.flag is None:
            continue
        shown = "required" if option.secret else f"default {show_default(option, defaults(option))}"
        parser.add_argument(
            option.flag,
            dest=option.field,
            metavar="VALUE",
            help=f"{option.help} [env {option.env}; {shown}]",
        )
    return parser


def resolve(
    options: Iterable[Option], flags: Mapping[str, object], environ: Mapping[str, str]
) -> dict[str, Any]:
    """The value of every option given, by field: its flag's (text, or a value already typed
    by a caller) over its environment variable's; options given neither way are left out."""
    values: dict[str, Any] = {}
    for option in options:
        raw = flags.get(option.field)
        source = option.flag or option.env
        if raw is None:
            raw = environ.get(option.env) or None
            source = option.env
        if raw is None:
            continue
        if not isinstance(raw, str):
            values[option.field] = raw
            continue
        try:
            values[option.field] = option.parse(raw)
        except ValueError as exc:
            shown = "" if option.secret else f", got {raw!r}"
            raise OptionError(f"{source} {exc}{shown}") from None
    return values


def read(
    options: Sequence[Option],
    argv: Sequence[str],
    environ: Mapping[str, str],
    *,
    prog: str,
    description: str,
    defaults: Callable[[Option], object],
) -> dict[str, Any]:
    """Flags from ``argv`` over ``environ``: the values given, by field (see :func:`resolve`)."""
    parser = build_parser(options, prog=prog, description=description, defaults=defaults)
    return resolve(options, vars(parser.parse_args(list(argv))), environ)


def listener_options(prefix: str, *, exempt: str, socket_buffer: str) -> tuple[Option, ...]:
    """The settings of the shared listener (:class:`httpedge.listener.EdgeLimits`), the same in
    both services but for the variables' ``prefix`` and who is exempt and which buffers the
    socket-buffer bound covers. Their defaults and reasons are in each service's config module:
    what the limits must leave room for differs between the two."""
    return (
        Option(
            "header_timeout_s",
            "--header-timeout",
            f"{prefix}_HEADER_TIMEOUT",
            seconds,
            "seconds a connection may take to send a request's headers (also the keep-alive idle)",
        ),
        Option(
            "max_connections",
            "--max-connections",
            f"{prefix}_MAX_CONNECTIONS",
            whole(1),
            "open client connections; more are closed at once",
        ),
        Option(
            "max_connections_per_client",
            "--max-connections-per-client",
            f"{prefix}_MAX_CONNECTIONS_PER_CLIENT",
            whole(0),
            "open connections from one client address; more are closed at once (0: no limit)",
        ),
        Option(
            "connection_limit_exempt",
            "--connection-limit-exempt",
            f"{prefix}_CONNECTION_LIMIT_EXEMPT",
            parse_networks,
            f"comma-separated addresses/CIDRs ({exempt}) not held to the per-client limit",
            default_text="none",
        ),
        Option(
            "socket_buffer",
            "--socket-buffer",
            f"{prefix}_SOCKET_BUFFER",
            whole(0),
            f"bytes {socket_buffer} may hold (0: the kernel's own, growing to megabytes)",
        ),
    )


# -- parsers: text in, a value out, or ValueError("must ...") --------------------------------


def port(text: str) -> int:
    if not _DIGITS.fullmatch(text.strip()) or int(text) > 65535:
        raise ValueError("must be a TCP port (0 to 65535)")
    return int(text)


def whole(minimum: int) -> Callable[[str], int]:
    """A whole number of at least ``minimum`` (ASCII digits only)."""

    def parse(text: str) -> int:
        if not _DIGITS.fullmatch(text.strip()):
            raise ValueError("must be a whole number")
        value = int(text)
        if value < minimum:
            raise ValueError(f"must be at least {minimum}")
        return value

    return parse


def seconds(text: str) -> float:
    """A positive, finite number of seconds."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError("must be a number of seconds") from None
    if not value > 0 or math.isinf(value):
        raise ValueError("must be a positive number of seconds")
    return value


def on_off(text: str) -> bool:
    value = text.strip().lower()
    if value in ("on", "1", "true", "yes"):
        return True
    if value in ("off", "0", "false", "no"):
        return False
    raise ValueError("must be on or off")


def log_level(text: str) -> str:
    level = text.strip().upper()
    if level not in LOG_LEVELS:
        raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
    return level


def choice(allowed: Sequence[str]) -> Callable[[str], str]:
    """One of ``allowed`` (case-insensitive)."""

    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return value

    return parse


def text(value: str) -> str:
    return value


def comma_list(value: str) -> tuple[str, ...]:
    """Comma-separated items, blanks dropped."""
    return tuple(item.strip() for item in value.split(",") if item.strip())
