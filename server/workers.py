"""The HTTP process's side of the worker processes: starting them, choosing one for each export
or readiness check, reading their reports, replacing one that dies, stopping them.

Each worker is ``python -m server.worker`` with one end of a control channel
(:mod:`server.control`) passed as an inherited descriptor; its settings are the channel's first
message. With ``--workers 0`` one worker runs on a thread of the HTTP process instead, over the
same channel and protocol (for debugging: exports then share the HTTP process's interpreter
lock).

A worker whose control channel closes without having been told to stop has died (killed, out
of memory, a crash): the downloads it was serving have already lost their channels, so their
handlers abort them; its readiness checks fail; its database connections were closed by the
kernel with it. A replacement starts at once, or after a pause growing up to
``_MAX_RESTART_DELAY_S`` if the worker died soon after it started (a worker that cannot start
must not spin). Jobs may be sent to a replacement before it is up: they wait in its channel.

A worker that is alive says something at least every ``control.HEARTBEAT_INTERVAL_S``. One that
has been silent for ``LIVE_WITHIN_S`` (stopped with SIGSTOP, wedged, swapped out) gets no new
export and no readiness check while another worker can take them, and the readiness checks it
holds go to another worker: ``/readyz`` answers for the database, not for one worker's
scheduling. One silent for ``--worker-silence-limit`` is killed, and so handled as a worker
that died: its downloads are aborted, a replacement starts. Silence is measured by when the
HTTP process read the worker's messages: an HTTP process that was itself paused reads what
its workers sent meanwhile before it judges them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence

import psutil  # type: ignore[import-untyped]  # no stubs installed (types-psutil)

from server import control
from server.catalog import ReportCall
from server.channel import FrameReader, channel_pair
from server.config import ApiConfig, settings_to_json, worker_settings
from server.control import ControlClosed, ExportSummary, Message
from server.errors import ExportError, InternalError, error_from_code
from server.metrics import WorkerSample
from server.relay import Relay

logger = logging.getLogger("server")

# Starting Python and importing the driver and the writer takes ~0.2 s on an idle machine; a
# loaded 2-core machine can be ten times slower, and a worker that is not up in 30 s will not be.
WORKER_START_TIMEOUT_S = 30.0
# A worker that dies within this time of its start is restarted after a pause (doubling from
# _FIRST_RESTART_DELAY_S up to _MAX_RESTART_DELAY_S): a crash at start-up must not become a
# loop that burns a core; one that ran this long gets its replacement at once.
_STABLE_AFTER_S = 10.0
_FIRST_RESTART_DELAY_S = 0.1
_MAX_RESTART_DELAY_S = 5.0
# How often the exit of a worker whose channel closed is checked, and for how long before it
# is killed (its channel closes as it exits: it is normally gone at the first check).
_REAP_POLL_S = 0.05
_REAP_TIMEOUT_S = 5.0
# An export channel holds about this many writer chunks (the writer's chunk size).
_CHUNK_BYTES = 64 * 1024
# A worker silent this long (four heartbeats missed) gets no new work while another can take
# it: long enough that a busy worker's heartbeat, delayed behind its exports' threads, does not
# count as silence; short enough that an export sent to a stopped worker is rare.
LIVE_WITHIN_S = 2.0


# Variables a worker must not inherit: secrets (the password reaches a worker over its control
# channel only).
SECRET_VARIABLES = frozenset({"MSSQL_PASSWORD"})


def worker_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The HTTP process's environment without its secrets, for a worker process."""
    return {name: value for name, value in environ.items() if name not in SECRET_VARIABLES}


class WorkersFailed(RuntimeError):
    """The workers could not be started."""


