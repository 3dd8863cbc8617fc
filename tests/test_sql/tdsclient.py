"""A minimal raw TDS client written from MS-TDS for tests and the benchmark.

Independent of the dev server's code on purpose (it builds requests and walks replies itself),
so tests of the protocol core feed it bytes made by a second implementation, and the benchmark
can read rows faster than any real driver.
"""

from __future__ import annotations

import socket
import struct
from dataclasses import dataclass, field

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


def prelogin_message() -> bytes:
    options = [(0x00, bytes(6)), (0x01, b"\x02"), (0x02, b"MSSQLServer\x00"), (0x04, b"\x00")]
    offset = 5 * len(options) + 1
    table, data = b"", b""
    for token, value in options:
        table += struct.pack(">BHH", token, offset + len(data), len(value))
        data += value
    return packets(0x12, table + b"\xff" + data)


def _obfuscate(password: str) -> bytes:
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
        _obfuscate(password),
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
    """A blocking socket client: connect, log in, send requests, read replies."""

    def __init__(self, host: str, port: int, *, timeout: float = 30.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
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
