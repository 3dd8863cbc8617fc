"""Exports in worker processes, under load: ``python -m tests.bench.workers``.

Starts the stack once (dev database, API, BFF: each a process, ``scripts.stack``) and runs the
load harness (``tests.load``) as a library against it, watching every process: the API's HTTP
process and each of its workers (the harness finds them), the BFF, the dev database and the
harness itself. All downloads go through the BFF and every workbook is checked as it
arrives (the harness's streaming check).

1. **Throughput**: one ``--large-rows`` download alone, then four at once. Target: four finish
   with >= 1.6x the aggregate rows/s of one alone.
   The same once more without the harness's checks of the workbooks (rows/s from bytes).
2. **Many at once**: ``--many`` concurrent ``--rows`` downloads (the API's limit is as many).
   Targets: /healthz p99 of the API and of the BFF < 100 ms; every download valid; and, probed
   while every slot is taken, a request beyond the limit answered ``503 TOO_MANY_EXPORTS``
   through the BFF in < 100 ms. Both probes run in a process of their own: the harness's own
   probes wait for its interpreter lock while it checks fifty workbooks (both are shown).
3. **Abandoned**: ``--drops`` clients close their ``--large-rows`` downloads at the same moment.
   Targets: every query cancelled (an attention for each), the API idle (``exports_active 0``,
   no pooled connection in use) < 2 s after the last close.
4. **Memory**: peak RSS of every process with one download (``--rows`` and ``--large-rows``)
   and with ``--many``.

Prints Markdown tables and the verdicts; ``--json FILE`` keeps every harness report.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import multiprocessing
import statistics
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from scripts.stack import DEV_DATABASE, DEV_PASSWORD, DEV_USER, HOST, Stack, running_stack
from tests.load import options, runner
from tests.load.dbstats import DbTarget
from tests.load.monitor import HealthProbe, read_metrics

TARGET_SCALING = 1.6
TARGET_HEALTH_P99_MS = 100.0
TARGET_REFUSAL_MS = 100.0
TARGET_DRAIN_S = 2.0
# Requests beyond the limit: one every 200 ms while every slot is taken, on a new connection
# each (as a browser's download), at most this many.
REFUSAL_PROBES = 40
REFUSAL_INTERVAL_S = 0.2
# Abandoning clients close their downloads this long after they all started together.
DROP_AFTER_S = 2.0


@dataclass
class RefusalProbe:
    """GET beyond the limit through the BFF while the API reports every slot taken."""

    bff_url: str
    api_url: str
    limit: int
    rows: int
    latencies_ms: list[float] = field(default_factory=list)
    answers: dict[str, int] = field(default_factory=dict)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _full(self) -> bool:
        with contextlib.suppress(OSError, http.client.HTTPException):
            return read_metrics(self.api_url).get("exports_active", 0) >= self.limit
        return False

    def _run(self) -> None:
        while not self._stop.is_set() and not self._full():
            self._stop.wait(0.05)
        parts = urlsplit(self.bff_url)
        while len(self.latencies_ms) < REFUSAL_PROBES and not self._stop.wait(REFUSAL_INTERVAL_S):
            if not self._full():  # a download ended: a probe now might be admitted
                break
            connection = http.client.HTTPConnection(parts.hostname or HOST, parts.port, timeout=10)
            started = time.perf_counter()
            try:
                connection.request("GET", f"/exports/report?rowCount={self.rows}")
                response = connection.getresponse()
                body = response.read()
            finally:
                connection.close()
            elapsed_ms = (time.perf_counter() - started) * 1000
            code = json.loads(body)["error"]["code"] if response.status != 200 else ""
            key = f"{response.status} {code}".strip()
            self.answers[key] = self.answers.get(key, 0) + 1
            if response.status == 503:
                self.latencies_ms.append(elapsed_ms)


def _watch(bff_url: str, api_url: str, limit: int, rows: int, pipe: Connection) -> None:
    """In a process of its own (the harness's process is busy checking workbooks, and its
    probes wait for its interpreter lock): /healthz of both services every 100 ms, and the
    requests beyond the limit, until told to stop."""
    zero = time.monotonic()
    health = [HealthProbe("api", api_url, zero), HealthProbe("bff", bff_url, zero)]
    refusals = RefusalProbe(bff_url, api_url, limit, rows)
    for probe in health:
        probe.start()
    refusals.start()
    pipe.recv()
    for probe in health:
        probe.stop()
    refusals.stop()
    pipe.send(
        {
            "health": {p.name: [x.latency_s * 1000 for x in p.probes if x.ok] for p in health},
            "health_failures": {p.name: sum(not x.ok for x in p.probes) for p in health},
            "refusals_ms": refusals.latencies_ms,
            "refusal_answers": refusals.answers,
        }
    )


@contextlib.contextmanager
def _watching(stack: Stack, limit: int, rows: int) -> Iterator[dict[str, Any]]:
    """The watcher process for the duration of the block; its findings in the dict yielded."""
    ours, theirs = multiprocessing.get_context("spawn").Pipe()
    process = multiprocessing.get_context("spawn").Process(
        target=_watch, args=(stack.bff.url, stack.api.url, limit, rows, theirs), daemon=True
    )
    process.start()
    found: dict[str, Any] = {}
    try:
        yield found
    finally:
        ours.send("stop")
        found.update(ours.recv())
        process.join()


def _p99(values: Sequence[float]) -> float:
    """The nearest-rank 99th percentile of ``values`` (not empty)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    return f"p50 {statistics.median(values):.1f}, p99 {_p99(values):.1f}, max {max(values):.1f} ms"


