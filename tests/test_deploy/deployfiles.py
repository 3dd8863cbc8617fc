"""Readers for the deployment files and for what the services really accept.

There is no container engine here, so the tests read ``Dockerfile`` and ``compose.yaml`` and
hold every name in them against the project: the files they copy, the console scripts they
run, and the settings they pass, tried on the services' own configuration loaders (the same
functions their ``__main__`` calls), never against a list kept in the tests.
"""

from __future__ import annotations

import configparser
import json
import re
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bff.__main__ import load_config as bff_load_config
from server.__main__ import load_config as api_load_config

ROOT = Path(__file__).resolve().parents[2]


# -- Dockerfile --------------------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    args: str


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def read_dockerfile(path: Path = ROOT / "Dockerfile") -> list[Stage]:
    """Stages with their instructions; continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    assert not pending, "Dockerfile ends inside a continued line"
    stages: list[Stage] = []
    for text in logical:
        keyword, _, args = text.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = args.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name))
        else:
            assert stages, f"{keyword} before FROM"
            stages[-1].instructions.append(Instruction(keyword, args.strip()))
    return stages


def exec_form(args: str) -> list[str]:
    """``["a", "b"]`` (exec form) or a shell string (shell form, split like a shell)."""
    if args.startswith("["):
        value = json.loads(args)
        assert isinstance(value, list)
        return [str(v) for v in value]
    return shlex.split(args)


def split_options(args: str) -> tuple[dict[str, str], str]:
    """``--a=1 --b=2 REST`` -> ({"a": "1", "b": "2"}, "REST")."""
    options: dict[str, str] = {}
    rest = args
    while rest.startswith("--"):
        word, _, rest = rest.partition(" ")
        key, _, value = word[2:].partition("=")
        options[key] = value
        rest = rest.strip()
    return options, rest


def env_instruction(args: str) -> dict[str, str]:
    values = {}
    for word in shlex.split(args):
        key, sep, value = word.partition("=")
        assert sep, f"ENV in the legacy 'KEY value' form: {args!r}"
        values[key] = value
    return values


def healthcheck_command(args: str) -> list[str]:
    """The command of ``HEALTHCHECK [options] CMD ...`` (exec form, or a shell string)."""
    _, rest = split_options(args)
    keyword, _, command = rest.partition(" ")
    assert keyword.upper() == "CMD", f"HEALTHCHECK without CMD: {args!r}"
    command = command.strip()
    return exec_form(command) if command.startswith("[") else ["/bin/sh", "-c", command]


# -- compose.yaml ------------------------------------------------------------------------------

_VARIABLE = re.compile(r"\$(\$|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\})")


def read_compose(path: Path = ROOT / "compose.yaml") -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def variables(text: str) -> set[str]:
    """The ``${NAME...}`` variables compose will substitute in ``text``."""
    return {m.group(2) for m in _VARIABLE.finditer(text) if m.group(2)}


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's substitution: ``${X}``, ``${X:-default}``, ``${X:?error}``, ``$$``."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(1) == "$":
            return "$"
        name, operator, word = match.group(2), match.group(3), match.group(4)
        current = env.get(name)
        if operator in (":-", "-") and not current:
            return word or ""
        if operator in (":?", "?") and not current:
            raise AssertionError(f"compose would stop: {name} unset ({word})")
        return current or ""

    return _VARIABLE.sub(substitute, value)


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"{path.name}: not NAME=VALUE: {line!r}"
            values[key.strip()] = value.strip()
    return values


def service_environment(service: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) for item in raw)
    return {str(k): interpolate(str(v), env) for k, v in raw.items()}


def command_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return shlex.split(value)
    return [str(v) for v in value]


# -- the services' own configuration -------------------------------------------------------------


def console_scripts() -> dict[str, str]:
    """``name -> module:function`` from setup.cfg's entry points."""
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg", encoding="utf-8")
    scripts = {}
    for line in parser["options.entry_points"]["console_scripts"].strip().splitlines():
        name, _, target = line.partition("=")
        scripts[name.strip()] = target.strip()
    return scripts


def packages_to_install() -> list[str]:
    """Top-level packages setup.cfg's find directive includes (``xlsx``, not ``xlsx.*``)."""
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg", encoding="utf-8")
    include = parser["options.packages.find"]["include"].split()
    return [name for name in include if "." not in name and "*" not in name]


def load_api(argv: list[str], env: Mapping[str, str]) -> Any:
    return api_load_config(argv, env)


def load_bff(argv: list[str], env: Mapping[str, str]) -> Any:
    return bff_load_config(argv, env)


Loader = Callable[[list[str], Mapping[str, str]], Any]

# Which configuration loader each console script's module runs.
LOADERS: dict[str, Loader] = {"server.__main__": load_api, "bff.__main__": load_bff}


def loader_for(command: list[str]) -> tuple[str, Loader, list[str]]:
    """(module, loader, arguments) for a container command naming one of our scripts."""
    assert command, "no command"
    scripts = console_scripts()
    assert command[0] in scripts, f"{command[0]!r} is not a console script of setup.cfg"
    module = scripts[command[0]].partition(":")[0]
    assert module in LOADERS, f"{command[0]} runs {module}, which is not the API or the BFF"
    return module, LOADERS[module], command[1:]


PROBE_VALUE = "x-probe"


def reads(loader: Loader, argv: list[str], env: Mapping[str, str], name: str) -> bool:
    """Does the service read environment variable ``name``? It does when setting it to
    something else, or leaving it out, changes the configuration or makes it refuse."""
    baseline = loader(argv, env)
    others = {k: v for k, v in env.items() if k != name}
    for variant in (others, {**others, name: PROBE_VALUE}):
        try:
            if loader(argv, variant) != baseline:
                return True
        except ValueError:  # both services' ConfigError is a ValueError
            return True
    return False
