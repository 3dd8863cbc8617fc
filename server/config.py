"""Export API configuration: frozen records with named defaults.

Nothing in this package reads ``os.environ``; ``server.__main__`` turns flags and environment
variables into an :class:`ApiConfig` and passes it in. Every default says where its number
comes from.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from httpedge.forwarded import Network

# Loopback by default: a dev stack must not be reachable from the network by accident;
# containers pass --host 0.0.0.0 explicitly.
DEFAULT_HOST = "127.0.0.1"
# The port of the Node.js export this service replaces (the BFF and page are on 3000).
DEFAULT_PORT = 3001

DEFAULT_DB_HOST = "127.0.0.1"
# SQL Server's registered TCP port.
DEFAULT_DB_PORT = 1433
DEFAULT_DB_USER = "sa"
DEFAULT_DB_DATABASE = "ExportDemo"
DEFAULT_PROCEDURE = "dbo.spGenerateData"
# Connect plus login. pytds' own default is 15 s with retries; a database on the same network
# that has not answered a login within 5 s is down for our purposes, and the client gets its
# 503 quickly instead of waiting out the budget.
DEFAULT_LOGIN_TIMEOUT_S = 5.0
# TDS packet size asked for at login: SQL Server's maximum (32,767, MS-TDS 2.2.7.9): fewer,
# larger reads than pytds' 4 KiB default (docs/driver.md).
DEFAULT_PACKET_SIZE = 32_767
# Encrypted and verified unless told otherwise, as Microsoft's current drivers (ODBC Driver 18,
# JDBC 10+) default: in clear, the login's password and every exported row cross the network
# readable by anyone on the path, and a server that is not the one meant is not noticed.
# "strict" (TDS 8.0) needs SQL Server 2022 or Azure SQL; "on" works with every supported server.
DEFAULT_ENCRYPT = "on"
ENCRYPT_MODES = ("off", "on", "strict")

# The replaced Node.js export's pool (mssql/tarn settings): at most 50 connections, 5 warm.
DEFAULT_POOL_MIN = 5
DEFAULT_POOL_MAX = 50
# Connections above the minimum that sat idle this long are closed (tarn's idleTimeoutMillis).
DEFAULT_POOL_IDLE_TIMEOUT_S = 30.0

# As the replaced export: 30,000 rows when the query string says nothing, at most 1,048,576
# (Excel's rows per sheet; our writer rolls over to a second sheet, so the header row fits).
DEFAULT_ROW_COUNT = 30_000
DEFAULT_MAX_ROW_COUNT = 1_048_576
# Excel's hard limit of rows per worksheet; configurable so tests can show the rollover small.
DEFAULT_MAX_ROWS_PER_SHEET = 1_048_576

# The replaced export's request timeout (mssql requestTimeout: 30 s) for the first row; a
# healthy server never goes silent that long in the middle of a result either.
DEFAULT_FIRST_ROW_TIMEOUT_S = 30.0
DEFAULT_ROW_TIMEOUT_S = 30.0
# A client that has not accepted a single byte for a minute has gone.
DEFAULT_CLIENT_WRITE_TIMEOUT_S = 60.0
# After an attention a server answers in milliseconds (docs/driver.md: ~11 ms); 5 s without an
# answer means the connection is wedged and is shut down instead.
DEFAULT_CANCEL_TIMEOUT_S = 5.0
# How often a worker blocked in a database read looks at its cancel flag and deadlines: a
# client that goes away is noticed within this time even while the database is silent.
DEFAULT_POLL_INTERVAL_S = 0.1

# Rows per fetchmany between cancel checks: ~30 ms of pytds decoding at ~30k rows/s. Batching
# costs nothing measurable: fetchmany loops fetchone, and iterating the cursor instead measured
# the same (100k rows: 2.38 vs 2.33 CPU s, within the noise of five runs each).
DEFAULT_FETCH_BATCH_ROWS = 1_000
# Rows decoded by the fast row path (tdsrows) where the result set allows; off, every row goes
# through pytds' own decoding (about 10x slower), e.g. to rule the fast path out.
DEFAULT_FAST_ROWS = True
# Rows of the fast path written by the compiled row code (tdsrows._rowscan, xlsx._rowxml) where
# it was built; off, by the generated Python code (same bytes, ~3x the CPU per row), e.g. to
# rule the compiled code out.
DEFAULT_COMPILED_ROWS = True
# Writer chunks (~64 KiB each) in flight between the export's thread in its worker process and
# the response (the export channel's socket buffer is sized to hold about this many): enough to
# keep the client's socket busy while the worker decodes, small enough that a stalled client
# holds < 0.5 MiB.
DEFAULT_QUEUE_CHUNKS = 4
# Worker processes running exports: None is one per core this process may run on, since each
# worker's exports share one interpreter lock and so use at most one core. 0 runs exports on
# threads of the HTTP process itself (same protocol; for debugging).
DEFAULT_WORKERS: int | None = None
# A worker that has said nothing on its control channel for this long (it says it is alive
# twice a second) is killed and replaced; its exports are aborted as if it had died. It gets
# no new export or readiness check once silent for 2 s already; this limit is for the ones it
# holds. Far above any pause of a healthy worker: its heartbeat comes from one of a few dozen
# threads sharing an interpreter lock at a lower CPU priority, and was at most 9 ms late with
# 50 slow downloads or 20 full-speed ones on two cores (load harness, slow-50 and
# downloads-20x100k, the machine shared with other test runs); a machine that swaps can delay
# it by a second or two. A stopped or wedged worker is silent for good.
DEFAULT_WORKER_SILENCE_LIMIT_S = 10.0

# The replaced export logged memory every 5,000 rows; the same cadence keeps logs comparable.
DEFAULT_MEMORY_LOG_EVERY_ROWS = 5_000
# What a client told 503 should wait before retrying: a small export takes about this long.
DEFAULT_RETRY_AFTER_S = 5
# Kubernetes sends SIGKILL 30 s after SIGTERM by default; 25 s leaves time to abort and exit.
DEFAULT_SHUTDOWN_GRACE_S = 25.0
DEFAULT_LOG_LEVEL = "INFO"

# A client connection must deliver a request's headers within this many seconds of opening
# (or of the previous response on a kept-alive connection), or it is closed. A real client
# sends its headers in one packet; 15 s covers a slow mobile link and is aiohttp's own client
# keep-alive default. The BFF's idle upstream connections expire sooner (10 s), so it never
# sends a request on a connection the API is closing.
DEFAULT_HEADER_TIMEOUT_S = 15.0
# Open client connections per process. Linux's default open-file limit is 1,024 per process;
# half of it for clients leaves room for the database pool (50), log files and the runtime.
# The BFF uses at most 100 connections to the API (BFF_UPSTREAM_MAX_CONNECTIONS).
DEFAULT_MAX_CONNECTIONS = 512
# Open connections from one client address: a quarter of the cap, so one client (or one
# address's flood of idle connections) can never fill it. Above the BFF's pool to an API (at
# most 100 connections, BFF_UPSTREAM_MAX_CONNECTIONS, plus its readiness checks'), so the BFF
# fits without being listed in --connection-limit-exempt; list it there when its pool is raised.
DEFAULT_MAX_CONNECTIONS_PER_CLIENT = 128
# Bytes each socket buffer may hold, as the kernel counts them: the send and receive buffers of
# each client connection, the receive buffer of each database connection (0: the kernel's own).
# Left to itself Linux grows a send buffer to tcp_wmem's maximum (4 MiB by default) and a
# receive buffer towards tcp_rmem's, and a download whose client reads slowly keeps them full:
# megabytes of kernel memory per slow download that no RSS shows (tests/bench/slow_reader.py:
# 4.1 MiB between the API and a 64 KiB/s reader, 0.4 MiB with this bound). 512 KiB kept 1M-row
# downloads at full speed on loopback (docs/benchmarks.md: no change beyond the noise against
# the kernel's own); a link with a long round trip caps a download near 512 KiB per round trip
# (50 MB/s at 10 ms): raise it for far clients of the API (the BFF is its usual client).
DEFAULT_SOCKET_BUFFER = 512 * 1024
# /readyz proves a round trip to the database (SELECT 1) and answers 503 when none completes
# within this time: long enough for a healthy database on a busy network (milliseconds), short
# enough for a load balancer's probe (Kubernetes' default probe timeout is 1 s, commonly 2-5 s).
DEFAULT_READINESS_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class DbSettings:
    """Where the database is and how to log in."""

    host: str = DEFAULT_DB_HOST
    port: int = DEFAULT_DB_PORT
    user: str = DEFAULT_DB_USER
    password: str = field(default="", repr=False)  # never printed
    database: str = DEFAULT_DB_DATABASE
    login_timeout_s: float = DEFAULT_LOGIN_TIMEOUT_S
    packet_size: int = DEFAULT_PACKET_SIZE
    encrypt: str = DEFAULT_ENCRYPT  # off, on (TDS 7.x TLS), strict (TDS 8.0)
    ca_file: str | None = None  # PEM file of trusted CAs; None: the system's trust store
    host_name_in_certificate: str | None = None  # when the server is reached by another name
    # Encrypt without verifying the certificate (a self-signed one): warned about at start-up
    # and in /readyz, since anyone on the path can then pose as the database.
    trust_server_certificate: bool = False


@dataclass(frozen=True)
class ApiConfig:
    """Everything the export API needs; built once at the entry point."""

    db: DbSettings = field(default_factory=DbSettings)
    # Where the password came from, if from a file (Docker/Kubernetes secrets): read once at
    # start-up into ``db.password``, so the secret is in no environment variable.
    password_file: str | None = None
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    # The report catalog (a TOML file); None: the built-in demo reports (sql/catalog.toml),
    # whose report "report" calls ``procedure`` with rowCount's default and maximum below.
    catalog: str | None = None
    procedure: str = DEFAULT_PROCEDURE
    pool_min: int = DEFAULT_POOL_MIN
    pool_max: int = DEFAULT_POOL_MAX
    pool_idle_timeout_s: float = DEFAULT_POOL_IDLE_TIMEOUT_S
    default_row_count: int = DEFAULT_ROW_COUNT
    max_row_count: int = DEFAULT_MAX_ROW_COUNT
    max_rows_per_sheet: int = DEFAULT_MAX_ROWS_PER_SHEET
    first_row_timeout_s: float = DEFAULT_FIRST_ROW_TIMEOUT_S
    row_timeout_s: float = DEFAULT_ROW_TIMEOUT_S
    client_write_timeout_s: float = DEFAULT_CLIENT_WRITE_TIMEOUT_S
    cancel_timeout_s: float = DEFAULT_CANCEL_TIMEOUT_S
    poll_interval_s: float = DEFAULT_POLL_INTERVAL_S
    fetch_batch_rows: int = DEFAULT_FETCH_BATCH_ROWS
    fast_rows: bool = DEFAULT_FAST_ROWS
    compiled_rows: bool = DEFAULT_COMPILED_ROWS
    queue_chunks: int = DEFAULT_QUEUE_CHUNKS
    workers: int | None = DEFAULT_WORKERS
    worker_silence_limit_s: float = DEFAULT_WORKER_SILENCE_LIMIT_S
    memory_log_every_rows: int = DEFAULT_MEMORY_LOG_EVERY_ROWS
    retry_after_s: int = DEFAULT_RETRY_AFTER_S
    shutdown_grace_s: float = DEFAULT_SHUTDOWN_GRACE_S
    log_level: str = DEFAULT_LOG_LEVEL
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    max_connections_per_client: int = DEFAULT_MAX_CONNECTIONS_PER_CLIENT
    # Client addresses (or CIDR blocks) the per-client limit does not hold: the BFFs'.
    connection_limit_exempt: tuple[Network, ...] = ()
    socket_buffer: int = DEFAULT_SOCKET_BUFFER
    readiness_timeout_s: float = DEFAULT_READINESS_TIMEOUT_S
    # Proxies (addresses or CIDR blocks) whose X-Forwarded-For names the client in our logs;
    # empty: the header is ignored (anyone can write it).
    trusted_proxies: tuple[Network, ...] = ()


@dataclass(frozen=True)
class WorkerSettings:
    """What a worker process needs of the configuration: sent by the HTTP process as the first
    message on the worker's control channel (never through argv or the environment, so the
    password shows in no process listing)."""

    db: DbSettings
    index: int
    # This worker's share of the service's warm connections, and its pool's maximum: the
    # service's whole limit, since admission is decided once, in the HTTP process.
    pool_min: int = DEFAULT_POOL_MIN
    pool_max: int = DEFAULT_POOL_MAX
    pool_idle_timeout_s: float = DEFAULT_POOL_IDLE_TIMEOUT_S
    max_rows_per_sheet: int = DEFAULT_MAX_ROWS_PER_SHEET
    first_row_timeout_s: float = DEFAULT_FIRST_ROW_TIMEOUT_S
    row_timeout_s: float = DEFAULT_ROW_TIMEOUT_S
    cancel_timeout_s: float = DEFAULT_CANCEL_TIMEOUT_S
    poll_interval_s: float = DEFAULT_POLL_INTERVAL_S
    fetch_batch_rows: int = DEFAULT_FETCH_BATCH_ROWS
    fast_rows: bool = DEFAULT_FAST_ROWS
    compiled_rows: bool = DEFAULT_COMPILED_ROWS
    memory_log_every_rows: int = DEFAULT_MEMORY_LOG_EVERY_ROWS
    readiness_timeout_s: float = DEFAULT_READINESS_TIMEOUT_S
    log_level: str = DEFAULT_LOG_LEVEL
    socket_buffer: int = DEFAULT_SOCKET_BUFFER  # SO_RCVBUF of its database connections


def worker_settings(config: ApiConfig, index: int, count: int) -> WorkerSettings:
    """Worker ``index`` of ``count``: the service's settings, with ``pool_min`` split so that
    the workers keep ``config.pool_min`` connections warm between them."""
    share, extra = divmod(config.pool_min, max(count, 1))
    return WorkerSettings(
        db=config.db,
        index=index,
        pool_min=share + (1 if index < extra else 0),
        pool_max=config.pool_max,
        pool_idle_timeout_s=config.pool_idle_timeout_s,
        max_rows_per_sheet=config.max_rows_per_sheet,
        first_row_timeout_s=config.first_row_timeout_s,
        row_timeout_s=config.row_timeout_s,
        cancel_timeout_s=config.cancel_timeout_s,
        poll_interval_s=config.poll_interval_s,
        fetch_batch_rows=config.fetch_batch_rows,
        fast_rows=config.fast_rows,
        compiled_rows=config.compiled_rows,
        memory_log_every_rows=config.memory_log_every_rows,
        readiness_timeout_s=config.readiness_timeout_s,
        log_level=config.log_level,
        socket_buffer=config.socket_buffer,
    )


def settings_to_json(settings: WorkerSettings) -> dict[str, Any]:
    return dataclasses.asdict(settings)


def settings_from_json(values: dict[str, Any]) -> WorkerSettings:
    fields = dict(values)
    return WorkerSettings(db=DbSettings(**fields.pop("db")), **fields)
