"""BFF configuration: a frozen record with named defaults, and its table of options
(:mod:`httpedge.options`: flag over environment variable over default).

Nothing here reads ``os.environ``; ``bff.__main__`` passes argv and the environment in.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from bff.errors import ConfigError
from httpedge import options
from httpedge.forwarded import Network
from httpedge.options import Option

# Loopback by default: the dev stack must not be reachable from the network by accident;
# containers pass --host 0.0.0.0 explicitly.
DEFAULT_HOST = "127.0.0.1"
# The replaced Node.js export's ports, so clients keep theirs: BFF and page on 3000, API on 3001.
DEFAULT_PORT = 3000
DEFAULT_API_URL = "http://127.0.0.1:3001"
# Each API's /readyz is asked this often. A killed API refuses connections at once and a
# download that meets the refusal marks it down on the spot, so the check's interval only
# bounds how long a recovered API (or one that stopped being ready) goes unnoticed: 2 s is
# well under a download's length and costs each API one `SELECT 1` per BFF every 2 s.
DEFAULT_HEALTH_INTERVAL_S = 2.0
# The API answers /readyz within its own readiness timeout (2 s by default), with a JSON
# reason when its database is slow; one more second lets that answer, rather than our
# timeout, decide. No answer by then: the API itself is stuck, and it is not ready.
DEFAULT_HEALTH_TIMEOUT_S = 3.0
# The API waits up to 30 s for the first row before it answers with its own JSON error; waiting
# a little longer lets that clearer error reach the client instead of our 504.
DEFAULT_UPSTREAM_HEADERS_TIMEOUT_S = 45.0
# Longest silence between two body chunks. The API gives up on a stalled database or client
# after 60 s and aborts; 90 s only fires when the API itself hangs.
DEFAULT_UPSTREAM_READ_TIMEOUT_S = 90.0
# A client that has not accepted a byte for this long is gone (the API uses the same 60 s for
# the BFF); its download is cut so it frees its per-client slot and the API's connection.
DEFAULT_CLIENT_WRITE_TIMEOUT_S = 60.0
# The API is on the same host or network; a connect that takes seconds means it is down.
DEFAULT_UPSTREAM_CONNECT_TIMEOUT_S = 5.0
# Twice the API's maximum export concurrency (its pool max is 50), so the API's own
# 503 + Retry-After answers overload, never a queue inside the BFF.
DEFAULT_UPSTREAM_MAX_CONNECTIONS = 100
# Concurrent downloads per client IP: a person exporting a few reports side by side is normal,
# one client holding more than a few of the API's 50 database connections is not. 0 = off.
DEFAULT_MAX_DOWNLOADS_PER_CLIENT = 4
# Unclaimed download tickets one client address may hold. A page claims its ticket with the
# download it starts a moment later, so a person holds one for well under a second; a ticket is
# left unclaimed only when its download never reached us. 16 is room for a dozen people behind
# one NAT address clicking in the same second, and 1/128 of the ticket table (bff.downloads), so
# that only a flood from over a hundred addresses at once could push anyone's ticket out. 0 = off.
DEFAULT_MAX_TICKETS_PER_CLIENT = 16
# Seconds a client told "too many downloads" should wait: a small export takes about that long.
DEFAULT_RETRY_AFTER_S = 10
DEFAULT_LOG_LEVEL = "INFO"
# A client connection must deliver a request's headers within this many seconds of opening
# (or of the previous response on a kept-alive connection), or it is closed: a browser sends
# its headers at once, and an idle keep-alive connection is reopened at no cost. Same as the
# API's default.
DEFAULT_HEADER_TIMEOUT_S = 15.0
# Open client connections per process. Linux's default open-file limit is 1,024 per process;
# every relayed download also holds a connection to the API (at most 100), so half of it for
# clients leaves room for those, log files and the runtime.
DEFAULT_MAX_CONNECTIONS = 512
# Open connections from one client address: a quarter of the cap, so one client (or one
# address's flood of idle connections) can never fill it. A browser opens at most 6 per host;
# 128 leaves room for a few dozen people behind one NAT address. A load balancer or proxy in
# front of the BFF carries everyone's connections: list it in --connection-limit-exempt.
DEFAULT_MAX_CONNECTIONS_PER_CLIENT = 128
# Bytes each socket buffer may hold, as the kernel counts them, on every connection: to clients
# and to the APIs (0: the kernel's own). Left to itself Linux grows them to megabytes (tcp_wmem,
# tcp_rmem), and a download whose client reads slowly fills the send buffer towards the client
# and the receive buffer from the API: 20.6 MiB between the API and a 64 KiB/s reader through
# the BFF (tests/bench/slow_reader.py), 2.2 MiB with this bound, in no RSS. 512 KiB kept 1M-row
# downloads at full speed on loopback (docs/benchmarks.md: no change beyond the noise against
# the kernel's own); a client far away is capped near 512 KiB per round trip (25 MB/s at
# 20 ms, 10 MB/s at 50 ms: faster than most people's links); raise it for faster ones.
DEFAULT_SOCKET_BUFFER = 512 * 1024

# An origin is scheme://host[:port] with nothing after it (RFC 6454 serialisation).
_ORIGIN_RE = re.compile(r"^https?://[A-Za-z0-9.\-\[\]:]+$")


@dataclass(frozen=True)
class BffConfig:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    # The export APIs downloads are spread over (API_URL: one; API_URLS: several).
    api_urls: tuple[str, ...] = (DEFAULT_API_URL,)
    cors_origins: tuple[str, ...] = ()
    tokens: tuple[str, ...] = field(default=(), repr=False)  # never printed
    max_downloads_per_client: int = DEFAULT_MAX_DOWNLOADS_PER_CLIENT
    max_tickets_per_client: int = DEFAULT_MAX_TICKETS_PER_CLIENT
    retry_after_s: int = DEFAULT_RETRY_AFTER_S
    upstream_headers_timeout_s: float = DEFAULT_UPSTREAM_HEADERS_TIMEOUT_S
    upstream_read_timeout_s: float = DEFAULT_UPSTREAM_READ_TIMEOUT_S
    upstream_connect_timeout_s: float = DEFAULT_UPSTREAM_CONNECT_TIMEOUT_S
    upstream_max_connections: int = DEFAULT_UPSTREAM_MAX_CONNECTIONS
    client_write_timeout_s: float = DEFAULT_CLIENT_WRITE_TIMEOUT_S
    log_level: str = DEFAULT_LOG_LEVEL
    header_timeout_s: float = DEFAULT_HEADER_TIMEOUT_S
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    max_connections_per_client: int = DEFAULT_MAX_CONNECTIONS_PER_CLIENT
    # Client addresses (or CIDR blocks) the per-client limit does not hold: a proxy in front.
    connection_limit_exempt: tuple[Network, ...] = ()
    socket_buffer: int = DEFAULT_SOCKET_BUFFER
    health_interval_s: float = DEFAULT_HEALTH_INTERVAL_S
    health_timeout_s: float = DEFAULT_HEALTH_TIMEOUT_S


def parse_api_url(raw: str, name: str = "API_URL") -> str:
    parts = urlsplit(raw.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{name} must be an http(s) URL, got {raw!r}")
    if parts.query or parts.fragment:
        raise ConfigError(f"{name} must not have a query or fragment, got {raw!r}")
    return raw.strip().rstrip("/")


def parse_api_urls(raw: str, name: str = "API_URLS") -> tuple[str, ...]:
    """Comma-separated API base URLs, each checked as API_URL is; at least one, none twice."""
    urls = tuple(parse_api_url(item, f"{name} entry") for item in options.comma_list(raw))
    if not urls:
        raise ConfigError(f"{name} must list at least one URL, got {raw!r}")
    repeated = sorted({url for url in urls if urls.count(url) > 1})
    if repeated:
        raise ConfigError(f"{name} lists {', '.join(repeated)} more than once")
    return urls


def _upstreams(single: str | None, several: str | None, names: tuple[str, str]) -> tuple[str, ...]:
    """The API list from the one-URL and the several-URL form of one source (the environment,
    or the flags); None when that source gives neither."""
    if single is not None and several is not None:
        raise ConfigError(
            f"{names[0]} and {names[1]} are both set: give one API with {names[0]} "
            f"or several with {names[1]}, not both"
        )
    if single is not None:
        return (parse_api_url(single, names[0]),)
    if several is not None:
        return parse_api_urls(several, names[1])
    return ()


def parse_origins(raw: str) -> tuple[str, ...]:
    origins = options.comma_list(raw)
    for origin in origins:
        if origin != "*" and not _ORIGIN_RE.match(origin):
            raise ValueError(f"must list origins (scheme://host[:port]), not {origin!r}")
    return origins


# Every setting of the BFF but the API URLs (API_URL or API_URLS, checked together below).
OPTIONS: tuple[Option, ...] = (
    Option("host", "--host", "BFF_HOST", options.text, "address to listen on"),
    Option("port", "--port", "BFF_PORT", options.port, "TCP port to listen on (0: any free)"),
    Option(
        "cors_origins",
        "--cors-origins",
        "BFF_CORS_ORIGINS",
        parse_origins,
        "comma-separated origins (or *) allowed to call the API from a browser",
        default_text="none: CORS off",
    ),
    Option(
        "tokens",
        None,
        "BFF_TOKENS",
        options.comma_list,
        "comma-separated bearer tokens; downloads and /metrics then need one",
        default_text="none: auth off",
        secret=True,
    ),
    Option(
        "max_downloads_per_client",
        "--max-downloads-per-client",
        "BFF_MAX_DOWNLOADS_PER_CLIENT",
        options.whole(0),
        "concurrent downloads per client address (0: no limit)",
    ),
    Option(
        "max_tickets_per_client",
        "--max-tickets-per-client",
        "BFF_MAX_TICKETS_PER_CLIENT",
        options.whole(0),
        "unclaimed download tickets per client address (0: no limit)",
    ),
    Option(
        "retry_after_s",
        "--retry-after",
        "BFF_RETRY_AFTER",
        options.whole(0),
        "Retry-After seconds on 429 answers",
    ),
    Option(
        "upstream_headers_timeout_s",
        "--upstream-headers-timeout",
        "BFF_UPSTREAM_HEADERS_TIMEOUT",
        options.seconds,
        "seconds to wait for an API's response headers",
    ),
    Option(
        "upstream_read_timeout_s",
        "--upstream-read-timeout",
        "BFF_UPSTREAM_READ_TIMEOUT",
        options.seconds,
        "longest silence between an API's body chunks",
    ),
    Option(
        "upstream_connect_timeout_s",
        "--upstream-connect-timeout",
        "BFF_UPSTREAM_CONNECT_TIMEOUT",
        options.seconds,
        "seconds to connect to an API",
    ),
    Option(
        "upstream_max_connections",
        "--upstream-max-connections",
        "BFF_UPSTREAM_MAX_CONNECTIONS",
        options.whole(1),
        "connections to the APIs at most",
    ),
    Option(
        "client_write_timeout_s",
        "--client-write-timeout",
        "BFF_CLIENT_WRITE_TIMEOUT",
        options.seconds,
        "seconds a client may accept no data before its download is cut",
    ),
    Option("log_level", "--log-level", "BFF_LOG_LEVEL", options.log_level, "how much to log"),
    *options.listener_options(
        "BFF",
        exempt="a proxy in front",
        socket_buffer="each send/receive buffer of a connection, to clients and to the APIs,",
    ),
    Option(
        "health_interval_s",
        "--health-interval",
        "BFF_HEALTH_INTERVAL",
        options.seconds,
        "seconds between readiness checks of each API",
    ),
    Option(
        "health_timeout_s",
        "--health-timeout",
        "BFF_HEALTH_TIMEOUT",
        options.seconds,
        "a readiness check's limit to connect, and again to answer",
    ),
)
# The API URLs: one (API_URL) or several (API_URLS), never both from one source.
API_URL_OPTIONS: tuple[Option, ...] = (
    Option(
        "api_url",
        "--api-url",
        "API_URL",
        options.text,
        "base URL of the one export API",
        default_text=DEFAULT_API_URL,
    ),
    Option(
        "api_urls",
        "--api-urls",
        "API_URLS",
        options.text,
        "comma-separated base URLs of several export APIs to spread downloads over",
        default_text="none",
    ),
)


def default_of(option: Option) -> object:
    """The default of an option: BffConfig's."""
    return getattr(BffConfig(), option.field, None)


def config_from(env: Mapping[str, str], **flags: object) -> BffConfig:
    """The configuration from environment-style strings and flags by field name (text as
    argparse gives it, or values already typed); a flag wins over its variable."""
    try:
        values = options.resolve(OPTIONS, flags, env)
    except options.OptionError as exc:
        raise ConfigError(str(exc)) from None
    # One API or several (API_URL / API_URLS, --api-url / --api-urls). Flags that name any
    # win over the environment as a whole, as every flag wins over its variable.
    env_urls = _upstreams(
        env.get("API_URL") or None, env.get("API_URLS") or None, ("API_URL", "API_URLS")
    )
    flag_single, flag_several = flags.get("api_url"), flags.get("api_urls")
    flag_urls = _upstreams(
        flag_single if isinstance(flag_single, str) else None,
        flag_several if isinstance(flag_several, str) else None,
        ("--api-url", "--api-urls"),
    )
    if flag_urls or env_urls:
        values["api_urls"] = flag_urls or env_urls
    return BffConfig(**values)
