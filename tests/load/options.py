"""Command-line options and the named scenarios (pure: argv in, a :class:`LoadConfig` out)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scripts.stack import DEV_DATABASE, DEV_PASSWORD, DEV_USER, HOST
from tests.load.dbstats import DbTarget
from tests.load.errors import LoadError
from tests.load.plan import AbortRange, Shares
from tests.load.reports import (
    DEFAULT_REPORT,
    DEFAULT_ROWS,
    REPORTS,
    ROW_COUNT,
    ReportQuery,
    export_path,
    resolve,
)
from tests.load.targets import check_host, check_url

KIB = 1024
MIB = 1024 * KIB
# Bytes a download may still have to deliver after the API read the query's last row: the
# workbook's closing parts (~2 KiB), the API's export channel (4 x ~64 KiB), the chunk being
# written, and socket and relay buffers. An abort with more than this still to come certainly
# interrupted a running query; one closer to the end may have come after the query finished.
DEFAULT_ABORT_MARGIN = 1 * MIB
# Longest a single request may take: a 100k-row file (~7.7 MB) read at 64 KiB/s takes ~2 min.
DEFAULT_REQUEST_TIMEOUT_S = 300.0
# No request starts after this; with the request timeout it bounds a run's length.
DEFAULT_DURATION_S = 600.0
# After the load, how long the API may take to report no active export and an idle pool.
DEFAULT_DRAIN_TIMEOUT_S = 60.0
# The API's own pool maximum (server.config.DEFAULT_POOL_MAX) and minimum.
DEFAULT_API_POOL_MAX = 50
DEFAULT_API_POOL_MIN = 5


# Settings every scenario starts from. The scenarios measure the stack on the cores the harness
# shares with it, so they leave out the XML parse of each sheet: it takes the harness's CPU in
# smoke from ~0.45 to ~1.15 s, and the busier event loop then reads the aborting clients' bytes
# so late that their queries have ended (smoke's cancel check failed 2 runs in 4). --xml-check
# turns it back on; every other check of a download stays.
SCENARIO_BASE: dict[str, Any] = {"xml_check": False}


@dataclass(frozen=True)
class Scenario:
    description: str
    settings: dict[str, Any]


# The scenarios docs/benchmarks.md reports, plus a quick one that exercises every behaviour.
SCENARIOS: dict[str, Scenario] = {
    "smoke": Scenario(
        "16 requests of 20k rows, 4 at once, a quarter of each behaviour; aborts 16-256 KiB "
        "into the ~1.5 MB file, so each must cancel its query (seconds)",
        {
            "concurrency": 4,
            "requests": 16,
            "rows": 20_000,
            "slow_share": 0.25,
            "abort_share": 0.25,
            "bad_share": 0.25,
            "slow_rate": 1024,
            "abort_by": "bytes",
            "abort_bytes": (16 * KIB, 256 * KIB),
        },
    ),
    "downloads-20x100k": Scenario(
        "20 concurrent downloads of 100k rows",
        {"concurrency": 20, "requests": 20, "rows": 100_000},
    ),
    "slow-50": Scenario(
        "50 slow readers at 64 KiB/s (30k rows each, ~2.3 MB)",
        {"concurrency": 50, "requests": 50, "rows": 30_000, "slow_share": 1.0, "slow_rate": 64},
    ),
    "aborts-200": Scenario(
        "200 requests of 50k rows, 30% of the clients abort; 20 at a time",
        {"concurrency": 20, "requests": 200, "rows": 50_000, "abort_share": 0.3},
    ),
    "beyond-pool-60": Scenario(
        "60 concurrent downloads of 100k rows: more than the API's 50 pooled connections",
        {"concurrency": 60, "requests": 60, "rows": 100_000},
    ),
}


@dataclass(frozen=True)
class StackSettings:
    """What --start-stack passes to the API and the BFF."""

    api_env: dict[str, str]
    bff_env: dict[str, str]
    log_dir: Path | None


@dataclass(frozen=True)
class LoadConfig:
    scenario: str | None
    target: str  # "bff" or "api"
    url: str | None  # the BFF's base URL (None: no BFF)
    api_url: str | None  # the API's base URL (None: unknown)
    concurrency: int
    requests: int
    report: ReportQuery  # what every download asks for
    duration_s: float | None
    shares: Shares
    slow_rate_kib: int
    aborts: AbortRange
    abort_margin: int
    request_timeout_s: float
    drain_timeout_s: float
    seed: int
    verify: bool
    xml_check: bool
    allow_remote: bool
    stack: StackSettings | None  # set: start the stack ourselves
    db: DbTarget | None
    pids: dict[str, int] = field(default_factory=dict)
    json_path: Path | None = None
    plot_path: Path | None = None

    @property
    def path(self) -> str:
        return export_path(self.target, self.report.report)

    def for_json(self) -> dict[str, Any]:
        """The settings as the report records them (no password)."""
        return {
            "scenario": self.scenario,
            "target": self.target,
            "url": self.url,
            "api_url": self.api_url,
            "concurrency": self.concurrency,
            "requests": self.requests,
            "report": self.report.report,
            "params": dict(self.report.params),
            "duration_s": self.duration_s,
            "shares": {str(b): s for b, s in self.shares.by_behaviour().items()},
            "slow_rate_kib": self.slow_rate_kib,
            "abort_by": self.aborts.by,
            "abort_bytes": [self.aborts.min_bytes, self.aborts.max_bytes or "file size"],
            "abort_seconds": [self.aborts.min_seconds, self.aborts.max_seconds],
            "abort_margin": self.abort_margin,
            "request_timeout_s": self.request_timeout_s,
            "seed": self.seed,
            "verify": self.verify,
            "xml_check": self.xml_check,
            "started_stack": self.stack is not None,
            "api_env": None if self.stack is None else self.stack.api_env,
            "bff_env": None if self.stack is None else self.stack.bff_env,
        }


def _range(kind: type[int] | type[float]) -> Any:
    def parse(text: str) -> tuple[Any, Any]:
        low, sep, high = text.partition(":")
        if not sep:
            raise argparse.ArgumentTypeError(f"expected MIN:MAX, got {text!r}")
        return kind(low), (kind(high) if high else None)

    return parse


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected NAME=VALUE, got {text!r}")
    return key, value


def _param(text: str) -> tuple[str, str]:
    """``--param NAME=VALUE``: the value may be empty or hold "=", the name may not be empty."""
    try:
        return _key_value(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected NAME=VALUE (e.g. from=2024-01-01), got {text!r}"
        ) from None


def _pids(text: str) -> dict[str, int]:
    pids = {}
    for item in filter(None, text.split(",")):
        name, sep, pid = item.partition("=")
        if not sep or not pid.isdigit():
            raise argparse.ArgumentTypeError(f"expected NAME=PID[,NAME=PID...], got {text!r}")
        pids[name] = int(pid)
    return pids


def build_parser() -> argparse.ArgumentParser:
    scenarios = "\n".join(f"  {name}: {s.description}" for name, s in SCENARIOS.items())
    parser = argparse.ArgumentParser(
        prog="python -m tests.load",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Load test of the export stack. A bounded number of concurrent clients download a report
(--report, --param) through the BFF (or straight from the API): some read slowly, some go
away mid-download, some send invalid parameters. Every finished download is checked as it
streams: a valid zip, each sheet well-formed with its rows numbered and a header row, the
sheets the workbook lists, exactly the rows the report holds for these parameters, and the
values of each sheet's first and last rows. Meanwhile /healthz of the API and of
the BFF is probed every 100 ms and the processes' RSS and CPU are sampled. Afterwards:
the time until the API is idle again, and the database's cancelled queries (attentions)
against the clients that went away. Only loopback addresses are targeted unless
--allow-remote is given; the run ends by itself (--requests, --duration,
--request-timeout). Exit status: 0 when every check passed, 1 when one failed or the
run could not be made, 2 for bad options.""",
        epilog="scenarios (--scenario NAME; explicit options override them; no XML parse of "
        "the sheets unless --xml-check):\n" + scenarios,
    )
    where = parser.add_argument_group("where the load goes")
    where.add_argument(
        "--url", metavar="URL", help="the BFF's base URL (default http://127.0.0.1:3000)"
    )
    where.add_argument(
        "--api-url",
        metavar="URL",
        help="the export API's base URL, for /healthz and /metrics (default http://127.0.0.1:3001)",
    )
    where.add_argument(
        "--target",
        choices=("bff", "api"),
        default="bff",
        help="download through the BFF (/exports/ID, default) or from the API directly "
        "(/export/ID)",
    )
    where.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow hosts that are not loopback addresses (never needed on one machine)",
    )

    load = parser.add_argument_group("the load")
    load.add_argument(
        "--scenario", metavar="NAME", choices=sorted(SCENARIOS), help="start from a named preset"
    )
    load.add_argument(
        "--concurrency", metavar="C", type=int, default=10, help="clients at once (10)"
    )
    load.add_argument(
        "--requests", metavar="R", type=int, default=100, help="requests in all (100)"
    )
    load.add_argument(
        "--report",
        metavar="ID",
        default=DEFAULT_REPORT,
        choices=sorted(REPORTS),
        help=f"the report each client downloads: {', '.join(REPORTS)} ({DEFAULT_REPORT})",
    )
    load.add_argument(
        "--param",
        metavar="NAME=VALUE",
        type=_param,
        action="append",
        default=[],
        dest="params",
        help="a parameter of the report (repeatable; sent in this order, percent-encoded), "
        "e.g. --report sales --param from=2024-01-01 --param to=2024-03-31 "
        "--param region=East",
    )
    load.add_argument(
        "--rows",
        metavar="N",
        type=int,
        help=f"the default report's rowCount ({DEFAULT_ROWS}; same as --param rowCount=N)",
    )
    load.add_argument(
        "--duration",
        metavar="S",
        type=float,
        default=DEFAULT_DURATION_S,
        help=f"no request starts after this many seconds ({DEFAULT_DURATION_S:g}); "
        "0: no limit besides --requests",
    )
    load.add_argument(
        "--slow-share",
        metavar="FRACTION",
        type=float,
        default=0.0,
        help="fraction of slow readers (0)",
    )
    load.add_argument(
        "--abort-share",
        metavar="FRACTION",
        type=float,
        default=0.0,
        help="fraction of clients that go away (0)",
    )
    load.add_argument(
        "--bad-share",
        metavar="FRACTION",
        type=float,
        default=0.0,
        help="fraction of requests with an invalid parameter, which must get 400: for the "
        "default report a bad rowCount and INVALID_ROW_COUNT, for another a bad value of "
        "one of the given parameters (or an unknown parameter) and INVALID_PARAMETER "
        "(UNKNOWN_PARAMETER) (0); normal downloads are the rest",
    )
    load.add_argument(
        "--slow-rate",
        metavar="KIB",
        type=int,
        default=64,
        help="a slow reader's rate in KiB/s (64)",
    )
    load.add_argument(
        "--abort-by",
        choices=("bytes", "seconds", "mixed"),
        default="mixed",
        help="an aborting client goes away after a random number of bytes, of seconds, or "
        "either (mixed, default)",
    )
    load.add_argument(
        "--abort-bytes",
        type=_range(int),
        default=(1, None),
        metavar="MIN:MAX",
        help="byte range for aborts (default 1:, up to the file's expected size)",
    )
    load.add_argument(
        "--abort-seconds",
        type=_range(float),
        default=(0.0, 2.0),
        metavar="MIN:MAX",
        help="seconds range for aborts (0:2)",
    )
    load.add_argument(
        "--abort-margin",
        type=int,
        default=DEFAULT_ABORT_MARGIN,
        metavar="BYTES",
        help="an abort with more than this many bytes of the file still to come certainly "
        "interrupted a running query; closer to the end it may not have "
        f"(default {DEFAULT_ABORT_MARGIN})",
    )
    load.add_argument(
        "--request-timeout",
        metavar="S",
        type=float,
        default=DEFAULT_REQUEST_TIMEOUT_S,
        help=f"longest one request may take ({DEFAULT_REQUEST_TIMEOUT_S:g} s)",
    )
    load.add_argument(
        "--drain-timeout",
        metavar="S",
        type=float,
        default=DEFAULT_DRAIN_TIMEOUT_S,
        help="after the load, how long the API may take to become idle "
        f"({DEFAULT_DRAIN_TIMEOUT_S:g} s)",
    )
    load.add_argument(
        "--seed", metavar="N", type=int, default=1, help="random seed: same seed, same run (1)"
    )
    load.add_argument(
        "--no-verify",
        dest="verify",
        action="store_false",
        help="count bytes only, do not check the workbooks (less client CPU)",
    )
    load.add_argument(
        "--xml-check",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="parse each sheet's XML for well-formedness (default, except in scenarios); "
        "the parse takes ~0.35 s of harness CPU per 100k rows of the default report, twice "
        "the rest of the check",
    )

    stack = parser.add_argument_group("starting the stack (--start-stack)")
    stack.add_argument(
        "--start-stack",
        action="store_true",
        help="start the TDS dev server, the API and the BFF on free loopback ports (each its "
        "own process) for this run, and stop them after; --url/--api-url/--pids/--db-* "
        "are then taken from it",
    )
    stack.add_argument(
        "--api-pool-max",
        metavar="N",
        type=int,
        default=DEFAULT_API_POOL_MAX,
        help=f"API_POOL_MAX: the API's connections = exports at once ({DEFAULT_API_POOL_MAX})",
    )
    stack.add_argument(
        "--api-pool-min",
        metavar="N",
        type=int,
        default=DEFAULT_API_POOL_MIN,
        help=f"API_POOL_MIN ({DEFAULT_API_POOL_MIN})",
    )
    stack.add_argument(
        "--bff-max-downloads-per-client",
        metavar="N",
        type=int,
        default=0,
        help="BFF_MAX_DOWNLOADS_PER_CLIENT (0 = off, default: all load comes from one address)",
    )
    stack.add_argument(
        "--api-env",
        type=_key_value,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="any other API setting (repeatable), e.g. API_QUEUE_CHUNKS=8",
    )
    stack.add_argument(
        "--bff-env",
        type=_key_value,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="any other BFF setting (repeatable)",
    )
    stack.add_argument("--log-dir", metavar="DIR", type=Path, help="keep the services' logs here")

    watch = parser.add_argument_group("what is watched (without --start-stack)")
    watch.add_argument(
        "--pids",
        type=_pids,
        default={},
        metavar="NAME=PID,...",
        help="processes to sample (e.g. api=123,bff=456,devdb=789); without it the API's RSS "
        "comes from its /metrics",
    )
    watch.add_argument(
        "--db-host", metavar="HOST", default=HOST, help=f"TDS dev server host ({HOST})"
    )
    watch.add_argument(
        "--db-port",
        metavar="PORT",
        type=int,
        help="TDS dev server port: read its counters (dbo.spDevServerStats) before and after",
    )
    watch.add_argument("--db-user", metavar="USER", default=DEV_USER, help=f"({DEV_USER})")
    watch.add_argument(
        "--db-password", metavar="PASSWORD", default=DEV_PASSWORD, help="(the dev server's)"
    )
    watch.add_argument(
        "--db-database", metavar="NAME", default=DEV_DATABASE, help=f"({DEV_DATABASE})"
    )

    out = parser.add_argument_group("report")
    out.add_argument("--json", metavar="FILE", type=Path, help="write the full report as JSON here")
    out.add_argument(
        "--plot",
        metavar="FILE",
        type=Path,
        help="draw the run over time into this PNG (needs matplotlib)",
    )
    return parser


