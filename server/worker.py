"""A worker process of the export API: ``python -m server.worker --control-fd N``, started by
the HTTP process (``server.workers``), never by hand.

Everything an export costs in CPU happens here: the database connection and its pool, row
decoding, the writer and deflate. A worker runs its exports on threads (one per export, as they
block on the database and on their channel), so its exports share one interpreter lock and at
most one core; the service has one worker per core.

The HTTP process talks to it over its control channel (:mod:`server.control`): the settings
first, then export jobs (each with the worker's end of a new export channel,
:mod:`server.channel`), readiness checks, and ``stop``. The worker reports its pool after every
change, each export's summary, the readiness answers, its log records (the service keeps
one log, the HTTP process's), and that it is alive, twice a second.

SIGINT and SIGTERM are ignored: a terminal's Ctrl-C or a service manager signals the whole
process group, and the HTTP process alone decides when exports stop (it drains them within the
shutdown grace period, then sends ``stop``). A control channel that closes without ``stop``
means the HTTP process is gone: its ends of the export channels are closed with it, so every
export stops and settles its connection, and the worker exits.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence

from server import control, db
from server.catalog import ReportCall
from server.channel import ChannelClosed, ExportChannel, Kind, failure_payload
from server.config import WorkerSettings, settings_from_json
from server.control import ControlClosed, ExportSummary, Message, WorkerControl
from server.db import Attention, DbConnection, is_server_error
from server.errors import DatabaseError, DatabaseUnavailable, ExportError
from server.export import ExportJob
from server.memory import ProcessMemory
from server.pool import ConnectionPool

logger = logging.getLogger("server.worker")

PROBE_QUERY = "SELECT 1"
# Idle-connection expiry runs this many times per pool idle timeout, so a connection above
# the pool's minimum stays open at most 1.5 timeouts after its last export.
_IDLE_CHECKS_PER_TIMEOUT = 2
# After ``stop`` (or the HTTP process's end) exports still settling get this long beyond the
# time a cancel may take (poll interval + cancel timeout) before the worker exits anyway.
_EXIT_MARGIN_S = 1.0
# A worker process lowers its scheduling priority by this much (nice(2)) below the HTTP
# process that started it. Exports are bulk work; the HTTP process's event loop answers health
# checks, admits and refuses requests and relays every download, and must get a core as soon
# as it wakes. When the cores are free an export loses nothing; when they are all busy the
# event loop's short bursts go first (measured under 50 downloads on two cores: /healthz p99
# fell from ~11 ms to ~6 ms). Five steps weigh a worker at about a third of the HTTP process.
WORKER_NICENESS = 5


def _never() -> bool:
    return False


def round_trip(pool: ConnectionPool[DbConnection], timeout_s: float) -> None:
    """Lease a connection, run ``SELECT 1``, give the connection back if still clean. Raises
    the export's own errors: 503 unreachable, 500 login refused. Blocking."""
    lease = pool.lease()
    conn: DbConnection | None = None
    clean = False
    try:
        conn, _ = lease.acquire()
        conn.socket.reset()
        conn.socket.watch(_never, silence_limit_s=timeout_s, reason=Attention.READINESS_TIMEOUT)
        cursor = conn.cursor()
        try:
            cursor.execute(PROBE_QUERY)
            rows = cursor.fetchall()
        except Exception as exc:
            if is_server_error(exc):
                raise DatabaseError("the database answered a test query with an error") from exc
            raise DatabaseUnavailable(
                "the database did not answer a test query", detail=db.detail_of(exc)
            ) from exc
        if conn.socket.attention_reason is not None or rows != [(1,)]:
            raise DatabaseUnavailable(f"the database did not answer within {timeout_s:g} s")
        clean = conn.is_idle()
    finally:
        lease.release(conn, reusable=clean)


