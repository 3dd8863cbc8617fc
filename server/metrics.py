"""Prometheus metrics in the text exposition format (version 0.0.4), written by hand.

A handful of counters, a few gauges and one histogram do not need a client library. The HTTP
process keeps them for the whole service: exports are admitted, relayed and summarised there,
and the workers report their pools and rows to it. Every change takes one lock; rendering takes
a consistent snapshot under the same lock. Gauges of things owned elsewhere (pools, processes,
workers) are sampled by the caller and passed to :meth:`Metrics.render`.
"""

from __future__ import annotations

import enum
import math
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# Export durations range from a fraction of a second (a few thousand rows) to about a minute
# (1M rows at ~30k rows/s) and longer for slow clients: roughly x2.5 steps over that range.
DEFAULT_DURATION_BUCKETS: tuple[float, ...] = (
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    25.0,
    60.0,
    120.0,
    300.0,
    600.0,
)


class Outcome(enum.StrEnum):
    """How an export request ended; the ``outcome`` label of ``export_requests_total``."""

    COMPLETED = "completed"
    CLIENT_DISCONNECTED = "client_disconnected"  # went away, or stopped reading for too long
    DB_ERROR = "db_error"  # unreachable, login refused, error or timeout, before or mid-stream
    PROTOCOL_ERROR = "protocol_error"  # the database sent what TDS does not allow (502)
    REJECTED = "rejected"  # 503: every connection busy, or shutting down
    INVALID = "invalid"  # 400: bad rowCount
    SHUTDOWN = "shutdown"  # still running when the shutdown grace period ended
    INTERNAL_ERROR = "internal_error"  # a bug on our side


@dataclass(frozen=True)
class WorkerSample:
    """One worker, sampled for /metrics."""

    index: int
    active: int  # exports it is running
    resident_memory_bytes: int | None  # None: no process of its own, or just gone


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


