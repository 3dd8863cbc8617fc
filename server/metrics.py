"""The export API's Prometheus metrics: what is counted, under which names, help and buckets;
``httpedge.prometheus`` writes them in the text format.

The HTTP process keeps them for the whole service: exports are admitted, relayed and summarised
there, and the workers report their pools and rows to it. Every change takes one lock;
rendering takes a consistent snapshot under the same lock. Gauges of things owned elsewhere
(pools, processes, workers) are sampled by the caller and passed to :meth:`Metrics.render`.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Sequence
from dataclasses import dataclass

from httpedge.prometheus import CONTENT_TYPE as CONTENT_TYPE  # what server.app answers with
from httpedge.prometheus import Histogram, counter, gauge, histogram, render, resident_memory

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


class Metrics:
    """The export API's counters; one instance per server."""

    def __init__(self, *, duration_buckets: Sequence[float] = DEFAULT_DURATION_BUCKETS) -> None:
        self._lock = threading.Lock()
        self._requests = dict.fromkeys(Outcome, 0)
        self._rows = 0
        self._bytes = 0
        self._active = 0
        self._durations = Histogram(duration_buckets)
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
            self._durations.observe(duration_s)
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
        # One consistent snapshot: each family's lines are built before the lock is released.
        with self._lock:
            counted = [
                counter(
                    "export_requests_total",
                    "Export requests by how they ended.",
                    (({"outcome": o.value}, n) for o, n in self._requests.items()),
                ),
                counter("export_rows_total", "Rows streamed.", self._rows),
                counter(
                    "export_bytes_total", "Response body bytes handed to clients.", self._bytes
                ),
                gauge("exports_active", "Exports in progress.", self._active),
                counter(
                    "export_report_requests_total",
                    "Export requests of each catalog report by how they ended.",
                    (
                        ({"report": report, "outcome": outcome.value}, n)
                        for (report, outcome), n in sorted(self._report_requests.items())
                    ),
                ),
                counter(
                    "export_report_rows_total",
                    "Rows streamed for each catalog report (counted when its export ends).",
                    (({"report": report}, n) for report, n in sorted(self._report_rows.items())),
                ),
                histogram(
                    "export_duration_seconds",
                    "Time from request to the end of the export.",
                    self._durations,
                ),
            ]
        return render(
            *counted,
            gauge(
                "db_pool_connections",
                "Pooled database connections by state.",
                [({"state": "idle"}, pool_idle), ({"state": "in_use"}, pool_in_use)],
            ),
            resident_memory(
                [
                    ({}, resident_memory_bytes),
                    *(
                        ({"worker": str(w.index)}, w.resident_memory_bytes)
                        for w in workers
                        if w.resident_memory_bytes is not None
                    ),
                ],
                "Resident set size of the HTTP process (no label) and of each worker process.",
            ),
            gauge("export_workers", "Worker processes running exports.", worker_processes),
            counter(
                "export_worker_restarts_total",
                "Worker processes replaced after they exited unexpectedly.",
                worker_restarts,
            ),
            gauge(
                "export_channel_bytes",
                "Bytes the workers have written to export channels and the HTTP process has not "
                "yet relayed (a client that reads slowly holds its export's channel full).",
                channel_bytes,
            ),
            gauge(
                "export_worker_exports_active",
                "Exports in progress, per worker.",
                [({"worker": str(w.index)}, w.active) for w in workers],
            ),
        )
