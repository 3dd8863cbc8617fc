"""TDS packet framing (MS-TDS 2.2.3): 8-byte headers, messages split over packets.

Sans-IO: :class:`MessageAssembler` takes bytes in and hands out whole messages;
:class:`Packetizer` takes payload bytes and returns framed packets of the negotiated size.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from sql.devserver.errors import ProtocolError

HEADER = struct.Struct(">BBHHBB")  # type, status, length (incl. header), SPID, packet id, window
HEADER_SIZE = HEADER.size

# Packet types (MS-TDS 2.2.3.1.1).
SQL_BATCH = 0x01
RPC = 0x03
REPLY = 0x04
ATTENTION = 0x06
BULK_LOAD = 0x07
TRANSACTION_MANAGER = 0x0E
LOGIN7 = 0x10
SSPI = 0x11
PRELOGIN = 0x12

CLIENT_TYPES = frozenset(
    {SQL_BATCH, RPC, ATTENTION, BULK_LOAD, TRANSACTION_MANAGER, LOGIN7, SSPI, PRELOGIN}
)

STATUS_EOM = 0x01  # last packet of a message
STATUS_IGNORE = 0x02  # client asks the server to ignore this message (MS-TDS 2.2.3.1.2)

# Packet sizes a LOGIN7 may ask for (MS-TDS 2.2.6.4: 512..32767; 0 means "server default").
MIN_PACKET_SIZE = 512
MAX_PACKET_SIZE = 32767
# Before login the size is 4096: the default both pytds and SQL Server use.
DEFAULT_PACKET_SIZE = 4096
# The largest client message the dev server buffers: room for a spColumns spec that carries a
# few MiB of values (UTF-16 doubles them), yet bounded per connection.
DEFAULT_MAX_MESSAGE_SIZE = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Message:
    """A whole client message: its packet type, payload and whether the client set IGNORE."""

    type: int
    payload: bytes
    ignore: bool = False


class MessageAssembler:
    """Bytes in, whole messages out.  Attention packets are messages of their own."""

    def __init__(self, max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE) -> None:
        self._buf = bytearray()
        self._parts: list[bytes] = []
        self._parts_size = 0
        self._type: int | None = None
        self._max = max_message_size

    def feed(self, data: bytes) -> None:
        self._buf += data

    def next_message(self) -> Message | None:
        """The next complete message, or None when more bytes are needed."""
        while True:
            buf = self._buf
            if len(buf) < HEADER_SIZE:
                return None
            ptype, status, length, _spid, _pid, _win = HEADER.unpack_from(buf, 0)
            if ptype not in CLIENT_TYPES:
                raise ProtocolError(f"not a TDS client packet (type {ptype:#04x})")
            if length < HEADER_SIZE or length > MAX_PACKET_SIZE + 1:
                raise ProtocolError(f"bad TDS packet length {length}")
            if len(buf) < length:
                return None
            body = bytes(buf[HEADER_SIZE:length])
            del buf[:length]
            if ptype == ATTENTION and self._type is None:
                return Message(ATTENTION, body)
            if self._type is None:
                self._type = ptype
            elif ptype != self._type:
                raise ProtocolError(
                    f"packet of type {ptype:#04x} inside a message of type {self._type:#04x}"
                )
            self._parts.append(body)
            self._parts_size += len(body)
            if self._parts_size > self._max:
                raise ProtocolError(f"client message larger than {self._max} bytes")
            if status & STATUS_EOM:
                message = Message(self._type, b"".join(self._parts), bool(status & STATUS_IGNORE))
                self._parts = []
                self._parts_size = 0
                self._type = None
                return message


class Packetizer:
    """Payload in, REPLY packets of at most ``packet_size`` bytes out.

    ``add`` returns only full packets and keeps the remainder; ``finish`` flushes it as the
    message's last packet (status EOM).  Packet ids count modulo 256 as the spec asks.
    ``packet_type`` is REPLY but for the server's TLS handshake records in TDS 7.x, which
    travel in PRELOGIN packets (MS-TDS 2.2.6.5).
    """

    def __init__(
        self, packet_size: int = DEFAULT_PACKET_SIZE, spid: int = 0, packet_type: int = REPLY
    ) -> None:
        self.packet_size = packet_size
        self.spid = spid
        self.packet_type = packet_type
        self._pending = bytearray()
        self._packet_id = 1

    def _frame(self, chunk: bytes | bytearray | memoryview, status: int) -> bytes:
        header = HEADER.pack(
            self.packet_type, status, len(chunk) + HEADER_SIZE, self.spid, self._packet_id, 0
        )
        self._packet_id = (self._packet_id + 1) & 0xFF
        return header + chunk

    def add(self, payload: bytes) -> bytes:
        pending = self._pending
        pending += payload
        room = self.packet_size - HEADER_SIZE
        # Keep at least one byte back so that ``finish`` always has a packet to mark EOM.
        full = (len(pending) - 1) // room
        if full <= 0:
            return b""
        view = memoryview(pending)
        out = b"".join([self._frame(view[i * room : (i + 1) * room], 0) for i in range(full)])
        view.release()
        del pending[: full * room]
        return out

    def flush(self) -> bytes:
        """Frame whatever is pending as a non-final packet (to deliver rows before a pause)."""
        if not self._pending:
            return b""
        out = self._frame(bytes(self._pending), 0)
        self._pending.clear()
        return out

    def finish(self, payload: bytes = b"") -> bytes:
        head = self.add(payload) if payload else b""
        last = self._frame(bytes(self._pending), STATUS_EOM)
        self._pending.clear()
        self._packet_id = 1
        return head + last

    def message(self, payload: bytes) -> bytes:
        """A whole reply message at once."""
        return self.finish(payload)