def parse(argv: Sequence[str]) -> LoadConfig:
    """argv -> config; a scenario's settings are defaults that explicit options override.
    Raises SystemExit(2) on bad options (argparse) and :class:`LoadError` on bad values."""
    parser = build_parser()
    first = parser.parse_args(argv)
    if first.scenario is not None:
        settings = {**SCENARIO_BASE, **SCENARIOS[first.scenario].settings}
        if first.report != DEFAULT_REPORT:
            # A scenario's row count is the default report's; another report has its own.
            settings.pop("rows", None)
        parser.set_defaults(**settings)
    args = parser.parse_args(argv)
    return config_from(args, rows_given=first.rows is not None)


def config_from(args: argparse.Namespace, *, rows_given: bool) -> LoadConfig:
    """``rows_given``: whether --rows came from the command line rather than from a scenario.
    A scenario's rows give way to an explicit --param rowCount; an explicit --rows and
    --param rowCount together are refused (see reports.resolve)."""
    for name in ("concurrency", "requests", "rows", "slow_rate"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise LoadError(f"--{name.replace('_', '-')} must be at least 1")
    rows = args.rows
    if not rows_given and ROW_COUNT in dict(args.params):
        rows = None
    report = resolve(args.report, args.params, rows)
    min_bytes, max_bytes = args.abort_bytes
    min_s, max_s = args.abort_seconds
    aborts = AbortRange(
        by=args.abort_by,
        min_bytes=min_bytes,
        max_bytes=max_bytes or 0,
        min_seconds=min_s,
        max_seconds=max_s if max_s is not None else min_s,
    )
    shares = Shares(slow=args.slow_share, abort=args.abort_share, bad=args.bad_share)
    stack = None
    if args.start_stack:
        if args.url or args.api_url or args.pids or args.db_port:
            raise LoadError("--start-stack chooses the URLs, pids and database itself")
        # Every client of the load comes from one address: no per-address connection limit
        # (its own tests are elsewhere), unless --api-env/--bff-env set one.
        api_env = {
            "API_POOL_MAX": str(args.api_pool_max),
            "API_POOL_MIN": str(min(args.api_pool_min, args.api_pool_max)),
            "API_MAX_CONNECTIONS_PER_CLIENT": "0",
            **dict(args.api_env),
        }
        bff_env = {
            "BFF_MAX_DOWNLOADS_PER_CLIENT": str(args.bff_max_downloads_per_client),
            "BFF_MAX_CONNECTIONS_PER_CLIENT": "0",
            **dict(args.bff_env),
        }
        stack = StackSettings(api_env, bff_env, args.log_dir)
        url = api_url = None
        db = None
    else:
        url = args.url or ("http://127.0.0.1:3000" if args.target == "bff" else None)
        api_url = args.api_url or "http://127.0.0.1:3001"
        db = None
        if args.db_port is not None:
            db = DbTarget(
                args.db_host, args.db_port, args.db_user, args.db_password, args.db_database
            )
    for given in (url, api_url):
        if given is not None:
            check_url(given, allow_remote=args.allow_remote)
    if db is not None:
        check_host(db.host, allow_remote=args.allow_remote)
    return LoadConfig(
        scenario=args.scenario,
        target=args.target,
        url=url,
        api_url=api_url,
        concurrency=args.concurrency,
        requests=args.requests,
        report=report,
        duration_s=args.duration or None,
        shares=shares,
        slow_rate_kib=args.slow_rate,
        aborts=aborts,
        abort_margin=args.abort_margin,
        request_timeout_s=args.request_timeout,
        drain_timeout_s=args.drain_timeout,
        seed=args.seed,
        verify=args.verify,
        xml_check=args.xml_check,
        allow_remote=args.allow_remote,
        stack=stack,
        db=db,
        pids=args.pids,
        json_path=args.json,
        plot_path=args.plot,
    )
