"""A minimal raw TDS client written from MS-TDS for tests and the benchmark.

Independent of the dev server's code on purpose (it builds requests and walks replies itself),
so tests of the protocol core feed it bytes made by a second implementation, and the benchmark
can read rows faster than any real driver.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field
from typing import Any

HEADER = struct.Struct(">BBHHBB")
ALL_HEADERS = struct.pack("<IIHQI", 22, 18, 2, 0, 1)


def packets(kind: int, payload: bytes, packet_size: int = 4096) -> bytes:
    """Frame a client message (status EOM on the last packet)."""
    room = packet_size - 8
    chunks = [payload[i : i + room] for i in range(0, len(payload), room)] or [b""]
    out = b""
    for i, chunk in enumerate(chunks):
        status = 1 if i == len(chunks) - 1 else 0
        out += HEADER.pack(kind, status, len(chunk) + 8, 0, (i + 1) & 0xFF, 0) + chunk
    return out


ENCRYPT_OFF, ENCRYPT_ON, ENCRYPT_NOT_SUP, ENCRYPT_REQ = 0x00, 0x01, 0x02, 0x03


def prelogin_message(encryption: int = ENCRYPT_NOT_SUP) -> bytes:
    options = [
        (0x00, bytes(6)),
        (0x01, bytes((encryption,))),
        (0x02, b"MSSQLServer\x00"),
        (0x04, b"\x00"),
    ]
    offset = 5 * len(options) + 1
    table, data = b"", b""
    for token, value in options:
        table += struct.pack(">BHH", token, offset + len(data), len(value))
        data += value
    return packets(0x12, table + b"\xff" + data)


def prelogin_encryption(payload: bytes) -> int | None:
    """The ENCRYPTION value of a PRELOGIN payload (None when the option is missing)."""
    pos = 0
    while payload[pos] != 0xFF:
        token, offset, length = struct.unpack_from(">BHH", payload, pos)
        if token == 0x01 and length:
            return payload[offset]
        pos += 5
    return None


def obfuscate(password: str) -> bytes:
    """A password as LOGIN7 carries it (nibbles swapped, XOR 0xA5): what an eavesdropper on a
    clear connection reads back."""
    return bytes((((b << 4) & 0xF0) | (b >> 4)) ^ 0xA5 for b in password.encode("utf-16-le"))


def login_message(
    user: str,
    password: str,
    database: str = "",
    packet_size: int = 4096,
    tds_version: int = 0x74000004,
) -> bytes:
    fields = [
        "host".encode("utf-16-le"),
        user.encode("utf-16-le"),
        obfuscate(password),
        "rawclient".encode("utf-16-le"),
        "server".encode("utf-16-le"),
        b"",  # extension
        "tdsclient".encode("utf-16-le"),
        b"",  # language
        database.encode("utf-16-le"),
    ]
    offset = 94
    table, data = b"", b""
    for value in fields:
        table += struct.pack("<HH", offset + len(data), len(value) // 2)
        data += value
    table += bytes(6)  # client id
    table += struct.pack("<HH", offset + len(data), 0)  # SSPI
    table += struct.pack("<HH", offset + len(data), 0)  # attach db file
    table += struct.pack("<HH", offset + len(data), 0)  # change password
    table += struct.pack("<I", 0)  # long SSPI
    fixed = struct.pack(
        "<IIIIII BBBB iI", 0, tds_version, packet_size, 7, 0, 0, 0xE0, 3, 0, 0, 0, 0x409
    )
    body = fixed + table + data
    body = struct.pack("<I", len(body)) + body[4:]
    return packets(0x10, body)


def rpc_message(name: str, *params: tuple[str, int | None], packet_size: int = 4096) -> bytes:
    """An RPC call with INT parameters (name "" for positional)."""
    body = ALL_HEADERS + struct.pack("<H", len(name)) + name.encode("utf-16-le") + b"\x00\x00"
    for pname, value in params:
        body += bytes((len(pname),)) + pname.encode("utf-16-le") + b"\x00" + b"\x26\x04"
        body += b"\x00" if value is None else b"\x04" + struct.pack("<i", value)
    return packets(0x03, body, packet_size)


def batch_message(text: str, packet_size: int = 4096) -> bytes:
    return packets(0x01, ALL_HEADERS + text.encode("utf-16-le"), packet_size)


ATTENTION = HEADER.pack(0x06, 1, 8, 0, 1, 0)


@dataclass
class Reply:
    payload: bytes
    packet_sizes: list[int] = field(default_factory=list)


def split_reply(data: bytes) -> tuple[Reply | None, bytes]:
    """One whole reply message from the front of ``data`` (or None), and the rest."""
    reply = Reply(b"")
    parts = []
    pos = 0
    while pos + 8 <= len(data):
        kind, status, length, _spid, _pid, _win = HEADER.unpack_from(data, pos)
        assert kind == 0x04, f"reply packet type {kind:#x}"
        if pos + length > len(data):
            break
        parts.append(data[pos + 8 : pos + length])
        reply.packet_sizes.append(length)
        pos += length
        if status & 1:
            reply.payload = b"".join(parts)
            return reply, data[pos:]
    return None, data


def done_tokens(payload: bytes) -> list[tuple[int, int, int]]:
    """(token, status, row count) of the DONE* tokens at the end of a payload, walking back."""
    out = []
    pos = len(payload)
    while pos >= 13 and payload[pos - 13] in (0xFD, 0xFE, 0xFF):
        token, status, _cmd, rows = struct.unpack_from("<BHHQ", payload, pos - 13)
        out.append((token, status, rows))
        pos -= 13
        if pos >= 5 and payload[pos - 5] == 0x79:  # RETURNSTATUS
            pos -= 5
    return out[::-1]


def error_numbers(payload: bytes) -> list[int]:
    """Numbers of the ERROR tokens in a reply without rows (walks the token stream)."""
    numbers = []
    pos = 0
    while pos < len(payload):
        token = payload[pos]
        if token in (0xAA, 0xAB, 0xE3, 0xAD):
            (length,) = struct.unpack_from("<H", payload, pos + 1)
            if token == 0xAA:
                numbers.append(struct.unpack_from("<i", payload, pos + 3)[0])
            pos += 3 + length
        elif token in (0xFD, 0xFE, 0xFF):
            pos += 13
        elif token == 0x79:
            pos += 5
        else:
            raise AssertionError(f"unexpected token {token:#x} at {pos}")
    return numbers


class RawClient:
    """A blocking socket client: connect, log in, send requests, read replies.  ``sock``: a
    connected socket or an object with its sendall / recv / recv_into / close (the TLS layer of
    tests.test_sql.tlsclient) instead of a new connection to ``host``:``port``."""

    def __init__(
        self, host: str = "", port: int = 0, *, timeout: float = 30.0, sock: Any = None
    ) -> None:
        self.sock = sock if sock is not None else socket.create_connection((host, port), timeout)
        self.buffer = b""
        self.packet_size = 4096

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read_reply(self) -> Reply:
        while True:
            reply, self.buffer = split_reply(self.buffer)
            if reply is not None:
                return reply
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("server closed the connection")
            self.buffer += chunk

    def login(self, user: str, password: str, database: str = "", packet_size: int = 4096) -> Reply:
        self.sock.sendall(prelogin_message())
        self.read_reply()
        self.sock.sendall(login_message(user, password, database, packet_size))
        reply = self.read_reply()
        self.packet_size = packet_size
        return reply

    def count_rows(self) -> tuple[int, int, bytes]:
        """Read one reply without decoding rows: (payload bytes, rows per DONEINPROC, tail)."""
        buf = bytearray(1 << 20)
        view = memoryview(buf)
        have = len(self.buffer)
        buf[:have] = self.buffer
        self.buffer = b""
        pos = 0
        total = 0
        tail = b""
        while True:
            while have - pos < 8 or have - pos < int.from_bytes(buf[pos + 2 : pos + 4], "big"):
                if pos and have - pos < 65536:
                    buf[: have - pos] = buf[pos:have]
                    have -= pos
                    pos = 0
                n = self.sock.recv_into(view[have:])
                if n == 0:
                    raise ConnectionError("server closed the connection")
                have += n
            status = buf[pos + 1]
            length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
            total += length - 8
            tail = (tail + bytes(buf[pos + 8 : pos + length]))[-64:]
            pos += length
            if status & 1:
                self.buffer = bytes(buf[pos:have])
                dones = done_tokens(tail)
                rows = next((r for t, s, r in dones if t == 0xFF and s & 0x10), 0)
                return total, rows, tail


def rpc_params_message(name: str, *params: bytes, packet_size: int = 4096) -> bytes:
    """An RPC call with parameters written out by the caller (ParameterData: name, status
    flags, TYPE_INFO, value; MS-TDS 2.2.6.6)."""
    body = ALL_HEADERS + struct.pack("<H", len(name)) + name.encode("utf-16-le") + b"\x00\x00"
    return packets(0x03, body + b"".join(params), packet_size)


# -- a token walker for the types the procedures' tests use ---------------------------------

# TYPE_INFO of fixed-length types: id -> value size (MS-TDS 2.2.5.4.1).
_FIXED_SIZES = {0x30: 1, 0x32: 1, 0x34: 2, 0x38: 4, 0x7F: 8, 0x3B: 4, 0x3E: 8}
_BYTELEN_WITH_MAX = {0x26, 0x68, 0x6D, 0x24}  # INTN, BITN, FLTN, GUID: 1-byte max length
_USHORT_CHARS = {0xE7, 0xEF, 0xA7, 0xAF}  # NVARCHAR, NCHAR, BIGVARCHAR, BIGCHAR (+ collation)


@dataclass
class _Column:
    type_id: int
    fixed: int = 0  # value size of a fixed-length type
    plp: bool = False
    ushort: bool = False


class TokenReader:
    """Walks a reply's tokens: DONE*, INFO, ERROR, ENVCHANGE, RETURNSTATUS, RETURNVALUE,
    COLMETADATA, ROW and NBCROW of the fixed types, INTN/BITN/FLTN/GUID, DECIMALN/NUMERICN,
    DATEN, TIMEN/DATETIME2N/DATETIMEOFFSETN and (N)(VAR)CHAR, PLP included; value bytes are
    returned as they are on the wire (without their length)."""

    def __init__(self, payload: bytes) -> None:
        self.data = payload
        self.pos = 0
        self.columns: list[_Column] = []

    def take(self, n: int) -> bytes:
        out = self.data[self.pos : self.pos + n]
        assert len(out) == n, "token stream is truncated"
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int(struct.unpack("<H", self.take(2))[0])

    def text(self, chars: int) -> str:
        return self.take(2 * chars).decode("utf-16-le", "surrogatepass")

    def type_info(self) -> _Column:
        type_id = self.u8()
        if type_id in _FIXED_SIZES:
            return _Column(type_id, fixed=_FIXED_SIZES[type_id])
        if type_id in _BYTELEN_WITH_MAX:
            self.u8()
        elif type_id in (0x6A, 0x6C):  # DECIMALN, NUMERICN: size, precision, scale
            self.take(3)
        elif type_id in (0x29, 0x2A, 0x2B):  # TIMEN, DATETIME2N, DATETIMEOFFSETN: scale
            self.u8()
        elif type_id in _USHORT_CHARS:
            max_len = self.u16()
            self.take(5)  # collation
            return _Column(type_id, plp=max_len == 0xFFFF, ushort=max_len != 0xFFFF)
        elif type_id != 0x28:  # DATEN has no TYPE_INFO beyond its id
            raise AssertionError(f"the walker does not know type {type_id:#x}")
        return _Column(type_id)

    def value(self, column: _Column) -> bytes | None:
        if column.fixed:
            return self.take(column.fixed)
        if column.plp:
            total = struct.unpack("<Q", self.take(8))[0]
            if total == 0xFFFFFFFFFFFFFFFF:
                return None
            parts = []
            while size := struct.unpack("<I", self.take(4))[0]:
                parts.append(self.take(size))
            return b"".join(parts)
        if column.ushort:
            size = self.u16()
            return None if size == 0xFFFF else self.take(size)
        size = self.u8()
        return None if size == 0 else self.take(size)

    def tokens(self) -> list[tuple[object, ...]]:
        """Every token as (name, details...)."""
        out: list[tuple[object, ...]] = []
        while self.pos < len(self.data):
            token = self.u8()
            if token in (0xFD, 0xFE, 0xFF):
                status, cmd, rows = struct.unpack("<HHQ", self.take(12))
                name = {0xFD: "DONE", 0xFE: "DONEPROC", 0xFF: "DONEINPROC"}[token]
                out.append((name, status, cmd, rows))
            elif token in (0xAA, 0xAB):
                end = self.pos + 2 + self.u16()
                number, _state, severity = struct.unpack("<iBB", self.take(6))
                text = self.text(self.u16())
                self.text(self.u8())  # server
                proc = self.text(self.u8())
                self.pos = end
                out.append(("ERROR" if token == 0xAA else "INFO", number, severity, text, proc))
            elif token == 0xE3:
                self.take(self.u16())
                out.append(("ENVCHANGE",))
            elif token == 0x79:
                out.append(("RETURNSTATUS", struct.unpack("<i", self.take(4))[0]))
            elif token == 0xAC:
                ordinal = self.u16()
                name = self.text(self.u8())
                status = self.u8()
                self.take(6)  # UserType, Flags
                value = self.value(self.type_info())
                out.append(("RETURNVALUE", ordinal, name, status, value))
            elif token == 0x81:
                count = self.u16()
                self.columns, names = [], []
                for _ in range(count):
                    self.take(6)  # UserType, Flags
                    self.columns.append(self.type_info())
                    names.append(self.text(self.u8()))
                out.append(("COLMETADATA", tuple(names)))
            elif token == 0xD1:
                out.append(("ROW", tuple(self.value(c) for c in self.columns)))
            elif token == 0xD2:
                bitmap = self.take((len(self.columns) + 7) // 8)
                values = tuple(
                    None if bitmap[i // 8] & (1 << (i % 8)) else self.value(c)
                    for i, c in enumerate(self.columns)
                )
                out.append(("ROW", values))
            else:
                raise AssertionError(f"unexpected token {token:#x} at {self.pos - 1}")
        return out


def reply_tokens(payload: bytes) -> list[tuple[object, ...]]:
    return TokenReader(payload).tokens()
