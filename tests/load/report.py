"""From what was measured to the report: figures, checks, a text table (pure).

The checks are the run's verdict. Errors the scenario is meant to provoke (503 beyond the
pool, 429 per-client limits) are reported, not failed; what must never happen is failed: a
completed transfer that is not the workbook asked for, a bad request not refused with 400 and
its code (INVALID_ROW_COUNT, INVALID_PARAMETER...), a query left running after its client went
away, an API that does not become idle, connections or threads left behind.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from tests.load.client import AbortPhase, Outcome, Result
from tests.load.expect import Expectation
from tests.load.monitor import Probe, ProcessSeries
from tests.load.plan import Behaviour
from tests.load.reports import ReportQuery

MIB = 1024 * 1024
MB = 1_000_000
# CPU use is reported per second of wall time: at 100 ms the sampling jitter dominates.
CPU_WINDOW_S = 1.0
# Threads an idle API may gain during a run without leaking: asyncio's default executor is
# started on demand (pool upkeep, readiness checks) and keeps up to min(32, cores + 4) threads
# (concurrent.futures.ThreadPoolExecutor's default). A leaked export worker per abort exceeds it.
EXECUTOR_THREADS = min(32, (os.cpu_count() or 1) + 4)


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0..100), linear between closest ranks; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def spread(values: Sequence[float]) -> dict[str, float | int | None]:
    return {
        "count": len(values),
        "p50": percentile(values, 50),
        "p95": percentile(values, 95),
        "p99": percentile(values, 99),
        "max": max(values) if values else None,
    }


@dataclass
class Check:
    name: str
    ok: bool | None  # None: could not be measured in this run
    detail: str


@dataclass
class Measurements:
    """Everything a run collected, handed to :func:`build_report`."""

    config: dict[str, Any]
    planned: int
    report: ReportQuery
    expected: Expectation  # what each download must hold
    abort_margin: int
    results: list[Result]
    wall_s: float
    probes: dict[str, list[Probe]] = field(default_factory=dict)
    processes: dict[str, ProcessSeries] = field(default_factory=dict)
    metrics_rss: dict[str, float] = field(default_factory=dict)  # peak RSS from /metrics
    timeline: dict[str, list[float]] = field(default_factory=dict)
    gauges: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    db_before: dict[str, int] | None = None
    db_after: dict[str, int] | None = None
    db_note: str = ""  # why the database counters are missing
    drain_s: float | None = None
    drain_timeout_s: float = 0.0
    final_metrics: dict[str, float] = field(default_factory=dict)
    api_threads: tuple[int, int] | None = None  # before the load, after the drain
    db_connections_settled: bool | None = None  # dev server's open == API pool's (+ ours)


def expected_size(results: Iterable[Result], rows: int, estimate_per_row: int) -> int:
    """The size of one complete file: the largest completed download (all ask for the same
    report and parameters; sizes vary by a few bytes with timestamps), else an estimate."""
    sizes = [r.bytes for r in results if r.outcome is Outcome.COMPLETED]
    return max(sizes) if sizes else rows * estimate_per_row


def classify_aborts(results: Sequence[Result], file_size: int, margin: int) -> dict[str, int]:
    """Client-side closes (planned aborts and harness timeouts) by where they landed."""
    counts = Counter[str]()
    for r in results:
        if r.abort_not_reached:
            counts["not_reached"] += 1  # the download completed before the abort point
        if r.outcome not in (Outcome.ABORTED, Outcome.TIMEOUT):
            continue
        counts["total"] += 1
        if r.outcome is Outcome.TIMEOUT:
            counts["timeouts"] += 1
        if r.abort_phase is AbortPhase.BEFORE_HEADERS:
            counts["before_headers"] += 1
        elif file_size - r.bytes > margin:
            counts["during_query"] += 1
        else:
            counts["near_end"] += 1
    return {
        key: counts[key]
        for key in (
            "total",
            "during_query",
            "before_headers",
            "near_end",
            "timeouts",
            "not_reached",
        )
    }


def _health(probes: Sequence[Probe]) -> dict[str, Any]:
    latencies = [p.latency_s * 1000 for p in probes]
    figures = spread(latencies)
    return {
        "probes": len(probes),
        "failures": sum(not p.ok for p in probes),
        "p50_ms": figures["p50"],
        "p99_ms": figures["p99"],
        "max_ms": figures["max"],
    }


def windowed_rate(
    times: Sequence[float], totals: Sequence[float], window_s: float
) -> tuple[list[float], list[float]]:
    """(times, rate per second) of a cumulative series, over windows of about ``window_s``."""
    out_t: list[float] = []
    out_v: list[float] = []
    start = 0
    for i, t in enumerate(times):
        span = t - times[start]
        if span >= window_s:
            out_t.append(t)
            out_v.append((totals[i] - totals[start]) / span)
            start = i
    return out_t, out_v


def _process(series: ProcessSeries) -> dict[str, Any]:
    if not series.times:
        return {"pid": series.pid, "samples": 0}
    _, per_s = windowed_rate(series.times, series.cpu_s, CPU_WINDOW_S)
    span = series.times[-1] - series.times[0]
    cpu = series.cpu_s[-1] - series.cpu_s[0]
    return {
        "pid": series.pid,
        "samples": len(series.times),
        "rss_start_mib": series.rss[0] / MIB,
        "rss_peak_mib": max(series.rss) / MIB,
        "rss_end_mib": series.rss[-1] / MIB,
        "cpu_s": cpu,
        "cpu_percent_mean": 100.0 * cpu / span if span > 0 else None,
        "cpu_percent_peak": 100.0 * max(per_s) if per_s else None,
        "threads_start": series.threads_first,
        "threads_end": series.threads_last,
    }


def _result_json(r: Result) -> dict[str, Any]:
    return {
        "index": r.index,
        "behaviour": r.behaviour.value,
        "query": r.query,
        "outcome": r.outcome.value,
        "status": r.status,
        "code": r.code,
        "bytes": r.bytes,
        "rows": r.rows,
        "started_s": round(r.started_s, 4),
        "duration_s": round(r.duration_s, 4),
        "first_byte_s": None if r.first_byte_s is None else round(r.first_byte_s, 4),
        "abort_phase": None if r.abort_phase is None else r.abort_phase.value,
        "abort_not_reached": r.abort_not_reached,
        "detail": r.detail,
    }


def build_report(m: Measurements, *, estimate_per_row: int) -> dict[str, Any]:
    results = m.results
    by_outcome = Counter(r.outcome.value for r in results)
    by_behaviour: dict[str, dict[str, int]] = {}
    for r in results:
        row = by_behaviour.setdefault(r.behaviour.value, {})
        row[r.outcome.value] = row.get(r.outcome.value, 0) + 1
    errors = Counter(
        r.error_key
        for r in results
        if r.outcome in (Outcome.ERROR, Outcome.BROKEN, Outcome.INVALID)
    )
    size = expected_size(results, m.expected.data_rows, estimate_per_row)
    aborts = classify_aborts(results, size, m.abort_margin)
    total_bytes = sum(r.bytes for r in results)
    total_rows = sum(r.rows for r in results)
    durations = {
        b.value: [
            r.duration_s for r in results if r.behaviour is b and r.outcome is Outcome.COMPLETED
        ]
        for b in (Behaviour.NORMAL, Behaviour.SLOW)
    }
    report: dict[str, Any] = {
        "config": m.config,
        "expected": {
            "report": m.report.report,
            "params": dict(m.report.params),
            "rows": m.expected.data_rows,
            "sheets": m.expected.for_json(),
            "summary": f"report {m.report.describe()}: {m.expected.describe()}",
        },
        "requests": {
            "planned": m.planned,
            "started": len(results),
            "not_started": m.planned - len(results),
            "by_outcome": dict(sorted(by_outcome.items())),
            "by_behaviour": by_behaviour,
            "errors": dict(sorted(errors.items())),
        },
        "throughput": {
            "wall_s": m.wall_s,
            "rows": total_rows,
            "bytes": total_bytes,
            "rows_per_s": total_rows / m.wall_s if m.wall_s > 0 else None,
            "mb_per_s": total_bytes / MB / m.wall_s if m.wall_s > 0 else None,
        },
        "file_size": size,
        "first_byte_s": spread([r.first_byte_s for r in results if r.first_byte_s is not None]),
        "download_s": {name: spread(values) for name, values in durations.items() if values},
        # How long an error took to come back (e.g. a 503 beyond the pool: it must come at once).
        "error_answer_s": spread([r.duration_s for r in results if r.outcome is Outcome.ERROR]),
        "health": {name: _health(probes) for name, probes in m.probes.items()},
        "processes": {name: _process(series) for name, series in m.processes.items()},
        "metrics_rss_peak_mib": {name: v / MIB for name, v in m.metrics_rss.items()},
        "aborts": aborts,
        "database": _database(m, aborts, by_outcome),
        "drain": {
            "seconds": m.drain_s,
            "timeout_s": m.drain_timeout_s,
            "final": m.final_metrics,
        },
        "leaks": {
            "api_threads_before_after": list(m.api_threads) if m.api_threads else None,
            "db_connections_settled": m.db_connections_settled,
        },
        "timeline": m.timeline,
        "health_probes": {
            name: [[round(p.t, 3), round(p.latency_s, 5), p.ok] for p in probes]
            for name, probes in m.probes.items()
        },
        "process_series": {
            name: {"t": s.times, "rss": s.rss, "cpu_s": s.cpu_s} for name, s in m.processes.items()
        },
        "gauges": m.gauges,
        "results": [_result_json(r) for r in results],
    }
    report["checks"] = [vars(c) for c in checks(m, report)]
    report["ok"] = all(c["ok"] is not False for c in report["checks"])
    return report


def _database(m: Measurements, aborts: Mapping[str, int], outcomes: Counter[str]) -> Any:
    if m.db_before is None or m.db_after is None:
        return None
    delta = {name: m.db_after[name] - m.db_before.get(name, 0) for name in m.db_after}
    # Every abort during a query must have cancelled it; an abort before the response or near
    # the end, a harness timeout, or a transfer the server broke off may or may not have.
    low = aborts["during_query"]
    high = low + aborts["before_headers"] + aborts["near_end"] + outcomes.get("broken", 0)
    return {
        "before": m.db_before,
        "after": m.db_after,
        "delta": delta,
        "attentions": delta.get("attentions"),
        "attentions_expected": [low, high],
    }


def checks(m: Measurements, report: Mapping[str, Any]) -> list[Check]:
    results = m.results
    out: list[Check] = []
    counted = sum(report["requests"]["by_outcome"].values())
    out.append(
        Check(
            "counts add up",
            counted == len(results) <= m.planned,
            f"{counted} outcomes for {len(results)} started of {m.planned} planned",
        )
    )
    invalid = [r for r in results if r.outcome is Outcome.INVALID]
    completed = sum(r.outcome is Outcome.COMPLETED for r in results)
    out.append(
        Check(
            "every finished download is the workbook asked for",
            not invalid,
            f"{completed} valid, {len(invalid)} invalid"
            + (f" (first: {invalid[0].detail})" if invalid else ""),
        )
    )
    bad = [r for r in results if r.behaviour is Behaviour.BAD]
    refused = sum(r.outcome is Outcome.REFUSED_AS_EXPECTED for r in bad)
    codes = sorted({r.refusal for r in bad if r.refusal})
    out.append(
        Check(
            "bad requests refused with 400 and their code",
            refused == len(bad),
            f"{refused} of {len(bad)}" + (f" ({', '.join(codes)})" if codes else ""),
        )
    )
    database = report["database"]
    if database is None or database["attentions"] is None:
        why = m.db_note or "database counters not read"
        out.append(Check("aborts cancelled their queries", None, why))
    else:
        low, high = database["attentions_expected"]
        seen = database["attentions"]
        answered = database["delta"].get("attentions_answered", seen)
        out.append(
            Check(
                "aborts cancelled their queries",
                low <= seen <= high and answered == seen,
                f"{seen} attentions, {answered} answered; {low} aborts during a query (each "
                f"needs one), {high - low} uncertain (before the response, within "
                f"{m.abort_margin:,} bytes of the end, or broken off)",
            )
        )
    if m.drain_s is None:
        out.append(
            Check(
                "API idle after the load",
                False if m.final_metrics or m.drain_timeout_s else None,
                f"not idle within {m.drain_timeout_s:g} s: {m.final_metrics}",
            )
        )
    else:
        out.append(Check("API idle after the load", True, f"after {m.drain_s:.2f} s"))
    if m.db_connections_settled is None:
        out.append(Check("no leaked database connections", None, "not measured"))
    else:
        out.append(
            Check(
                "no leaked database connections",
                m.db_connections_settled,
                "database's open connections = API pool's + the harness's own",
            )
        )
    if m.api_threads is None:
        out.append(Check("no leaked API threads", None, "API pid unknown"))
    else:
        before, after = m.api_threads
        out.append(
            Check(
                "no leaked API threads",
                after <= before + EXECUTOR_THREADS,
                f"{before} before, {after} after (at most {EXECUTOR_THREADS} more: the "
                "event loop's executor)",
            )
        )
    return out


def _fmt(value: Any, spec: str = ".1f") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return format(value, spec)
    return str(value)


def render(report: Mapping[str, Any]) -> str:
    """The report as text tables for a terminal."""
    lines: list[str] = []
    req = report["requests"]
    cfg = report["config"]
    lines.append(
        f"load: {req['started']} of {req['planned']} requests, {cfg['concurrency']} at once, "
        f"via {cfg['target']}" + (f" (scenario {cfg['scenario']})" if cfg.get("scenario") else "")
    )
    lines.append(f"{report['expected']['summary']} each")
    lines.append("")
    outcomes = sorted({o for row in req["by_behaviour"].values() for o in row})
    lines.append("| behaviour | " + " | ".join(outcomes) + " |")
    lines.append("|---|" + "---:|" * len(outcomes))
    for behaviour, row in sorted(req["by_behaviour"].items()):
        cells = " | ".join(str(row.get(o, 0)) for o in outcomes)
        lines.append(f"| {behaviour} | {cells} |")
    if req["errors"]:
        lines.append("")
        lines.append("errors: " + ", ".join(f"{k}: {v}" for k, v in req["errors"].items()))
    t = report["throughput"]
    lines.append("")
    lines.append(
        f"throughput: {t['rows']:,} verified rows, {t['bytes'] / MB:.1f} MB in "
        f"{t['wall_s']:.2f} s = {_fmt(t['rows_per_s'], ',.0f')} rows/s, "
        f"{_fmt(t['mb_per_s'], '.2f')} MB/s"
    )
    lines.append("")
    lines.append("| seconds | count | p50 | p95 | p99 | max |")
    lines.append("|---|---:|---:|---:|---:|---:|")
    timings = [("first byte", report["first_byte_s"])]
    timings += [(f"download ({k})", v) for k, v in report["download_s"].items()]
    if report["error_answer_s"]["count"]:
        timings.append(("error answer", report["error_answer_s"]))
    for name, s in timings:
        lines.append(
            f"| {name} | {s['count']} | {_fmt(s['p50'], '.3f')} | {_fmt(s['p95'], '.3f')} | "
            f"{_fmt(s['p99'], '.3f')} | {_fmt(s['max'], '.3f')} |"
        )
    if report["health"]:
        lines.append("")
        lines.append("| /healthz | probes | failed | p50 ms | p99 ms | max ms |")
        lines.append("|---|---:|---:|---:|---:|---:|")
        for name, h in report["health"].items():
            lines.append(
                f"| {name} | {h['probes']} | {h['failures']} | {_fmt(h['p50_ms'])} | "
                f"{_fmt(h['p99_ms'])} | {_fmt(h['max_ms'])} |"
            )
    if report["processes"]:
        lines.append("")
        lines.append(
            "| process | RSS start MiB | RSS peak MiB | CPU s | CPU % mean | CPU % peak (1 s) "
            "| threads start/end |"
        )
        lines.append("|---|---:|---:|---:|---:|---:|---:|")
        for name, p in report["processes"].items():
            if not p["samples"]:
                continue
            lines.append(
                f"| {name} | {p['rss_start_mib']:.1f} | {p['rss_peak_mib']:.1f} | "
                f"{p['cpu_s']:.2f} | {_fmt(p['cpu_percent_mean'], '.0f')} | "
                f"{_fmt(p['cpu_percent_peak'], '.0f')} | "
                f"{p['threads_start']}/{p['threads_end']} |"
            )
    for name, rss in report["metrics_rss_peak_mib"].items():
        lines.append(f"{name}: peak RSS {rss:.1f} MiB (from its /metrics)")
    a = report["aborts"]
    lines.append("")
    lines.append(
        f"aborts: {a['total']} client closes ({a['timeouts']} timeouts): "
        f"{a['during_query']} during a query, {a['before_headers']} before the response, "
        f"{a['near_end']} near the end; {a['not_reached']} aborting clients finished first"
    )
    db = report["database"]
    if db is not None:
        low, high = db["attentions_expected"]
        lines.append(
            f"database: {db['attentions']} attentions (expected {low}..{high}); delta {db['delta']}"
        )
    drain = report["drain"]
    lines.append(
        f"drain: {_fmt(drain['seconds'], '.2f')} s until exports_active 0 and pool idle "
        f"(final {drain['final']})"
    )
    lines.append("")
    for c in report["checks"]:
        mark = {True: "ok  ", False: "FAIL", None: "n/a "}[c["ok"]]
        lines.append(f"{mark} {c['name']}: {c['detail']}")
    return "\n".join(lines)
