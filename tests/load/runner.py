"""One load run from start to report: the stack (started here or given), the counters before,
the watchers, the load, the drain, the counters after."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from scripts.stack import DEV_DATABASE, DEV_PASSWORD, DEV_USER, HOST, StackError, running_stack
from tests.load import dbstats, reports
from tests.load.client import ClientSettings, Live, run_load
from tests.load.dbstats import DbTarget
from tests.load.errors import LoadError
from tests.load.monitor import (
    HEALTH_TIMEOUT_S,
    HealthProbe,
    MetricsSampler,
    Periodic,
    ProcessSampler,
    api_workers,
    http_get,
    poll_until,
    read_metrics,
)
from tests.load.options import KIB, LoadConfig
from tests.load.plan import make_plan
from tests.load.report import EXECUTOR_THREADS, Measurements, build_report

ACTIVE = "exports_active"
IN_USE = 'db_pool_connections{state="in_use"}'
IDLE = 'db_pool_connections{state="idle"}'
API_RSS = "process_resident_memory_bytes"
RELAYS = "bff_relays_active"
# Sampling the harness's own counters: the same 100 ms as the probes.
LIVE_INTERVAL_S = 0.1
# Worker threads end a moment after the export is reported finished.
THREADS_SETTLE_S = 10.0


@dataclass
class Targets:
    bff_url: str | None
    api_url: str | None
    pids: dict[str, int] = field(default_factory=dict)
    db: DbTarget | None = None


class LiveSampler(Periodic):
    """The harness's own counters over time: downloads in progress, bytes, verified rows."""

    def __init__(self, live: Live, zero: float) -> None:
        super().__init__("live-sampler", LIVE_INTERVAL_S, zero)
        self.live = live
        self.series: dict[str, list[float]] = {
            "t": [],
            "in_flight": [],
            "downloading": [],
            "bytes": [],
            "rows_verified": [],
        }

    def tick(self, t: float) -> None:
        live = self.live
        for name, value in (
            ("t", t),
            ("in_flight", live.in_flight),
            ("downloading", live.downloading),
            ("bytes", live.bytes),
            ("rows_verified", live.rows_verified),
        ):
            self.series[name].append(float(value))


def run(config: LoadConfig) -> dict[str, Any]:
    """Run the load as configured and return the report (see :mod:`tests.load.report`)."""
    if config.stack is None:
        targets = Targets(config.url, config.api_url, dict(config.pids), config.db)
        return measure(config, targets)
    settings = config.stack
    try:
        with contextlib.ExitStack() as cleanup:
            # The services' logs go to files (a probe every 100 ms makes a chatty access log):
            # kept in --log-dir, else in a directory removed after the run.
            log_dir = settings.log_dir
            if log_dir is None:
                log_dir = Path(cleanup.enter_context(tempfile.TemporaryDirectory()))
            log_dir.mkdir(parents=True, exist_ok=True)
            stack = cleanup.enter_context(
                running_stack(api_env=settings.api_env, bff_env=settings.bff_env, log_dir=log_dir)
            )
            assert stack.devdb is not None
            targets = Targets(
                stack.bff.url,
                stack.api.url,
                {s.name: s.pid for s in stack.services()},
                DbTarget(HOST, stack.devdb.port, DEV_USER, DEV_PASSWORD, DEV_DATABASE),
            )
            return measure(config, targets)
    except StackError as exc:
        raise LoadError(f"could not start the stack: {exc}") from None


def _check_targets(config: LoadConfig, targets: Targets) -> None:
    if config.target == "bff" and targets.bff_url is None:
        raise LoadError("--target bff needs the BFF's URL (--url)")
    if config.target == "api" and targets.api_url is None:
        raise LoadError("--target api needs the API's URL (--api-url)")
    for name, url in (("BFF", targets.bff_url), ("API", targets.api_url)):
        if url is None:
            continue
        try:
            status, _ = http_get(url.rstrip("/") + "/healthz", HEALTH_TIMEOUT_S)
        except OSError as exc:
            raise LoadError(f"the {name} at {url} does not answer: {exc}") from None
        if status != 200:
            raise LoadError(f"the {name} at {url} answers /healthz with {status}")


def _threads(pid: int | None) -> int | None:
    if pid is None:
        return None
    with contextlib.suppress(psutil.Error):
        return int(psutil.Process(pid).num_threads())
    return None


def _api_idle(api_url: str, bff_url: str | None) -> bool:
    metrics = read_metrics(api_url)
    if metrics.get(ACTIVE, 1) != 0 or metrics.get(IN_USE, 1) != 0:
        return False
    return bff_url is None or read_metrics(bff_url).get(RELAYS, 1) == 0


def _connections_settled(api_url: str, db: DbTarget) -> bool:
    """The dev server's open connections are the API pool's plus the one reading them."""
    metrics = read_metrics(api_url)
    pooled = metrics.get(IDLE, -1) + metrics.get(IN_USE, -1)
    return dbstats.read_stats(db)["connections_open"] == pooled + 1