def _load(stack: Stack, pids: dict[str, int], argv: Sequence[str]) -> dict[str, Any]:
    assert stack.devdb is not None
    config = options.parse(
        ["--url", stack.bff.url, "--api-url", stack.api.url, "--drain-timeout", "60", *argv]
    )
    targets = runner.Targets(
        stack.bff.url,
        stack.api.url,
        pids,
        DbTarget(HOST, stack.devdb.port, DEV_USER, DEV_PASSWORD, DEV_DATABASE),
    )
    return runner.measure(config, targets)


@contextlib.contextmanager
def _stack(limit: int) -> Iterator[tuple[Stack, dict[str, int]]]:
    api_env = {"API_POOL_MAX": str(limit), "API_POOL_MIN": "5"}
    bff_env = {"BFF_MAX_DOWNLOADS_PER_CLIENT": "0"}  # every client is 127.0.0.1
    with running_stack(api_env=api_env, bff_env=bff_env) as stack:
        assert stack.devdb is not None
        # The API's workers are found and watched by the harness (tests.load.monitor).
        pids = {"api": stack.api.pid, "bff": stack.bff.pid, "devdb": stack.devdb.pid}
        yield stack, pids


def _process_table(title: str, field: str, runs: Sequence[tuple[str, dict[str, Any]]]) -> str:
    """A Markdown table of one per-process figure (``field`` of each report's ``processes``),
    a row per run, a column per process (every run watches the same processes)."""
    names = sorted(runs[0][1]["processes"])
    lines = [f"\n{title}:\n", "| run | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for label, report in runs:
        processes = report["processes"]
        cells = [f"{processes[name][field]:.1f}" for name in names]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _verdict(ok: bool, text: str) -> str:
    return f"{'ok  ' if ok else 'MISS'} {text}"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.workers", description=__doc__)
    parser.add_argument("--rows", type=int, default=100_000, help="rows per download (100,000)")
    parser.add_argument(
        "--large-rows", type=int, default=1_000_000, help="rows of the large ones (1,000,000)"
    )
    parser.add_argument("--many", type=int, default=50, help="downloads at once = the limit (50)")
    parser.add_argument("--drops", type=int, default=30, help="abandoning clients (30)")
    parser.add_argument("--json", type=Path, help="write every harness report here")
    args = parser.parse_args(argv)

    reports: dict[str, dict[str, Any]] = {}
    with _stack(args.many) as (stack, pids):
        print(f"processes: {pids}", flush=True)

        def run(name: str, *load_argv: str) -> dict[str, Any]:
            print(f"-- {name}", flush=True)
            report = _load(stack, pids, load_argv)
            reports[name] = report
            if not report["ok"]:
                failed = [c for c in report["checks"] if c["ok"] is False]
                print(f"   harness checks failed: {failed}", flush=True)
            return report

        alone = ["--concurrency", "1", "--requests", "1"]
        large = ["--rows", str(args.large_rows)]
        one_small = run("1 x rows", *alone, "--rows", str(args.rows))
        one = run("1 x large", *alone, *large)
        four = run("4 x large", "--concurrency", "4", "--requests", "4", *large)
        # The same without the harness's workbook checks (~1.5 us of CPU a row, on the same
        # cores): what the service itself scales to.
        one_bare = run("1 x large, unchecked", *alone, *large, "--no-verify")
        four_bare = run(
            "4 x large, unchecked", "--concurrency", "4", "--requests", "4", *large, "--no-verify"
        )
        many_argv = ["--concurrency", str(args.many), "--requests", str(args.many)]
        with _watching(stack, args.many, args.rows) as watched:
            many = run("many x rows", *many_argv, "--rows", str(args.rows))
        drops = run(
            "drops x large",
            *["--concurrency", str(args.drops), "--requests", str(args.drops), *large],
            *["--abort-share", "1", "--abort-by", "seconds"],
            *["--abort-seconds", f"{DROP_AFTER_S}:{DROP_AFTER_S}"],
        )

    if args.json is not None:
        args.json.write_text(json.dumps(reports, indent=1) + "\n", encoding="utf-8")

    one_rate = one["throughput"]["rows_per_s"]
    four_rate = four["throughput"]["rows_per_s"]
    scaling = four_rate / one_rate
    bare_scaling = (
        four_bare["throughput"]["bytes"]
        / four_bare["throughput"]["wall_s"]
        / (one_bare["throughput"]["bytes"] / one_bare["throughput"]["wall_s"])
    )
    print("\n| run | downloads | rows/s | MB/s | wall s | harness ok |")
    print("|---|---:|---:|---:|---:|---|")
    for name, report in reports.items():
        t = report["throughput"]
        started = report["requests"]["started"]
        print(
            f"| {name} | {started} | {t['rows_per_s']:,.0f} | {t['mb_per_s']:.1f} | "
            f"{t['wall_s']:.1f} | {report['ok']} |"
        )
    memory_runs = [
        (f"1 x {args.rows:,}", one_small),
        (f"1 x {args.large_rows:,}", one),
        (f"4 x {args.large_rows:,}", four),
        (f"{args.many} x {args.rows:,}", many),
        (f"{args.drops} x {args.large_rows:,} dropped", drops),
    ]
    print(_process_table("Peak RSS, MiB", "rss_peak_mib", memory_runs))
    cpu_runs = [
        (f"1 x {args.large_rows:,}", one),
        (f"4 x {args.large_rows:,}", four),
        (f"1 x {args.large_rows:,}, unchecked", one_bare),
        (f"4 x {args.large_rows:,}, unchecked", four_bare),
    ]
    print(_process_table("CPU seconds", "cpu_s", cpu_runs))

    health = watched["health"]
    health_p99 = {name: _p99(values) if values else 1e9 for name, values in health.items()}
    refusals = watched["refusals_ms"]
    drain_s = drops["drain"]["seconds"]
    database = drops["database"]
    verdicts = [
        _verdict(
            scaling >= TARGET_SCALING,
            f"4 x {args.large_rows:,}: {four_rate:,.0f} rows/s = {scaling:.2f}x one alone "
            f"({one_rate:,.0f}); target >= {TARGET_SCALING}x (unchecked by the harness: "
            f"{bare_scaling:.2f}x)",
        ),
        _verdict(
            max(health_p99.values()) < TARGET_HEALTH_P99_MS
            and not any(watched["health_failures"].values()),
            f"{args.many} x {args.rows:,}: /healthz API {_spread(health['api'])}, BFF "
            f"{_spread(health['bff'])}, failures {watched['health_failures']} (own process); "
            f"the harness's probes: API p99 {many['health']['api']['p99_ms']:.1f} ms, BFF "
            f"{many['health']['bff']['p99_ms']:.1f} ms; target p99 < {TARGET_HEALTH_P99_MS:g} ms",
        ),
        _verdict(
            many["requests"]["by_outcome"] == {"completed": args.many},
            f"{args.many} x {args.rows:,}: outcomes {many['requests']['by_outcome']}",
        ),
        _verdict(
            bool(refusals) and max(refusals) < TARGET_REFUSAL_MS,
            f"beyond the limit, through the BFF: {watched['refusal_answers']}, "
            f"{_spread(refusals)}; target < {TARGET_REFUSAL_MS:g} ms",
        ),
        _verdict(
            database is not None
            and database["attentions"] == args.drops
            and drain_s is not None
            and drain_s < TARGET_DRAIN_S,
            f"{args.drops} dropped: {None if database is None else database['attentions']} "
            f"attentions, idle after {drain_s} s; target every query cancelled, < "
            f"{TARGET_DRAIN_S:g} s",
        ),
    ]
    print("\n" + "\n".join(verdicts))
    return 0 if all(v.startswith("ok") for v in verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