class Worker:
    def __init__(self, settings: WorkerSettings, channel: WorkerControl) -> None:
        self.settings = settings
        self._control = channel
        connect = functools.partial(
            db.connect,
            settings.db,
            poll_interval_s=settings.poll_interval_s,
            cancel_timeout_s=settings.cancel_timeout_s,
            receive_buffer=settings.socket_buffer or None,
        )
        self.pool: ConnectionPool[DbConnection] = ConnectionPool(
            connect,
            min_size=settings.pool_min,
            max_size=settings.pool_max,
            idle_timeout_s=settings.pool_idle_timeout_s,
        )
        self._memory = ProcessMemory()
        self._report_lock = threading.Lock()
        self._busy = threading.Condition()
        self._running = 0  # exports and readiness checks, under _busy

    def run(self) -> None:
        """Serve the control channel until ``stop`` or its end."""
        self._send({"kind": control.HELLO, "pid": os.getpid()})
        interval = self.settings.pool_idle_timeout_s / _IDLE_CHECKS_PER_TIMEOUT
        next_expiry = time.monotonic() + interval
        next_beat = time.monotonic() + control.HEARTBEAT_INTERVAL_S
        try:
            while True:
                wait = min(next_expiry, next_beat) - time.monotonic()
                received = self._control.receive(max(wait, 0.0))
                if time.monotonic() >= next_beat:
                    self._send({"kind": control.ALIVE})
                    next_beat = time.monotonic() + control.HEARTBEAT_INTERVAL_S
                if time.monotonic() >= next_expiry:
                    self._expire()
                    next_expiry = time.monotonic() + interval
                if received is None:
                    continue
                message, sockets = received
                kind = message["kind"]
                if kind == control.EXPORT and len(sockets) == 1:
                    self._export(message, ExportChannel(sockets[0]))
                elif kind == control.READY:
                    self._begin()
                    threading.Thread(
                        target=self._ready, args=(int(message["id"]),), daemon=True
                    ).start()
                elif kind == control.STOP:
                    return
                else:
                    for sock in sockets:
                        sock.close()
                    logger.error("worker %d: unexpected control message %r", self.index, kind)
        except ControlClosed:
            logger.info("worker %d: the HTTP process is gone; stopping", self.index)
        finally:
            self._finish()

    @property
    def index(self) -> int:
        return self.settings.index

    # -- exports and checks (each on its own thread) ----------------------------------------------

    def _export(self, message: Message, channel: ExportChannel) -> None:
        export_id = int(message["export"])
        self._begin()
        try:
            lease = self.pool.lease()
        except ExportError as exc:  # not with admission in the HTTP process; but never silent
            with contextlib.suppress(ChannelClosed):
                channel.send(Kind.FAILED, 0, failure_payload(exc))
            channel.close()
            rss = self._memory.rss()
            summary = ExportSummary(
                export_id, 0, 0, f"failed: {exc.for_log}", False, False, rss, rss
            )
            self._end(summary.message())
            return
        job = ExportJob(
            export_id=export_id,
            lease=lease,
            call=ReportCall.from_json(message["call"]),
            settings=self.settings,
            channel=channel,
            memory=self._memory,
            on_done=self._export_done,
        )
        self._report_pool()
        job.start()

    def _export_done(self, job: ExportJob) -> None:
        self._end(job.summary().message())

    def _ready(self, check_id: int) -> None:
        error: dict[str, str] | None = None
        try:
            round_trip(self.pool, self.settings.readiness_timeout_s)
        except ExportError as exc:
            error = {"code": exc.code, "message": exc.message}
            if exc.detail:  # the answer says what failed; the log also says where and how
                logger.warning("worker %d: readiness check: %s", self.index, exc.for_log)
        except Exception:
            logger.exception("worker %d: readiness check failed unexpectedly", self.index)
            error = {"code": "INTERNAL_ERROR", "message": "the readiness check failed"}
        self._end({"kind": control.READY, "id": check_id, "error": error})

    def _begin(self) -> None:
        with self._busy:
            self._running += 1

    def _end(self, message: Message) -> None:
        """One export or check is over: the pool as it now is, then its report."""
        self._report_pool()
        self._send(message)
        with self._busy:
            self._running -= 1
            self._busy.notify_all()

    # -- the pool ---------------------------------------------------------------------------------

    def _report_pool(self) -> None:
        # Read and sent under one lock: the last report always has the latest counts.
        with self._report_lock:
            self._send({"kind": control.POOL, "idle": self.pool.idle, "in_use": self.pool.in_use})

    def _expire(self) -> None:
        closed = self.pool.expire_idle()
        if closed:
            logger.info("worker %d: closed %d idle database connection(s)", self.index, closed)
            self._report_pool()

    def _send(self, message: Message) -> None:
        # The HTTP process may be gone: the receiving loop then ends the worker.
        with contextlib.suppress(ControlClosed):
            self._control.send(message)

    def _finish(self) -> None:
        deadline = time.monotonic() + (
            self.settings.poll_interval_s + self.settings.cancel_timeout_s + _EXIT_MARGIN_S
        )
        with self._busy:
            while self._running and (left := deadline - time.monotonic()) > 0:
                self._busy.wait(left)
            if self._running:
                logger.warning(
                    "worker %d: exiting with %d export(s) still running", self.index, self._running
                )
        self.pool.close()


class _ForwardedLogs(logging.Handler):
    """Log records as control messages: the HTTP process logs them (one log for the service)."""

    def __init__(self, channel: WorkerControl) -> None:
        super().__init__()
        self._control = channel
        self._formatter = logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            exc = record.exc_text
            if record.exc_info:
                exc = self._formatter.formatException(record.exc_info)
            self._control.send(
                control.log_message(record.name, record.levelno, record.getMessage(), exc)
            )
        except ControlClosed:
            pass
        except Exception:
            self.handleError(record)


def serve(sock: socket.socket, *, forward_logs: bool) -> None:
    """Run a worker on the control channel ``sock`` until ``stop`` or the channel's end.

    ``forward_logs``: send log records to the HTTP process (a worker process); a worker on a
    thread of the HTTP process (``--workers 0``) logs there directly.
    """
    channel = WorkerControl(sock)
    try:
        received = channel.receive(None)
        assert received is not None  # no timeout
        message, _ = received
        if message["kind"] != control.SETTINGS:
            raise ValueError(f"a worker's first message must be its settings, not {message!r}")
        settings = settings_from_json(message["settings"])
        if forward_logs:
            root = logging.getLogger()
            root.handlers[:] = [_ForwardedLogs(channel)]
            root.setLevel(settings.log_level)
        Worker(settings, channel).run()
    except ControlClosed:
        pass  # the HTTP process went away before sending anything
    finally:
        channel.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m server.worker",
        description="A worker process of the export API (started by the API itself).",
    )
    parser.add_argument("--control-fd", type=int, required=True, help="the control channel")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.SIG_IGN)
    os.nice(WORKER_NICENESS)  # raising one's own niceness needs no privilege
    serve(socket.socket(fileno=args.control_fd), forward_logs=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