@contextlib.contextmanager
def _watching(watchers: list[Periodic]) -> Iterator[None]:
    for watcher in watchers:
        watcher.start()
    try:
        yield
    finally:
        for watcher in watchers:
            watcher.stop()


def _rss_from_metrics(gauges: list[MetricsSampler], pids: dict[str, int]) -> dict[str, float]:
    """Peak RSS of services whose pid we do not know, as their /metrics reported it."""
    peaks = {}
    for sampler in gauges:
        values = [v for v in sampler.values.get(API_RSS, []) if not math.isnan(v)]
        if sampler.name not in pids and values:
            peaks[sampler.name] = max(values)
    return peaks


def measure(config: LoadConfig, targets: Targets) -> dict[str, Any]:
    _check_targets(config, targets)
    db_before, db_note = (
        dbstats.try_read_stats(targets.db) if targets.db else (None, "no database given")
    )
    api_pid = targets.pids.get("api")
    threads_before = _threads(api_pid)
    expected = reports.expectation(config.report)
    per_row = reports.bytes_per_row(config.report)
    plan = make_plan(
        requests=config.requests,
        query=config.report.query_string(),
        bad=reports.bad_requests(config.report),
        shares=config.shares,
        aborts=config.aborts,
        expected_size=expected.data_rows * per_row,
        seed=config.seed,
    )
    base_url = targets.bff_url if config.target == "bff" else targets.api_url
    assert base_url is not None
    settings = ClientSettings(
        base_url=base_url,
        path=config.path,
        slow_rate_bps=config.slow_rate_kib * KIB,
        request_timeout_s=config.request_timeout_s,
        verify=config.verify,
        xml_check=config.xml_check,
        expected=expected,
    )
    zero = time.monotonic()
    live = Live()
    probes = [
        HealthProbe(name, url, zero)
        for name, url in (("api", targets.api_url), ("bff", targets.bff_url))
        if url is not None
    ]
    workers = {} if api_pid is None else api_workers(api_pid)
    pids = {**workers, **targets.pids, "harness": os.getpid()}
    try:
        processes = ProcessSampler(pids, zero)
    except psutil.Error as exc:
        raise LoadError(f"cannot watch the processes {pids}: {exc}") from None
    gauges = []
    if targets.api_url is not None:
        gauges.append(MetricsSampler("api", targets.api_url, (ACTIVE, IN_USE, API_RSS), zero))
    if targets.bff_url is not None:
        gauges.append(MetricsSampler("bff", targets.bff_url, (RELAYS,), zero))
    live_sampler = LiveSampler(live, zero)
    drain_s = None
    final: dict[str, float] = {}
    with _watching([*probes, processes, *gauges, live_sampler]):
        results, wall = asyncio.run(
            run_load(
                plan,
                settings,
                concurrency=config.concurrency,
                duration_s=config.duration_s,
                live=live,
            )
        )
        if targets.api_url is not None:
            api_url, bff_url = targets.api_url, targets.bff_url
            drain_s = poll_until(
                lambda: _api_idle(api_url, bff_url), timeout_s=config.drain_timeout_s
            )
            with contextlib.suppress(OSError):
                metrics = read_metrics(api_url)
                final = {k: metrics[k] for k in (ACTIVE, IN_USE, IDLE) if k in metrics}
    threads_after = None
    if threads_before is not None:
        bound = threads_before + EXECUTOR_THREADS
        poll_until(lambda: (_threads(api_pid) or 0) <= bound, timeout_s=THREADS_SETTLE_S)
        threads_after = _threads(api_pid)
    settled = None
    db_after = None
    if targets.db is not None and db_before is not None:
        db = targets.db
        if targets.api_url is not None:
            api_url = targets.api_url
            settled = (
                poll_until(lambda: _connections_settled(api_url, db), timeout_s=THREADS_SETTLE_S)
                is not None
            )
        db_after, db_note = dbstats.try_read_stats(db)
    measurements = Measurements(
        config=config.for_json(),
        planned=len(plan),
        report=config.report,
        expected=expected,
        abort_margin=config.abort_margin,
        results=results,
        wall_s=wall,
        probes={p.name: p.probes for p in probes},
        processes=processes.series,
        metrics_rss=_rss_from_metrics(gauges, pids),
        timeline=live_sampler.series,
        gauges={g.name: {"t": g.times, **g.values} for g in gauges},
        db_before=db_before,
        db_after=db_after,
        db_note=db_note,
        drain_s=drain_s,
        drain_timeout_s=config.drain_timeout_s if targets.api_url is not None else 0.0,
        final_metrics=final,
        api_threads=(
            None
            if threads_before is None or threads_after is None
            else (threads_before, threads_after)
        ),
        db_connections_settled=settled,
    )
    return build_report(measurements, estimate_per_row=per_row)