class WorkerHandle:
    """One worker as the HTTP process sees it. Everything here runs on the event loop."""

    def __init__(self, workers: WorkerSet, index: int, sock: socket.socket) -> None:
        self._workers = workers
        self.index = index
        self._sock = sock
        sock.setblocking(False)
        self._outbox: collections.deque[tuple[Message, list[socket.socket]]] = collections.deque()
        self._writing = False
        self.process: subprocess.Popen[bytes] | None = None
        self.thread: threading.Thread | None = None
        self._ps: psutil.Process | None = None
        self.started_at = time.monotonic()
        self.heard_at = self.started_at  # when its last message was read
        self.silence_killed = False  # killed by the HTTP process for its silence
        self.pid: int | None = None
        self.up = asyncio.get_running_loop().create_future()  # set by the worker's hello
        self.closed = asyncio.get_running_loop().create_future()  # set when the channel ends
        self.idle = 0
        self.in_use = 0
        self.relays: dict[int, Relay] = {}  # exports whose worker half is not over
        self.checks: dict[int, asyncio.Future[ExportError | None]] = {}
        asyncio.get_running_loop().add_reader(sock, self._readable)

    @property
    def is_up(self) -> bool:
        return self.up.done() and not self.closed.done()

    def silent_for(self, now: float) -> float:
        """Seconds since its last message was read."""
        return now - self.heard_at

    def attach(
        self, process: subprocess.Popen[bytes] | None, thread: threading.Thread | None
    ) -> None:
        self.process, self.thread = process, thread
        self.started_at = time.monotonic()
        if process is not None:
            self.pid = process.pid
            with contextlib.suppress(psutil.Error):
                self._ps = psutil.Process(process.pid)

    def resident_memory(self) -> int | None:
        if self._ps is None or self.closed.done():
            return None
        try:
            return int(self._ps.memory_info().rss)
        except psutil.Error:
            return None

    # -- sending -----------------------------------------------------------------------------

    def send(self, message: Message, carried: Sequence[socket.socket] = ()) -> None:
        """Queue a message (and the sockets it hands over; ours are closed once sent)."""
        self._outbox.append((message, list(carried)))
        self._flush()

    def _flush(self) -> None:
        loop = asyncio.get_running_loop()
        while self._outbox:
            message, carried = self._outbox[0]
            try:
                control.send(self._sock, message, [s.fileno() for s in carried])
            except BlockingIOError:
                if not self._writing:
                    self._writing = True
                    loop.add_writer(self._sock, self._writable)
                return
            except OSError:  # the worker is gone: its reader sees the end
                self._drop_outbox()
                return
            self._outbox.popleft()
            for sock in carried:
                sock.close()
        if self._writing:
            self._writing = False
            loop.remove_writer(self._sock)

    def _writable(self) -> None:
        self._flush()

    def _drop_outbox(self) -> None:
        """Close what was never handed over: their other ends see the end of the stream."""
        while self._outbox:
            _, carried = self._outbox.popleft()
            for sock in carried:
                sock.close()

    # -- receiving ---------------------------------------------------------------------------

    def _readable(self) -> None:
        while True:
            try:
                message, carried = control.receive(self._sock)
            except BlockingIOError:
                return
            except (ControlClosed, OSError):
                self._close()
                return
            for sock in carried:  # a worker hands nothing over
                sock.close()
            self.heard_at = time.monotonic()
            self._workers.received(self, message)

    def _close(self) -> None:
        loop = asyncio.get_running_loop()
        loop.remove_reader(self._sock)
        if self._writing:
            loop.remove_writer(self._sock)
            self._writing = False
        self._drop_outbox()
        self._sock.close()
        if not self.closed.done():
            self.closed.set_result(None)
        self._workers.channel_closed(self)

    def shut(self) -> None:
        """Close our end (after ``stop``, or to give up on a worker)."""
        if not self.closed.done():
            self._close()


