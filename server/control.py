"""The control channel between the HTTP process and one worker: a Unix ``SOCK_SEQPACKET`` pair,
so every message arrives whole, with the file descriptor it carries (``SCM_RIGHTS``). Messages
are JSON objects; ``kind`` says which.

HTTP process -> worker:

- ``settings`` (first, once): the worker's :class:`~server.config.WorkerSettings`;
- ``export`` + the worker's end of a new export channel: ``export`` (id), ``rows``, ``request``;
- ``ready`` (``id``): run ``SELECT 1`` on a pooled connection and answer;
- ``stop``: finish (the exports have been cancelled by then), close the pool and exit.

Worker -> HTTP process:

- ``hello`` (``pid``): the worker is up and has read its settings;
- ``pool`` (``idle``, ``in_use``): its pool after every change;
- ``done``: an export's thread is over and its connection given back (:class:`ExportSummary`);
- ``ready`` (``id``, ``error``: null or ``{"code", "message"}``): the answer to ``ready``;
- ``log``: a log record (``name``, ``level``, ``message``, ``exc``), logged by the HTTP process
  so that the service has one log;
- ``alive``: every :data:`HEARTBEAT_INTERVAL_S`, from the thread that reads this channel. Any
  message shows the worker runs; this one makes sure an idle worker says so too. A worker
  that stops saying anything (stopped by SIGSTOP, wedged, swapped out) gets no new work, and
  is replaced once silent for the configured limit (``server.workers``).

The channel closing is the end of the worker, whichever side sees it: a worker whose HTTP
process is gone cancels its exports and exits; an HTTP process whose worker died fails that
worker's downloads and starts another.
"""

from __future__ import annotations

import array
import json
import socket
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

# Largest message: settings, a job and a pool report are a few hundred bytes; log records are
# cut to fit (a traceback is a few KiB). Well below the default socket buffer (~208 KiB) that a
# SOCK_SEQPACKET message must fit in whole.
MAX_MESSAGE_BYTES = 64 * 1024
_MAX_LOG_TEXT = 16 * 1024
# An export job carries one descriptor; nothing else carries any.
_MAX_FDS = 1

# How often a worker says it is alive when it has nothing else to say: often enough that the
# HTTP process notices a silent worker within a couple of seconds, rare enough to cost nothing
# (two small messages a second per worker).
HEARTBEAT_INTERVAL_S = 0.5

SETTINGS = "settings"
EXPORT = "export"
READY = "ready"
STOP = "stop"
HELLO = "hello"
POOL = "pool"
DONE = "done"
LOG = "log"
ALIVE = "alive"

Message = dict[str, Any]

# An export's ``db_result`` when its channel was closed (the HTTP process knows why).
CANCELLED = "cancelled"


class ControlClosed(ConnectionError):
    """The other end of the control channel is gone."""


@dataclass(frozen=True)
class ExportSummary:
    """What a worker says about an export once its thread is over."""

    export: int
    rows: int
    sheets: int
    db_result: str
    connection_kept: bool
    connection_reused: bool
    rss_start: int
    rss_peak: int

    def message(self) -> Message:
        return {"kind": DONE, **asdict(self)}

    @classmethod
    def of(cls, message: Message) -> ExportSummary:
        values = dict(message)
        del values["kind"]
        return cls(**values)


def control_pair() -> tuple[socket.socket, socket.socket]:
    """(the HTTP process's end, the worker's end)."""
    return socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)


def encode(message: Message) -> bytes:
    data = json.dumps(message, separators=(",", ":")).encode()
    if len(data) > MAX_MESSAGE_BYTES:
        raise ValueError(f"control message of {len(data)} bytes")
    return data


def decode(data: bytes) -> Message:
    message = json.loads(data)
    if not isinstance(message, dict) or not isinstance(message.get("kind"), str):
        raise ValueError("control message without a kind")
    return message


def log_message(name: str, level: int, text: str, exc: str | None) -> Message:
    """A log record as a message, its texts cut so that it always fits."""
    return {
        "kind": LOG,
        "name": name,
        "level": level,
        "message": text[:_MAX_LOG_TEXT],
        "exc": None if exc is None else exc[-_MAX_LOG_TEXT:],  # the end says what failed
    }


def send(sock: socket.socket, message: Message, fds: Sequence[int] = ()) -> None:
    """One ``sendmsg`` (raises ``BlockingIOError`` on a full non-blocking socket)."""
    ancillary = []
    if fds:
        ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))]
    sock.sendmsg([encode(message)], ancillary)


def receive(sock: socket.socket) -> tuple[Message, list[socket.socket]]:
    """One message and the sockets it carries; :class:`ControlClosed` at the end of the
    stream (raises ``BlockingIOError`` on an empty non-blocking socket)."""
    data, fds, flags, _ = socket.recv_fds(sock, MAX_MESSAGE_BYTES, _MAX_FDS)
    sockets = [socket.socket(fileno=fd) for fd in fds]
    if not data:
        for extra in sockets:
            extra.close()
        raise ControlClosed("the control channel was closed")
    if flags & (socket.MSG_TRUNC | socket.MSG_CTRUNC):
        for extra in sockets:
            extra.close()
        raise ValueError("control message cut short")
    return decode(data), sockets


class WorkerControl:
    """The worker's end: one thread receives, any thread may send (one message at a time)."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(True)
        self._sock = sock
        # Sends never time out, receives do (to run idle-connection expiry): a socket's timeout
        # is per socket object, so the senders use their own object for the same socket.
        self._send_sock = sock.dup()
        self._send_lock = threading.Lock()

    def send(self, message: Message) -> None:
        """Blocking; :class:`ControlClosed` once the HTTP process is gone."""
        with self._send_lock:
            try:
                send(self._send_sock, message)
            except OSError as exc:
                raise ControlClosed("the control channel was closed") from exc

    def receive(self, timeout_s: float | None) -> tuple[Message, list[socket.socket]] | None:
        """The next message, or None after ``timeout_s`` without one (0: none waiting now)."""
        self._sock.settimeout(timeout_s)
        try:
            return receive(self._sock)
        except (TimeoutError, BlockingIOError):  # a timeout of 0 makes the socket non-blocking
            return None
        except (ConnectionResetError, BrokenPipeError) as exc:
            raise ControlClosed("the control channel was closed") from exc

    def close(self) -> None:
        self._sock.close()
        self._send_sock.close()
