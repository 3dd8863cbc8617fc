"""``python -m server`` / ``xlsx-export-api``: the export API as a process.

Configuration is read here and nowhere else: each setting has a flag and an environment
variable (the flag wins), with the defaults of :mod:`server.config`. SIGTERM and SIGINT stop
accepting connections, let running exports finish within the grace period, abort the rest
and exit 0.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from httpedge import options
from httpedge.forwarded import parse_networks
from httpedge.options import Option
from server.app import ExportApi
from server.catalog import Catalog, CatalogError, catalog_for
from server.config import ENCRYPT_MODES, ApiConfig, DbSettings
from server.workers import WorkersFailed

OPTIONS: tuple[Option, ...] = (
    Option("host", "--host", "API_HOST", options.text, "address to listen on"),
    Option("port", "--port", "API_PORT", options.port, "TCP port to listen on (0: any free port)"),
    Option("db.host", "--mssql-host", "MSSQL_HOST", options.text, "SQL Server host"),
    Option("db.port", "--mssql-port", "MSSQL_PORT", options.port, "SQL Server TCP port"),
    Option("db.user", "--mssql-user", "MSSQL_USER", options.text, "SQL Server login"),
    Option(
        "db.password",
        "--mssql-password",
        "MSSQL_PASSWORD",
        options.text,
        "password (prefer the env)",
        secret=True,
    ),
    Option(
        "password_file",
        "--mssql-password-file",
        "MSSQL_PASSWORD_FILE",
        options.text,
        "a file holding the password (Docker and Kubernetes secrets); instead of MSSQL_PASSWORD",
        default_text="none",
    ),
    Option("db.database", "--mssql-database", "MSSQL_DATABASE", options.text, "database name"),
    Option(
        "db.encrypt",
        "--mssql-encrypt",
        "MSSQL_ENCRYPT",
        options.choice(ENCRYPT_MODES),
        "encryption to the database: off, on (TLS negotiated in PRELOGIN, TDS 7.x) or strict"
        " (TDS 8.0: TLS from the first byte)",
    ),
    Option(
        "db.ca_file",
        "--mssql-ca-file",
        "MSSQL_CA_FILE",
        options.text,
        "PEM file of the CAs the database's certificate must chain to",
        default_text="the system's trust store",
    ),
    Option(
        "db.host_name_in_certificate",
        "--mssql-host-name-in-certificate",
        "MSSQL_HOST_NAME_IN_CERTIFICATE",
        options.text,
        "the host name the certificate must carry, when the database is reached by another",
        default_text="the database host",
    ),
    Option(
        "db.trust_server_certificate",
        "--mssql-trust-server-certificate",
        "MSSQL_TRUST_SERVER_CERTIFICATE",
        options.on_off,
        "encrypt without verifying the certificate (warned about: anyone on the path can pose as"
        " the database)",
    ),
    Option(
        "db.login_timeout_s",
        "--mssql-login-timeout",
        "MSSQL_LOGIN_TIMEOUT",
        options.seconds,
        "seconds for connect plus login",
    ),
    Option(
        "db.packet_size",
        "--mssql-packet-size",
        "MSSQL_PACKET_SIZE",
        options.whole(1),
        "TDS packet size asked for at login",
    ),
    Option(
        "catalog",
        "--catalog",
        "API_CATALOG",
        options.text,
        "the report catalog, a TOML file (docs/catalog.md); SIGHUP reloads it",
        default_text="the built-in demo reports",
    ),
    Option(
        "procedure",
        "--procedure",
        "API_PROCEDURE",
        options.text,
        "the built-in demo report's procedure (a catalog file names its own)",
    ),
    Option("pool_min", "--pool-min", "API_POOL_MIN", options.whole(0), "idle connections kept"),
    Option(
        "pool_max", "--pool-max", "API_POOL_MAX", options.whole(1), "max connections = max exports"
    ),
    Option(
        "pool_idle_timeout_s",
        "--pool-idle-timeout",
        "API_POOL_IDLE_TIMEOUT",
        options.seconds,
        "seconds before an idle connection above the minimum is closed",
    ),
    Option(
        "default_row_count",
        "--default-row-count",
        "API_DEFAULT_ROW_COUNT",
        options.whole(1),
        "the built-in demo report's rowCount when absent",
    ),
    Option(
        "max_row_count",
        "--max-row-count",
        "API_MAX_ROW_COUNT",
        options.whole(1),
        "the built-in demo report's largest rowCount",
    ),
    Option(
        "max_rows_per_sheet",
        "--max-rows-per-sheet",
        "API_MAX_ROWS_PER_SHEET",
        options.whole(1),
        "rows per worksheet (header included) before rolling over to a new sheet",
    ),
    Option(
        "first_row_timeout_s",
        "--first-row-timeout",
        "API_FIRST_ROW_TIMEOUT",
        options.seconds,
        "seconds to wait for the first row",
    ),
    Option(
        "row_timeout_s",
        "--row-timeout",
        "API_ROW_TIMEOUT",
        options.seconds,
        "seconds of database silence allowed between rows",
    ),
    Option(
        "client_write_timeout_s",
        "--client-write-timeout",
        "API_CLIENT_WRITE_TIMEOUT",
        options.seconds,
        "seconds a client may accept no data before the export is aborted",
    ),
    Option(
        "cancel_timeout_s",
        "--cancel-timeout",
        "API_CANCEL_TIMEOUT",
        options.seconds,
        "seconds to wait for the database to acknowledge a cancel",
    ),
    Option(
        "poll_interval_s",
        "--poll-interval",
        "API_POLL_INTERVAL",
        options.seconds,
        "seconds between cancel/timeout checks while a database read waits",
    ),
    Option(
        "fetch_batch_rows",
        "--fetch-batch-rows",
        "API_FETCH_BATCH_ROWS",
        options.whole(1),
        "rows per fetch between cancel checks",
    ),
    Option(
        "fast_rows",
        "--fast-rows",
        "API_FAST_ROWS",
        options.on_off,
        "decode rows with the fast row path where the result set allows (on/off)",
    ),
    Option(
        "compiled_rows",
        "--compiled-rows",
        "API_COMPILED_ROWS",
        options.on_off,
        "write the fast path's rows with the compiled row code where it is built (on/off)",
    ),
    Option(
        "queue_chunks",
        "--queue-chunks",
        "API_QUEUE_CHUNKS",
        options.whole(1),
        "~64 KiB chunks buffered between the database reader and the client",
    ),
    Option(
        "workers",
        "--workers",
        "API_WORKERS",
        options.whole(0),
        "worker processes running the exports (0: on threads of this process, for debugging)",
        default_text="one per core",
    ),
    Option(
        "worker_silence_limit_s",
        "--worker-silence-limit",
        "API_WORKER_SILENCE_LIMIT",
        options.seconds,
        "seconds a worker may say nothing before it is killed and replaced",
    ),
    Option(
        "memory_log_every_rows",
        "--memory-log-every",
        "API_MEMORY_LOG_EVERY",
        options.whole(0),
        "log RSS every N rows (0: only at start and end)",
    ),
    Option(
        "retry_after_s",
        "--retry-after",
        "API_RETRY_AFTER",
        options.whole(1),
        "Retry-After seconds on 503 answers",
    ),
    Option(
        "shutdown_grace_s",
        "--shutdown-grace",
        "API_SHUTDOWN_GRACE",
        options.seconds,
        "seconds running exports get to finish after SIGTERM",
    ),
    *options.listener_options(
        "API",
        exempt="the BFFs'",
        socket_buffer="each send/receive buffer of a client connection, and the receive buffer "
        "of a database connection,",
    ),
    Option(
        "readiness_timeout_s",
        "--readiness-timeout",
        "API_READINESS_TIMEOUT",
        options.seconds,
        "seconds /readyz waits for a database round trip",
    ),
    Option(
        "trusted_proxies",
        "--trusted-proxies",
        "API_TRUSTED_PROXIES",
        parse_networks,
        "comma-separated proxy addresses/CIDRs whose X-Forwarded-For is logged",
        default_text="none",
    ),
    Option(
        "log_level", "--log-level", "LOG_LEVEL", options.log_level, "DEBUG, INFO, WARNING, ERROR"
    ),
)


class ConfigError(ValueError):
    """A flag or environment variable with a value that cannot be used."""


def _default(option: Option) -> Any:
    section, _, name = option.field.rpartition(".")
    record: Any = DbSettings() if section == "db" else ApiConfig()
    return getattr(record, name)


def load_config(argv: Sequence[str], environ: Mapping[str, str]) -> ApiConfig:
    """Flags over environment over defaults; raises :class:`ConfigError` naming the culprit."""
    try:
        given = options.read(
            OPTIONS,
            argv,
            environ,
            prog="python -m server",
            description="Export API: streams stored procedures' results as .xlsx downloads.",
            defaults=_default,
        )
    except options.OptionError as exc:
        raise ConfigError(str(exc)) from None
    password_file = given.get("password_file")
    db_values = {k.removeprefix("db."): v for k, v in given.items() if k.startswith("db.")}
    api_values = {k: v for k, v in given.items() if not k.startswith("db.")}
    if password_file is not None:
        if db_values.get("password"):
            raise ConfigError("give the password once: MSSQL_PASSWORD or MSSQL_PASSWORD_FILE")
        db_values["password"] = _read_secret(password_file)
    if not db_values.get("password"):
        raise ConfigError(
            "the database password is required: MSSQL_PASSWORD_FILE (a file) or MSSQL_PASSWORD"
        )
    config = replace(ApiConfig(), db=replace(DbSettings(), **db_values), **api_values)
    if config.pool_min > config.pool_max:
        raise ConfigError(f"pool minimum {config.pool_min} exceeds maximum {config.pool_max}")
    if config.default_row_count > config.max_row_count:
        raise ConfigError(
            f"default row count {config.default_row_count} exceeds maximum {config.max_row_count}"
        )
    return config


def _read_secret(path: str) -> str:
    """A secret file's content without its final line break (as secrets are mounted)."""
    try:
        with open(path, encoding="utf-8") as file:
            return file.read().removesuffix("\n").removesuffix("\r")
    except OSError as exc:
        raise ConfigError(
            f"MSSQL_PASSWORD_FILE: cannot read {path}: {exc.strerror or exc}"
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(f"MSSQL_PASSWORD_FILE: {path} is not UTF-8 text") from None


def load_reports(config: ApiConfig) -> Catalog:
    """The catalog the configuration names; raises :class:`ConfigError` saying what is wrong."""
    try:
        return catalog_for(config)
    except CatalogError as exc:
        raise ConfigError(str(exc)) from None


async def serve(config: ApiConfig, catalog: Catalog) -> None:
    """Run until SIGTERM or SIGINT, then shut down gracefully; SIGHUP reloads the catalog."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    api = ExportApi(config, catalog=catalog)
    loop.add_signal_handler(signal.SIGHUP, api.reload_catalog)
    await api.start()
    await stop.wait()
    logging.getLogger("server").info("signal received: shutting down")
    await api.close()


def main(argv: Sequence[str] | None = None) -> int:
    try:
        config = load_config(sys.argv[1:] if argv is None else argv, os.environ)
        catalog = load_reports(config)
    except ConfigError as exc:
        print(f"xlsx-export-api: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        asyncio.run(serve(config, catalog))
    except WorkersFailed as exc:
        logging.getLogger("server").error("cannot start the export workers: %s", exc)
        return 1
    except OSError as exc:  # e.g. the port is taken
        logging.getLogger("server").error(
            "cannot serve on %s:%d: %s", config.host, config.port, exc
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