class WorkerSet:
    """All workers; the HTTP process has one."""

    def __init__(self, config: ApiConfig, *, count: int) -> None:
        self._config = config
        self.count = count
        self.handles: list[WorkerHandle] = []
        self.restarts = 0
        self._running = False  # started, not closing: a worker that dies is replaced
        self._restart_delay: dict[int, float] = {}
        # Replacements waiting out their restart delay: the timer and the worker's channel end.
        self._pending_starts: dict[int, tuple[asyncio.TimerHandle, socket.socket]] = {}
        self._check_ids = itertools.count(1)
        self._reaping: set[asyncio.Task[None]] = set()
        self._watchdog: asyncio.Task[None] | None = None
        self.silence_limit_s = config.worker_silence_limit_s
        # A short silence limit (tests) shortens the live window with it.
        self.live_within_s = min(LIVE_WITHIN_S, self.silence_limit_s / 2)

    # -- lifecycle -----------------------------------------------------------------------------

    async def start(self) -> None:
        """Start every worker and wait until each is up."""
        self.handles = [self._spawn(index) for index in range(max(self.count, 1))]
        waiting = [asyncio.shield(h.up) for h in self.handles]
        try:
            async with asyncio.timeout(WORKER_START_TIMEOUT_S):
                for handle, up in zip(self.handles, waiting, strict=True):
                    await asyncio.wait([up, handle.closed], return_when=asyncio.FIRST_COMPLETED)
                    if not handle.is_up:
                        raise WorkersFailed(f"worker {handle.index} exited while starting")
        except TimeoutError:
            raise WorkersFailed(f"they did not start within {WORKER_START_TIMEOUT_S:g} s") from None
        self._running = True
        self._watchdog = asyncio.create_task(self._watch(), name="worker-watchdog")

    def _spawn(self, index: int, delay_s: float = 0.0) -> WorkerHandle:
        ours, theirs = control.control_pair()
        handle = WorkerHandle(self, index, ours)
        settings = worker_settings(self._config, index, max(self.count, 1))
        handle.send({"kind": control.SETTINGS, "settings": settings_to_json(settings)})
        if delay_s:
            timer = asyncio.get_running_loop().call_later(
                delay_s, self._start_worker, handle, theirs
            )
            self._pending_starts[index] = (timer, theirs)
        else:
            self._start_worker(handle, theirs)
        return handle

    def _start_worker(self, handle: WorkerHandle, theirs: socket.socket) -> None:
        self._pending_starts.pop(handle.index, None)
        if self.count == 0:
            # Imported here: the HTTP process loads the driver and the writer only to run
            # exports itself.
            from server import worker

            thread = threading.Thread(
                target=worker.serve,
                args=(theirs,),
                kwargs={"forward_logs": False},
                name="export-worker",
                daemon=True,
            )
            thread.start()
            handle.attach(None, thread)
            return
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "server.worker", "--control-fd", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                # The settings, password included, come over the control channel: the worker's
                # environment holds no secret, so /proc/PID/environ shows none.
                env=worker_environment(os.environ),
            )
        except OSError:
            logger.exception("cannot start export worker %d", handle.index)
            handle.shut()
            return
        finally:
            theirs.close()
        handle.attach(process, None)
        logger.info("export worker %d started (pid %d)", handle.index, process.pid)

    async def close(self, timeout_s: float) -> None:
        """Stop every worker (its exports are over or cancelled by now); kill what does not
        exit within ``timeout_s``."""
        self._running = False
        if self._watchdog is not None:
            self._watchdog.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watchdog
        for index, (timer, theirs) in self._pending_starts.items():
            timer.cancel()
            theirs.close()
            self.handles[index].shut()
        self._pending_starts.clear()
        for handle in self.handles:
            handle.send({"kind": control.STOP})
        deadline = time.monotonic() + timeout_s
        for handle in self.handles:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    asyncio.shield(handle.closed), max(deadline - time.monotonic(), 0.0)
                )
            handle.shut()
            await self._reap(handle, max(deadline - time.monotonic(), _REAP_POLL_S))
            if handle.thread is not None:
                await asyncio.to_thread(handle.thread.join, max(deadline - time.monotonic(), 0))
        await asyncio.gather(*self._reaping, return_exceptions=True)

    async def _reap(self, handle: WorkerHandle, timeout_s: float) -> int | None:
        """Wait for a worker process to exit (killed after ``timeout_s``); its exit status."""
        process = handle.process
        if process is None:
            return None
        deadline = time.monotonic() + timeout_s
        while process.poll() is None:
            if time.monotonic() >= deadline:
                logger.warning("export worker %d did not exit; killing it", handle.index)
                process.kill()
                deadline = float("inf")
            await asyncio.sleep(_REAP_POLL_S)
        return process.returncode

    # -- choosing -------------------------------------------------------------------------------

    def is_live(self, handle: WorkerHandle, now: float) -> bool:
        """Up, and heard from within the live window."""
        return handle.is_up and handle.silent_for(now) < self.live_within_s

    def pick(self, exclude: WorkerHandle | None = None) -> WorkerHandle:
        """The worker with the fewest exports; among equals, the one with the most idle
        connections (a warm connection saves a login), then the first. A live worker wins
        over one still starting (a replacement), which takes jobs all the same; a silent one
        comes last, as it may never answer (it is chosen only when every worker is silent)."""
        now = time.monotonic()

        def rank(h: WorkerHandle) -> tuple[int, int, int, int, int]:
            state = 0 if self.is_live(h, now) else 2 if h.is_up else 1
            return (h is exclude, state, len(h.relays), -h.idle, h.index)

        return min(self.handles, key=rank)

    def start_export(
        self,
        *,
        export_id: int,
        call: ReportCall,
        request_id: str,
        on_worker_done: Callable[[Relay], None],
        on_complete: Callable[[Relay], None],
    ) -> Relay:
        """Hand an admitted export to a worker; the relay reads its channel."""
        handle = self.pick()
        ours, theirs = channel_pair(self._config.queue_chunks * _CHUNK_BYTES)
        relay = Relay(
            export_id=export_id,
            report=call.report,
            request_id=request_id,
            worker=handle.index,
            channel=FrameReader(ours),
            on_worker_done=on_worker_done,
            on_complete=on_complete,
        )
        handle.relays[export_id] = relay
        handle.send({"kind": control.EXPORT, "export": export_id, "call": call.to_json()}, [theirs])
        return relay

    async def check_ready(self) -> ExportError | None:
        """A ``SELECT 1`` round trip in a worker: None, or the error that says why not."""
        answer: asyncio.Future[ExportError | None] = asyncio.get_running_loop().create_future()
        self._send_check(self.pick(), next(self._check_ids), answer)
        return await answer

    def _send_check(
        self, handle: WorkerHandle, check_id: int, answer: asyncio.Future[ExportError | None]
    ) -> None:
        handle.checks[check_id] = answer
        handle.send({"kind": control.READY, "id": check_id})

    def _move_checks(self, handle: WorkerHandle) -> bool:
        """Send the readiness checks ``handle`` holds to a live worker; False if there is none
        (they stay where they are)."""
        other = self.pick(exclude=handle)
        if other is handle or not self.is_live(other, time.monotonic()):
            return False
        checks = list(handle.checks.items())
        handle.checks.clear()
        for check_id, answer in checks:
            if not answer.done():
                self._send_check(other, check_id, answer)
        return True

    # -- liveness -------------------------------------------------------------------------------

    async def _watch(self) -> None:
        """Every heartbeat interval: move readiness checks off workers gone silent, kill the
        ones silent past the limit (their channels then close: :meth:`channel_closed`)."""
        while True:
            await asyncio.sleep(control.HEARTBEAT_INTERVAL_S)
            now = time.monotonic()
            for handle in list(self.handles):
                if not handle.is_up or handle.silence_killed:
                    continue
                silence = handle.silent_for(now)
                if silence >= self.live_within_s and handle.checks:
                    self._move_checks(handle)
                if silence >= self.silence_limit_s:
                    self._kill_silent(handle, silence)

    def _kill_silent(self, handle: WorkerHandle, silence_s: float) -> None:
        handle.silence_killed = True
        logger.error(
            "export worker %d (pid %s) has said nothing for %.1f s (limit %g s): killing it; "
            "its %d export(s) are aborted",
            handle.index,
            handle.pid if handle.pid is not None else "-",
            silence_s,
            self.silence_limit_s,
            len(handle.relays),
        )
        if handle.process is None:  # a worker thread (--workers 0) cannot be killed
            return
        with contextlib.suppress(ProcessLookupError):
            handle.process.kill()  # SIGKILL ends a stopped process too

    # -- what workers say -------------------------------------------------------------------------

    def received(self, handle: WorkerHandle, message: Message) -> None:
        kind = message["kind"]
        if kind == control.POOL:
            handle.idle, handle.in_use = int(message["idle"]), int(message["in_use"])
        elif kind == control.DONE:
            summary = ExportSummary.of(message)
            relay = handle.relays.pop(summary.export, None)
            if relay is not None:
                relay.worker_finished(summary)
        elif kind == control.READY:
            answer = handle.checks.pop(int(message["id"]), None)
            error = message["error"]
            if answer is not None and not answer.done():
                answer.set_result(
                    None if error is None else error_from_code(error["code"], error["message"])
                )
        elif kind == control.LOG:
            _log_from_worker(handle, message)
        elif kind == control.HELLO:
            if not handle.up.done():
                handle.up.set_result(None)
        elif kind == control.ALIVE:
            pass  # any message counts: heard_at is set as it is read
        else:
            logger.error("export worker %d sent an unknown message %r", handle.index, kind)

    def channel_closed(self, handle: WorkerHandle) -> None:
        """The worker is gone (or stopping): nothing it had will be reported any more."""
        handle.idle = handle.in_use = 0
        relays = list(handle.relays.values())
        handle.relays.clear()
        for relay in relays:
            relay.worker_finished(None)
        if not (self._running and self._move_checks(handle)):
            for answer in handle.checks.values():
                if not answer.done():
                    answer.set_result(InternalError("the readiness check stopped unexpectedly"))
            handle.checks.clear()
        if not self._running or handle not in self.handles:
            return
        lived = time.monotonic() - handle.started_at
        delay = 0.0
        if lived < _STABLE_AFTER_S:
            previous = self._restart_delay.get(handle.index, 0.0)
            delay = min(max(previous * 2, _FIRST_RESTART_DELAY_S), _MAX_RESTART_DELAY_S)
        self._restart_delay[handle.index] = delay
        self.restarts += 1
        self.handles[handle.index] = self._spawn(handle.index, delay)
        task = asyncio.ensure_future(self._log_death(handle, len(relays), delay))
        self._reaping.add(task)
        task.add_done_callback(self._reaping.discard)

    async def _log_death(self, handle: WorkerHandle, aborted: int, delay_s: float) -> None:
        status = await self._reap(handle, _REAP_TIMEOUT_S)
        logger.error(
            "export worker %d (pid %s) %s (%s); %d export(s) aborted; a replacement starts%s",
            handle.index,
            handle.pid if handle.pid is not None else "-",
            "was killed for its silence" if handle.silence_killed else "exited unexpectedly",
            _exit_status(status),
            aborted,
            f" in {delay_s:g} s" if delay_s else "",
        )

    # -- figures ---------------------------------------------------------------------------------

    @property
    def idle(self) -> int:
        return sum(h.idle for h in self.handles)

    @property
    def in_use(self) -> int:
        return sum(h.in_use for h in self.handles)

    @property
    def processes_running(self) -> int:
        return sum(1 for h in self.handles if h.process is not None and h.is_up)

    def samples(self) -> list[WorkerSample]:
        return [WorkerSample(h.index, len(h.relays), h.resident_memory()) for h in self.handles]

    def pids(self) -> list[int]:
        return [h.pid for h in self.handles if h.pid is not None and h.is_up]


def _exit_status(status: int | None) -> str:
    if status is None:
        return "status unknown"
    if status < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-status).name}"
        return f"killed by signal {-status}"
    return f"exit status {status}"


def _log_from_worker(handle: WorkerHandle, message: Message) -> None:
    """A worker's log record, logged here as if it had happened here (with its pid)."""
    name, level = str(message["name"]), int(message["level"])
    target = logging.getLogger(name)
    if not target.isEnabledFor(level):
        return
    record = logging.makeLogRecord(
        {
            "name": name,
            "levelno": level,
            "levelname": logging.getLevelName(level),
            "msg": message["message"],
            "exc_text": message["exc"],
            "process": handle.pid,
            "worker": handle.index,
        }
    )
    target.handle(record)
