"""One export: a worker thread that owns a pooled connection from the first byte to the last.

The worker leases nothing itself (the handler leased a slot before starting it); it acquires
the connection, calls the procedure and waits for the first row, then tells the handler
(:class:`Started`, or :class:`Failed` so the client gets a JSON error instead of a broken
download). Then: rows in ``fetchmany`` batches -> ``xlsx.stream_xlsx`` -> ~64 KiB chunks ->
the bounded :class:`~server.handoff.Handoff` -> the handler's ``response.write``.

Cancellation (client gone, client stalled, shutdown) is a flag. The worker looks at it between
batches and while it waits for a free hand-off slot, and its :class:`~server.db.WatchedSocket`
looks at it while a database read is blocked; either way the attention is sent by this thread
(docs/pytds.md: cancelling from another thread breaks the connection). Whatever happened, the
connection goes back to the pool only if its protocol state is idle, else it is closed.

The export is over when both halves are: the worker (connection given back) and the handler
(response ended). Whichever finishes second calls ``on_complete`` (summary log, metrics).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, NoReturn

import xlsx
from server import report
from server.config import ApiConfig
from server.db import DbConnection, is_server_error, translate
from server.errors import DatabaseError, DatabaseTimeout, ExportError, InternalError
from server.handoff import Handoff
from server.memory import MemoryLog, ProcessMemory
from server.metrics import Outcome
from server.pool import Lease
from server.rowsource import RowSource, XlsxRowText
from tdsrows import FastRows
from xlsx.rows import RowEncoder

logger = logging.getLogger("server.export")

FIRST_ROW_TIMEOUT = "first-row timeout"
ROW_TIMEOUT = "between-rows timeout"
_CANCELLED = "cancelled"  # WatchedSocket's reason when the cancel flag interrupted a read


@dataclass(frozen=True)
class Started:
    """The procedure is running and its first row (or its end) arrived: send the 200."""

    columns: tuple[str, ...]


@dataclass(frozen=True)
class Finished:
    """Every row was written and the workbook closed; the last chunk was handed over."""


@dataclass(frozen=True)
class Failed:
    """The export cannot go on. Before :class:`Started`: answer with JSON. After: abort."""

    error: ExportError


Event = Started | bytes | Finished | Failed


class _Stop(Exception):
    """The cancel flag ended the export (the handler already knows why)."""


class ExportJob:
    """State shared by the handler (event loop) and the worker thread of one export."""

    def __init__(
        self,
        *,
        export_id: int,
        lease: Lease[DbConnection],
        row_count: int,
        config: ApiConfig,
        loop: asyncio.AbstractEventLoop,
        memory: ProcessMemory,
        on_complete: Callable[[ExportJob], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.export_id = export_id
        self.row_count = row_count
        self._lease = lease
        self._config = config
        self._clock = clock
        self._on_complete = on_complete
        self._handoff: Handoff[Event] = Handoff(loop, config.queue_chunks)
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._halves_left = 2
        self.started_at = clock()
        self.memory = MemoryLog(memory, logger, f"export {export_id}")
        self.stats = xlsx.WriteStats()
        # Written by the worker only.
        self.rows = 0
        self.db_result = "not started"
        self.connection_reused = False
        self.connection_kept = False
        # Written by the handler only.
        self.outcome = Outcome.INTERNAL_ERROR
        self.cancel_reason = ""
        self.bytes_sent = 0
        self.first_byte_s: float | None = None
        self.finished_at: float | None = None
        self._rows_reported = 0
        self._conn: DbConnection | None = None
        self._cursor: Any = None
        self._source: RowSource | None = None

    # -- handler side (event loop) --------------------------------------------------------------

    def start(self) -> None:
        thread = threading.Thread(target=self._run, name=f"export-{self.export_id}", daemon=True)
        thread.start()

    async def next_event(self) -> Event:
        return await self._handoff.get()

    def chunk_written(self, size: int) -> None:
        self.bytes_sent += size
        self._handoff.consumed()

    def cancel(self, reason: str) -> None:
        """Ask the worker to stop (idempotent; the first reason is kept)."""
        if not self._cancel.is_set():
            self.cancel_reason = reason
            self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def new_rows(self) -> int:
        """Rows fetched since the last call (for a live ``export_rows_total``)."""
        with self._lock:
            current = self.rows
            delta = current - self._rows_reported
            self._rows_reported = current
        return delta

    def handler_done(self, outcome: Outcome) -> None:
        self.outcome = outcome
        self._half_done()

    # -- worker side (own thread) ---------------------------------------------------------------

    def _run(self) -> None:
        self.memory.sample("at start")
        try:
            self._work()
        except _Stop:
            self.db_result = f"cancelled ({self.cancel_reason or 'stopped'})"
            if not self._cancel.is_set():  # never leave the handler waiting for an event
                self._emit(Failed(InternalError("the export stopped unexpectedly")))
        except ExportError as exc:
            self.db_result = f"failed: {exc.message}"
            self._emit(Failed(exc))
        except Exception as exc:
            logger.exception("export %d: unexpected error in the worker", self.export_id)
            self.db_result = f"failed: {type(exc).__name__}"
            self._emit(Failed(InternalError("the export failed unexpectedly")))
        finally:
            self._settle()
            conn, self._conn = self._conn, None
            self.connection_kept = conn is not None and conn.is_idle()
            self._lease.release(conn, reusable=self.connection_kept)
            self._half_done()

    def _work(self) -> None:
        cursor, source, first = self._start_query()
        columns = tuple(str(d[0]) for d in cursor.description)
        if not self._emit(Started(columns)):
            raise _Stop
        headers, specs = report.layout(cursor.description, source.int_meanings())
        assert self._conn is not None
        self._conn.socket.watch(
            self._cancel.is_set, silence_limit_s=self._config.row_timeout_s, reason=ROW_TIMEOUT
        )
        rows: Iterator[tuple[Any, ...]] | _FastXmlRows
        if source.fast is not None:
            rows = _FastXmlRows(self, cursor, source.fast)
        else:
            rows = self._rows(cursor, source, first)
        chunks = xlsx.stream_xlsx(
            headers,
            rows,
            sheet_name="Report",
            columns=specs,
            max_rows_per_sheet=self._config.max_rows_per_sheet,
            stats=self.stats,
        )
        try:
            for chunk in chunks:
                if not self._handoff.put(
                    chunk,
                    counted=True,
                    stop=self._cancel.is_set,
                    poll_s=self._config.poll_interval_s,
                ):
                    raise _Stop
        finally:
            chunks.close()  # stop the writer (and so the row source) now
        self.db_result = "completed"
        self._emit(Finished())

    def _start_query(self) -> tuple[Any, RowSource, list[Any]]:
        """Connection, procedure call and first rows; a dead pooled connection is retried once."""
        for attempt in (1, 2):
            self._check_cancelled()
            conn, reused = self._lease.acquire()
            self._conn = conn
            self.connection_reused = reused
            conn.socket.reset()  # no attention state left over from the previous borrower
            conn.socket.watch(
                self._cancel.is_set,
                silence_limit_s=self._config.first_row_timeout_s,
                reason=FIRST_ROW_TIMEOUT,
            )
            cursor = self._cursor = conn.cursor()
            try:
                cursor.callproc(self._config.procedure, {"@RowCount": self.row_count})
                if cursor.description is None:
                    source, first = None, []
                else:
                    source = self._source = RowSource(
                        cursor,
                        fast=self._config.fast_rows,
                        batch_rows=self._config.fetch_batch_rows,
                        label=f"export {self.export_id}",
                    )
                    first = source.first()
            except Exception as exc:
                if conn.socket.attention_reason is not None:
                    # Our timeout's attention went unanswered (a frozen database): to the
                    # client that is still no first row in time, not a lost connection.
                    self._check_interrupted()
                if is_server_error(exc) or conn.socket.attention_reason is not None:
                    raise translate(exc) from exc  # the connection is settled at the end
                # Not the server's answer: the socket. If the connection came from the pool it
                # may have died while idle (no FIN seen yet); one fresh connection settles that.
                self._discard()
                if reused and attempt == 1:
                    logger.info(
                        "export %d: pooled connection was dead, reconnecting", self.export_id
                    )
                    continue
                raise translate(exc) from exc
            self._check_interrupted()
            if source is None:
                raise DatabaseError(f"{self._config.procedure} returned no result set")
            return cursor, source, first
        raise AssertionError("unreachable: the second attempt returns or raises")

    def _rows(self, cursor: Any, source: RowSource, first: list[Any]) -> Iterator[tuple[Any, ...]]:
        """pytds' rows, batch by batch, with the cancel flag checked between batches.

        RSS is sampled after exactly 5,000, 10,000, ... rows (a batch crossing a multiple of
        the memory-log interval is split there).
        """
        log_every = self._config.memory_log_every_rows
        batch = first
        while batch:
            if log_every and self.rows // log_every != (self.rows + len(batch)) // log_every:
                cut = log_every - self.rows % log_every
                self._count(cut)
                yield from batch[:cut]
                self.memory.sample(f"after {self.rows:,} rows")
                batch = batch[cut:]
                if batch:
                    continue
            else:
                self._count(len(batch))
                yield from batch
            self._check_cancelled()
            try:
                batch = source.fetch()
            except Exception as exc:
                self._fail_mid_stream(exc)
        self._end_of_rows(cursor)

    def _end_of_rows(self, cursor: Any) -> None:
        """The result set ended: was it cut short by our attention? Then read the rest."""
        self._check_interrupted()
        try:
            # RETURNSTATUS and DONEPROC are still unread (docs/pytds.md): reading them leaves the
            # connection idle instead of needing an attention before its next request.
            while cursor.nextset():
                pass
        except Exception as exc:
            self._fail_mid_stream(exc)

    def _count(self, rows: int) -> None:
        with self._lock:
            self.rows += rows

    def _fail_mid_stream(self, exc: Exception) -> NoReturn:
        if not is_server_error(exc):
            self._discard()  # the socket failed: nothing to settle
        raise translate(exc) from exc

    def _check_cancelled(self) -> None:
        if self._cancel.is_set():
            raise _Stop

    def _check_interrupted(self) -> None:
        """After a read returned: did our socket interrupt it with an attention?

        An interrupted read looks like a normal end of rows to pytds (the server's DONE
        carries the ATTN flag), so this check is what keeps a cancelled or timed-out stream
        from being finished as a well-formed but truncated workbook.
        """
        assert self._conn is not None
        reason = self._conn.socket.attention_reason
        if reason is None:
            return
        if reason == _CANCELLED:
            raise _Stop
        limit = (
            self._config.first_row_timeout_s
            if reason == FIRST_ROW_TIMEOUT
            else self._config.row_timeout_s
        )
        raise DatabaseTimeout(f"the database sent nothing for {limit:g} s ({reason})")

    def _settle(self) -> None:
        """Bring the connection back to idle (attention + drain), or give up on it."""
        conn = self._conn
        if conn is None or conn.is_idle():
            return
        conn.socket.attention_sent(_CANCELLED)
        try:
            # Sends the attention unless one is on its way, then reads up to its acknowledgement.
            if self._source is not None:
                self._source.settle()
            else:
                self._cursor.cancel()
        except Exception:
            logger.info("export %d: connection did not settle; discarding it", self.export_id)
            self._discard()

    def _discard(self) -> None:
        """Close the connection now; the lease is then given back without one."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def _emit(self, event: Event) -> bool:
        return self._handoff.put(
            event, counted=False, stop=self._cancel.is_set, poll_s=self._config.poll_interval_s
        )

    # -- both ---------------------------------------------------------------------------------

    def _half_done(self) -> None:
        with self._lock:
            self._halves_left -= 1
            last = self._halves_left == 0
        if last:
            self.finished_at = self._clock()
            self._on_complete(self)


class _FastXmlRows:
    """The fast path as the workbook's row source (``xlsx.sources.RowXmlSource``): rows go
    from the wire to their `<row>` XML in generated code, with the export's bookkeeping
    between batches (cancel flag, row count, memory log at exact multiples, end checks)."""

    def __init__(self, job: ExportJob, cursor: Any, fast: FastRows) -> None:
        self._job = job
        self._cursor = cursor
        self._fast = fast

    def bind(self, encoder: RowEncoder) -> None:
        self._fast.use_text(XlsxRowText(encoder))

    @property
    def finished(self) -> bool:
        return self._fast.finished

    def fill(self, out: list[str], last: int, limit: int, room: int) -> int:
        job = self._job
        job._check_cancelled()
        every = job._config.memory_log_every_rows
        if every:  # end the batch at the next multiple of the memory-log interval
            limit = min(limit, last + every - job.rows % every)
        try:
            written = self._fast.fill(out, last, limit, room)
        except Exception as exc:
            job._fail_mid_stream(exc)
        job._count(written - last)
        if every and written > last and job.rows % every == 0:
            job.memory.sample(f"after {job.rows:,} rows")
        if self._fast.finished:
            job._end_of_rows(self._cursor)
        return written