class Metrics:
    """The export API's counters; one instance per server."""

    def __init__(self, *, duration_buckets: Sequence[float] = DEFAULT_DURATION_BUCKETS) -> None:
        self._lock = threading.Lock()
        self._requests = dict.fromkeys(Outcome, 0)
        self._rows = 0
        self._bytes = 0
        self._active = 0
        self._buckets = tuple(sorted(duration_buckets))
        self._bucket_counts = [0] * len(self._buckets)
        self._duration_sum = 0.0
        self._duration_count = 0
        # Per catalog report: only ids of the catalog get here (an unknown id is refused
        # before), so the label's values are bounded by the catalog.
        self._report_requests: dict[tuple[str, Outcome], int] = {}
        self._report_rows: dict[str, int] = {}

    def export_started(self) -> None:
        with self._lock:
            self._active += 1

    def export_finished(
        self, outcome: Outcome, duration_s: float, report: str | None = None, rows: int = 0
    ) -> None:
        """One export (started with :meth:`export_started`) of ``report`` ended after ``rows``."""
        with self._lock:
            self._active -= 1
            self._requests[outcome] += 1
            self._observe(duration_s)
            self._count_report(report, outcome, rows)

    def request_refused(self, outcome: Outcome, report: str | None = None) -> None:
        """An export request answered without starting (400, 503 before any work); ``report``
        when the path named a report of the catalog."""
        with self._lock:
            self._requests[outcome] += 1
            self._count_report(report, outcome, 0)

    def _count_report(self, report: str | None, outcome: Outcome, rows: int) -> None:
        if report is None:
            return
        key = (report, outcome)
        self._report_requests[key] = self._report_requests.get(key, 0) + 1
        self._report_rows[report] = self._report_rows.get(report, 0) + rows

    def report_requests(self, report: str, outcome: Outcome) -> int:
        with self._lock:
            return self._report_requests.get((report, outcome), 0)

    def add_rows(self, rows: int) -> None:
        with self._lock:
            self._rows += rows

    def add_bytes(self, count: int) -> None:
        with self._lock:
            self._bytes += count

    def _observe(self, value: float) -> None:
        for i, bound in enumerate(self._buckets):
            if value <= bound:
                self._bucket_counts[i] += 1
        self._duration_sum += value
        self._duration_count += 1

    @property
    def active(self) -> int:
        with self._lock:
            return self._active

    def requests(self, outcome: Outcome) -> int:
        with self._lock:
            return self._requests[outcome]

    def render(
        self,
        *,
        pool_idle: int,
        pool_in_use: int,
        resident_memory_bytes: int,
        workers: Sequence[WorkerSample] = (),
        worker_processes: int = 0,
        worker_restarts: int = 0,
        channel_bytes: int = 0,
    ) -> str:
        """The exposition text; pool, process and worker figures are sampled by the caller."""
        with self._lock:
            lines: list[str] = []
            _family(
                lines,
                "export_requests_total",
                "counter",
                "Export requests by how they ended.",
                ((f'outcome="{o.value}"', n) for o, n in self._requests.items()),
            )
            _family(lines, "export_rows_total", "counter", "Rows streamed.", [("", self._rows)])
            _family(
                lines,
                "export_bytes_total",
                "counter",
                "Response body bytes handed to clients.",
                [("", self._bytes)],
            )
            _family(lines, "exports_active", "gauge", "Exports in progress.", [("", self._active)])
            _family(
                lines,
                "export_report_requests_total",
                "counter",
                "Export requests of each catalog report by how they ended.",
                (
                    (f'report="{report}",outcome="{outcome.value}"', n)
                    for (report, outcome), n in sorted(self._report_requests.items())
                ),
            )
            _family(
                lines,
                "export_report_rows_total",
                "counter",
                "Rows streamed for each catalog report (counted when its export ends).",
                ((f'report="{report}"', n) for report, n in sorted(self._report_rows.items())),
            )
            lines.append(
                "# HELP export_duration_seconds Time from request to the end of the export."
            )
            lines.append("# TYPE export_duration_seconds histogram")
            for bound, count in zip(self._buckets, self._bucket_counts, strict=True):
                lines.append(f'export_duration_seconds_bucket{{le="{_number(bound)}"}} {count}')
            lines.append(f'export_duration_seconds_bucket{{le="+Inf"}} {self._duration_count}')
            lines.append(f"export_duration_seconds_sum {_number(self._duration_sum)}")
            lines.append(f"export_duration_seconds_count {self._duration_count}")
        _family(
            lines,
            "db_pool_connections",
            "gauge",
            "Pooled database connections by state.",
            [('state="idle"', pool_idle), ('state="in_use"', pool_in_use)],
        )
        memory: list[tuple[str, float]] = [("", resident_memory_bytes)]
        memory += [
            (f'worker="{w.index}"', w.resident_memory_bytes)
            for w in workers
            if w.resident_memory_bytes is not None
        ]
        _family(
            lines,
            "process_resident_memory_bytes",
            "gauge",
            "Resident set size of the HTTP process (no label) and of each worker process.",
            memory,
        )
        _family(
            lines,
            "export_workers",
            "gauge",
            "Worker processes running exports.",
            [("", worker_processes)],
        )
        _family(
            lines,
            "export_worker_restarts_total",
            "counter",
            "Worker processes replaced after they exited unexpectedly.",
            [("", worker_restarts)],
        )
        _family(
            lines,
            "export_channel_bytes",
            "gauge",
            "Bytes the workers have written to export channels and the HTTP process has not "
            "yet relayed (a client that reads slowly holds its export's channel full).",
            [("", channel_bytes)],
        )
        _family(
            lines,
            "export_worker_exports_active",
            "gauge",
            "Exports in progress, per worker.",
            [(f'worker="{w.index}"', w.active) for w in workers],
        )
        return "\n".join(lines) + "\n"


def _family(
    lines: list[str], name: str, kind: str, help_text: str, samples: Iterable[tuple[str, float]]
) -> None:
    lines.append(f"# HELP {name} {help_text}")
    lines.append(f"# TYPE {name} {kind}")
    for labels, value in samples:
        label_text = f"{{{labels}}}" if labels else ""
        lines.append(f"{name}{label_text} {_number(value)}")
