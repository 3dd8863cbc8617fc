"""One export in a worker process: a thread that owns a pooled connection from the first byte
to the last, and writes the workbook to the export's channel (:mod:`server.channel`).

The worker leases the slot when the job arrives (the HTTP process admitted it already); the
thread acquires the connection, calls the procedure and waits for the first row, then sends
``STARTED`` (or ``FAILED``, so the client gets a JSON error instead of a broken download).
Then, for each result set the procedure returns (each a sheet; only the first if the report
says so): rows (the fast row path, or pytds' ``fetchmany`` batches) -> ``xlsx.stream_workbook``
-> ~64 KiB chunks -> ``CHUNK`` frames, each written with a blocking send that waits while the
channel's small buffer is full: a slow client stops this thread, and so the database. The next
result set is read only when the writer asks for the next sheet; what comes between sets
(row counts of other statements, PRINT and RAISERROR messages) is read past. The rows of all
sheets together are held to the call's row limit (the report's, or fewer: the rows its row
count parameter asks for): one more is an error, never a workbook quietly cut short. And
where the server counts a result set's rows in the token that ends it (DONE with its COUNT
bit: SQL Server does unless ``SET NOCOUNT ON``), the rows read must be that many: a stream
that ends early, or that another count contradicts, breaks the download off too.

Cancellation (client gone, client stalled, shutdown) is the HTTP process closing its end of the
channel. The thread sees it on its next write (a write blocked on the full buffer wakes at
once), between batches, and, through its :class:`~server.db.WatchedSocket`, while a database
read is blocked; either way the attention is sent by this thread (docs/driver.md: cancelling
from another thread breaks the connection). Whatever happened, the connection goes back to the
pool only if its protocol state is idle, else it is closed; then ``on_done`` reports the
export's :class:`~server.control.ExportSummary`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import xlsx
from server import report
from server.catalog import ReportCall
from server.channel import ChannelClosed, ExportChannel, Kind, failure_payload
from server.config import WorkerSettings
from server.control import CANCELLED, ExportSummary
from server.db import (
    Attention,
    DbConnection,
    is_protocol_error,
    is_server_error,
    rpc_parameters,
    translate,
)
from server.errors import (
    DatabaseProtocolError,
    DatabaseTimeout,
    ExportError,
    InternalError,
    NoResultSet,
    RowLimitExceeded,
)
from server.memory import MemoryLog, ProcessMemory
from server.pool import Lease
from server.rowsource import FastXmlSource, RowSource
from tdsrows import FastRows
from tdsrows.pytds_link import next_result_set, rows_reported

logger = logging.getLogger("server.export")


class _Stop(Exception):
    """The channel was closed: the HTTP process knows why, and reads nothing more."""


class ExportJob:
    """One export's thread and what it reports at the end."""

    def __init__(
        self,
        *,
        export_id: int,
        lease: Lease[DbConnection],
        call: ReportCall,
        settings: WorkerSettings,
        channel: ExportChannel,
        memory: ProcessMemory,
        on_done: Callable[[ExportJob], None],
    ) -> None:
        self.export_id = export_id
        self.call = call
        self._lease = lease
        self._config = settings
        self._channel = channel
        self._on_done = on_done
        self.memory = MemoryLog(memory, logger, f"export {export_id}")
        self.stats = xlsx.WriteStats()
        self.rows = 0
        self._set_first_row = 0  # self.rows when the current result set began
        self.db_result = "not started"
        self.connection_reused = False
        self.connection_kept = False
        self._conn: DbConnection | None = None
        self._cursor: Any = None
        self._source: RowSource | None = None

    def start(self) -> None:
        thread = threading.Thread(target=self._run, name=f"export-{self.export_id}", daemon=True)
        thread.start()

    def summary(self) -> ExportSummary:
        return ExportSummary(
            export=self.export_id,
            rows=self.rows,
            sheets=self.stats.sheets,
            db_result=self.db_result,
            connection_kept=self.connection_kept,
            connection_reused=self.connection_reused,
            rss_start=self.memory.start_bytes,
            rss_peak=self.memory.peak_bytes,
        )

    def _run(self) -> None:
        self.memory.sample("at start")
        try:
            self._work()
        except _Stop:
            self.db_result = CANCELLED
        except ExportError as exc:
            self.db_result = f"failed: {exc.for_log}"  # the log's line; the client gets the message
            if isinstance(exc, DatabaseProtocolError):
                logger.error(
                    "export %d: protocol error from the database: %s", self.export_id, exc.detail
                )
            self._report(exc)
        except Exception as exc:
            logger.exception("export %d: unexpected error in the worker", self.export_id)
            self.db_result = f"failed: {type(exc).__name__}"
            self._report(InternalError("the export failed unexpectedly"))
        finally:
            self._settle()
            conn, self._conn = self._conn, None
            self.connection_kept = conn is not None and conn.is_idle()
            self._lease.release(conn, reusable=self.connection_kept)
            self._channel.close()
            self.memory.sample("at end")
            self._on_done(self)

    def _work(self) -> None:
        cursor, source, first = self._start_query()
        self._emit(Kind.STARTED)
        assert self._conn is not None
        self._conn.socket.watch(
            self._channel.hung_up,
            silence_limit_s=self._config.row_timeout_s,
            reason=Attention.ROW_TIMEOUT,
        )
        chunks = xlsx.stream_workbook(
            self._sheets(cursor, source, first),
            max_rows_per_sheet=self._config.max_rows_per_sheet,
            stats=self.stats,
        )
        try:
            for chunk in chunks:
                self._emit(Kind.CHUNK, chunk)
        finally:
            chunks.close()  # stop the writer (and so the row source) now
        self.db_result = "completed"
        self._emit(Kind.FINISHED)

    def _sheets(self, cursor: Any, source: RowSource, first: list[Any]) -> Iterator[xlsx.Sheet]:
        """One sheet per result set, each made when the writer has written the previous one."""
        index = 0
        while True:
            yield self._sheet(index, cursor, source, first)
            if self.call.first_result_only:
                return  # the rest of the response is cancelled when the connection settles
            index += 1
            try:
                if not next_result_set(cursor):
                    return
                self._set_first_row = self.rows
                source = self._source = self._row_source(cursor)
                first = source.first()
            except Exception as exc:
                self._fail_mid_stream(exc)
            self._check_interrupted()

    def _sheet(self, index: int, cursor: Any, source: RowSource, first: list[Any]) -> xlsx.Sheet:
        spec = self.call.sheet(index)
        headers, specs = report.layout(cursor.description, source.int_meanings(), spec.columns)
        rows: Iterator[tuple[Any, ...]] | _FastXmlRows
        if source.fast is not None:
            rows = _FastXmlRows(self, cursor, source.fast, compiled=self._config.compiled_rows)
        else:
            rows = self._rows(cursor, source, first)
        return xlsx.Sheet(self.call.sheet_name(index), headers, rows, specs)

    def _row_source(self, cursor: Any) -> RowSource:
        return RowSource(
            cursor,
            fast=self._config.fast_rows,
            batch_rows=self._config.fetch_batch_rows,
            label=f"export {self.export_id}",
        )

    def _start_query(self) -> tuple[Any, RowSource, list[Any]]:
        """Connection, procedure call and first rows; a dead pooled connection is retried once."""
        for attempt in (1, 2):
            self._check_cancelled()
            conn, reused = self._lease.acquire()
            self._conn = conn
            self.connection_reused = reused
            conn.socket.reset()  # no attention state left over from the previous borrower
            conn.socket.watch(
                self._channel.hung_up,
                silence_limit_s=self._config.first_row_timeout_s,
                reason=Attention.FIRST_ROW_TIMEOUT,
            )
            cursor = self._cursor = conn.cursor()
            try:
                cursor.callproc(self.call.procedure, rpc_parameters(self.call.bound_values()))
                if cursor.description is None:
                    source, first = None, []
                else:
                    source = self._source = self._row_source(cursor)
                    first = source.first()
            except Exception as exc:
                if conn.socket.attention_reason is not None:
                    # Our timeout's attention went unanswered (a frozen database): to the
                    # client that is still no first row in time, not a lost connection.
                    self._check_interrupted()
                if is_server_error(exc) or conn.socket.attention_reason is not None:
                    raise translate(exc) from exc  # the connection is settled at the end
                if is_protocol_error(exc):  # a fresh connection would read the same bytes
                    self._discard()
                    raise translate(exc) from exc
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
                raise NoResultSet("the report's procedure returned no result set")
            return cursor, source, first
        raise AssertionError("unreachable: the second attempt returns or raises")

    def _rows(self, cursor: Any, source: RowSource, first: list[Any]) -> Iterator[tuple[Any, ...]]:
        """pytds' rows, batch by batch, with the channel checked for a hang-up between batches.

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
        """The result set ended: was it cut short by our attention? (What follows it, up to
        RETURNSTATUS and DONEPROC, is read when the writer asks for the next sheet: reading it
        all leaves the connection idle instead of needing an attention before its next
        request, docs/driver.md.) And did it end with as many rows as the server counted?"""
        self._check_interrupted()
        counted = rows_reported(cursor)
        read = self.rows - self._set_first_row
        if counted is not None and counted != read:
            raise DatabaseProtocolError(
                "the database's rows of a result set disagree with its own count",
                detail=f"{read:,} rows read of a result set it counted as {counted:,}",
            )

    def _count(self, rows: int) -> None:
        self.rows += rows
        if self.rows > self.call.row_limit:
            raise RowLimitExceeded(
                f"the report returned more than {self.call.row_limit:,} rows, its row limit"
            )

    def _fail_mid_stream(self, exc: Exception) -> NoReturn:
        if not is_server_error(exc):
            self._discard()  # the socket failed: nothing to settle
        raise translate(exc) from exc

    def _check_cancelled(self) -> None:
        if self._channel.hung_up():
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
        if reason is Attention.CANCELLED:
            raise _Stop
        limit = (
            self._config.first_row_timeout_s
            if reason is Attention.FIRST_ROW_TIMEOUT
            else self._config.row_timeout_s
        )
        raise DatabaseTimeout(f"the database sent nothing for {limit:g} s ({reason})")

    def _settle(self) -> None:
        """Bring the connection back to idle (attention + drain), or give up on it."""
        conn = self._conn
        if conn is None or conn.is_idle():
            return
        conn.socket.attention_sent(Attention.CANCELLED)
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

    def _emit(self, kind: Kind, payload: bytes = b"") -> None:
        try:
            self._channel.send(kind, self.rows, payload)
        except ChannelClosed:
            raise _Stop from None

    def _report(self, error: ExportError) -> None:
        """Tell the handler why the export failed, if it is still listening."""
        with contextlib.suppress(ChannelClosed):
            self._channel.send(Kind.FAILED, self.rows, failure_payload(error))


class _FastXmlRows(FastXmlSource):
    """The fast path's row source with the export's bookkeeping between batches (hang-up
    check, row count, memory log at exact multiples, end checks)."""

    def __init__(self, job: ExportJob, cursor: Any, fast: FastRows, *, compiled: bool) -> None:
        super().__init__(fast, compiled=compiled)
        self._job = job
        self._cursor = cursor

    def fill(self, out: list[str | bytes], last: int, limit: int, room: int) -> int:
        job = self._job
        job._check_cancelled()
        every = job._config.memory_log_every_rows
        if every:  # end the batch at the next multiple of the memory-log interval
            limit = min(limit, last + every - job.rows % every)
        # One row beyond the report's row limit is read, to tell that there is one.
        limit = min(limit, last + job.call.row_limit - job.rows + 1)
        try:
            written = super().fill(out, last, limit, room)
        except Exception as exc:
            job._fail_mid_stream(exc)
        job._count(written - last)
        if every and written > last and job.rows % every == 0:
            job.memory.sample(f"after {job.rows:,} rows")
        if self.finished:
            job._end_of_rows(self._cursor)
        return written
