"""The HTTP process's half of one export: the reading end of its channel and what the summary
line needs.

An export is over when both halves are: the handler (response ended or aborted) and the worker
(its thread over, connection given back: its ``done`` report, or its death). Whichever comes
second calls ``on_complete``. Both happen on the event loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from server.channel import Frame, FrameReader
from server.control import ExportSummary
from server.metrics import Outcome


class Relay:
    def __init__(
        self,
        *,
        export_id: int,
        report: str,
        request_id: str,
        worker: int,
        channel: FrameReader,
        on_worker_done: Callable[[Relay], None],
        on_complete: Callable[[Relay], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.export_id = export_id
        self.report = report  # the catalog id, for metrics and logs
        self.request_id = request_id
        self.worker = worker
        self._channel = channel
        self._on_worker_done = on_worker_done
        self._on_complete = on_complete
        self._clock = clock
        self._halves_left = 2
        self.started_at = clock()
        self.finished_at: float | None = None
        # The handler's half.
        self.outcome = Outcome.INTERNAL_ERROR
        self.cancel_reason = ""
        self.bytes_sent = 0
        self.first_byte_s: float | None = None
        self.rows = 0  # as the last frame said
        self._rows_reported = 0
        # The worker's half: None until it reported (or forever, if it died first).
        self.summary: ExportSummary | None = None
        self.worker_done = False

    async def next_frame(self) -> Frame | None:
        """The worker's next frame; None if the channel ended without one (the worker died)."""
        frame = await self._channel.read()
        if frame is not None:
            self.rows = max(self.rows, frame.rows)
        return frame

    def channel_backlog(self) -> int:
        """Bytes waiting in the export's channel (a slow client's export holds it full)."""
        return self._channel.backlog()

    def chunk_written(self, size: int) -> None:
        self.bytes_sent += size

    def new_rows(self) -> int:
        """Rows read since the last call (for a live ``export_rows_total``)."""
        delta = self.rows - self._rows_reported
        self._rows_reported = self.rows
        return delta

    def cancel(self, reason: str) -> None:
        """Stop the worker's export: close our end of the channel (the first reason is kept)."""
        if not self._channel.closed:
            self.cancel_reason = self.cancel_reason or reason
            self._channel.close()

    def handler_done(self, outcome: Outcome) -> None:
        self.outcome = outcome
        self._channel.close()  # nothing more is read; a worker still writing stops
        self._half_done()

    def worker_finished(self, summary: ExportSummary | None) -> None:
        """The worker's report (None: the worker died before sending it)."""
        if self.worker_done:
            return
        self.worker_done = True
        self.summary = summary
        if summary is not None:
            self.rows = summary.rows
        self._on_worker_done(self)
        self._half_done()

    def _half_done(self) -> None:
        self._halves_left -= 1
        if self._halves_left == 0:
            self.finished_at = self._clock()
            self._on_complete(self)
