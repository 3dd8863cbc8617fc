"""The export channel: one Unix stream socket pair per export, from the export's thread in a
worker process to the HTTP process's handler of that download.

The worker writes frames; the handler reads one, writes its chunk to the client, and reads the
next only once ``await response.write()`` has returned. Each frame is a 13-byte header (kind,
1 byte; rows read so far, 8 bytes; payload length, 4 bytes; network byte order) and a payload:

- ``STARTED``: the procedure runs and its first row (or its end) arrived: send the 200;
- ``CHUNK``: bytes of the workbook;
- ``FINISHED``: the workbook is complete (its last chunk came before);
- ``FAILED``: ``{"code", "message"}`` (JSON) of the error: before ``STARTED`` the client gets
  it as a JSON answer, after it the download is aborted.

**Backpressure.** The worker's end has a small send buffer (:func:`channel_pair`), so a client
that reads slowly blocks the worker's ``sendall`` after about ``--queue-chunks`` chunks (the
interpreter lock is released while it waits), and the worker stops reading the database.

**Cancellation.** The handler closes its end (client gone, client stalled, shutdown, worker
gone). A write blocked on the full buffer wakes at once with an error, the next write fails,
and :meth:`ExportChannel.hung_up` (a poll that does not wait) tells an export blocked on the
database, which asks it every ``--poll-interval``. A worker that dies closes its end with it:
the handler reads the end of the stream without ``FINISHED`` and aborts the download.
"""

from __future__ import annotations

import array
import asyncio
import enum
import fcntl
import json
import select
import socket
import struct
import termios
from dataclasses import dataclass

from server.errors import ExportError, error_from_code

_HEADER = struct.Struct("!BQI")
# A chunk of the writer is ~64 KiB; nothing else comes close. A larger length can only be a
# corrupt stream.
MAX_PAYLOAD_BYTES = 16 * 1024 * 1024
# Linux doubles SO_SNDBUF (room for its bookkeeping), and a Unix stream socket then holds that
# doubled amount of unread data (measured: SO_SNDBUF 64 KiB, 128 KiB written before a
# non-blocking send would block).
_KERNEL_SNDBUF_FACTOR = 2
# POLLIN: the handler never writes, so readable means its end was closed; POLLRDHUP says the
# same explicitly (POLLHUP and POLLERR are always reported).
_HANG_UP_EVENTS = select.POLLIN | select.POLLRDHUP


class Kind(enum.IntEnum):
    STARTED = 1
    CHUNK = 2
    FINISHED = 3
    FAILED = 4


@dataclass(frozen=True)
class Frame:
    kind: Kind
    rows: int  # rows the export had read when it sent this frame
    payload: bytes | bytearray = b""

    def error(self) -> ExportError:
        """A ``FAILED`` frame's error, as the HTTP process answers it."""
        values = json.loads(self.payload)
        return error_from_code(str(values["code"]), str(values["message"]))


class ChannelClosed(ConnectionError):
    """The handler's end of the channel is gone: nobody will read what the export writes."""


def channel_pair(buffer_bytes: int) -> tuple[socket.socket, socket.socket]:
    """(the handler's end, the worker's end); the worker's end holds about ``buffer_bytes``."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    theirs.setsockopt(
        socket.SOL_SOCKET, socket.SO_SNDBUF, max(buffer_bytes // _KERNEL_SNDBUF_FACTOR, 1)
    )
    return ours, theirs


def failure_payload(error: ExportError) -> bytes:
    return json.dumps({"code": error.code, "message": error.message}).encode()


class ExportChannel:
    """The worker's end: blocking writes from the export's thread."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(True)
        self._sock = sock
        self._poller = select.poll()
        self._poller.register(sock.fileno(), _HANG_UP_EVENTS)

    def hung_up(self) -> bool:
        """True once the handler closed its end (never waits)."""
        return self._sock.fileno() < 0 or bool(self._poller.poll(0))

    def send(self, kind: Kind, rows: int, payload: bytes = b"") -> None:
        """Write one frame, blocking while the buffer is full; :class:`ChannelClosed` if the
        handler's end is gone (before or while waiting)."""
        try:
            # One write per frame: a separate 13-byte header would be a socket buffer of its
            # own, whose bookkeeping the kernel counts against the channel's room.
            self._sock.sendall(_HEADER.pack(kind, rows, len(payload)) + payload)
        except OSError as exc:  # EPIPE, ECONNRESET; EBADF once closed
            raise ChannelClosed("the download's handler closed the channel") from exc

    def close(self) -> None:
        self._sock.close()


class FrameReader:
    """The handler's end: frames read on the event loop, one at a time."""

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self._sock = sock
        self._header = bytearray(_HEADER.size)

    async def read(self) -> Frame | None:
        """The next frame, or None if the stream ended without one (the worker is gone)."""
        if not await self._fill(memoryview(self._header)):
            return None
        kind, rows, length = _HEADER.unpack(self._header)
        if length > MAX_PAYLOAD_BYTES:
            raise ValueError(f"export channel frame of {length} bytes")
        payload = bytearray(length)
        if length and not await self._fill(memoryview(payload)):
            return None
        return Frame(Kind(kind), rows, payload)

    async def _fill(self, view: memoryview) -> bool:
        loop = asyncio.get_running_loop()
        while view:
            try:
                count = await loop.sock_recv_into(self._sock, view)
            except ConnectionResetError:  # as good as the end: the worker's end is gone
                return False
            if count == 0:
                return False
            view = view[count:]
        return True

    def backlog(self) -> int:
        """Bytes the worker wrote that have not been read yet (0 once closed)."""
        if self.closed:
            return 0
        unread = array.array("i", [0])
        fcntl.ioctl(self._sock.fileno(), termios.FIONREAD, unread)
        return unread[0]

    def close(self) -> None:
        self._sock.close()

    @property
    def closed(self) -> bool:
        return self._sock.fileno() < 0
