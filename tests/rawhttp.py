"""A bare-socket HTTP client for tests that must control the bytes: stop reading, vanish,
send what no HTTP library would, or check that nothing follows a HEAD answer."""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]
# Generous: a loaded CI machine may not schedule the server for a while.
READ_TIMEOUT_S = 30.0


def request(method: str, target: bytes | str, *headers: bytes | str, version: str = "1.1") -> bytes:
    """One request's bytes (``Host: t`` added for HTTP/1.1), headers as given."""
    as_bytes = [h.encode() if isinstance(h, str) else h for h in headers]
    path = target.encode() if isinstance(target, str) else target
    host = [b"Host: t"] if version == "1.1" else []
    start = method.encode() + b" " + path + b" HTTP/" + version.encode()
    return b"\r\n".join([start, *host, *as_bytes, b"", b""])


def split_answer(answer: bytes) -> tuple[str, dict[str, str], bytes]:
    """Status line, headers (lower-case names) and whatever followed them."""
    head, separator, body = answer.partition(b"\r\n\r\n")
    assert separator, answer[:200]
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v for k, v in (line.split(": ", 1) for line in lines)}
    return status_line, headers, body


def head_answer(answer: bytes) -> tuple[int, dict[str, str]]:
    """Status and headers of an answer to HEAD, which must end right after its headers."""
    status_line, headers, body = split_answer(answer)
    assert body == b"", "a HEAD answer has no body"
    return int(status_line.split(" ")[1]), headers


async def read_response(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes]:
    """One answer with a Content-Length on a kept-alive connection: status line, headers
    (lower-case names), body; the connection stays open for the next request."""
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=READ_TIMEOUT_S)
    status_line, headers, _ = split_answer(head)
    length = int(headers.get("content-length", "0"))
    body = await asyncio.wait_for(reader.readexactly(length), timeout=READ_TIMEOUT_S)
    return status_line, headers, body


async def read_until_closed(reader: asyncio.StreamReader, into: bytearray) -> None:
    """Append everything until the peer closes; a reset propagates (ConnectionResetError)."""
    while chunk := await asyncio.wait_for(reader.read(65536), timeout=READ_TIMEOUT_S):
        into += chunk


async def closed_by_peer(reader: asyncio.StreamReader) -> bytes:
    """Everything the peer sent before it closed the connection (a reset counts as closed)."""
    received = bytearray()
    with contextlib.suppress(ConnectionResetError):
        await read_until_closed(reader, received)
    return bytes(received)


class RawClients:
    """Connections opened by one test, all aborted when it ends (even half-way)."""

    def __init__(self) -> None:
        self._writers: list[asyncio.StreamWriter] = []

    async def connect(self, port: int, *, source: str | None = None) -> Connection:
        """A connection to the service on ``port``, from the loopback address ``source`` (any
        of 127.0.0.0/8: another client address, on one machine) or the default one."""
        local = None if source is None else (source, 0)
        reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=local)
        self._writers.append(writer)
        return reader, writer

    async def send(self, port: int, data: bytes) -> Connection:
        reader, writer = await self.connect(port)
        writer.write(data)
        await writer.drain()
        return reader, writer

    async def exchange(self, port: int, data: bytes) -> bytes:
        """Send ``data`` on a new connection and read until the server closes it."""
        reader, _ = await self.send(port, data)
        return await asyncio.wait_for(reader.read(), timeout=READ_TIMEOUT_S)

    async def __aenter__(self) -> RawClients:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        while self._writers:
            writer = self._writers.pop()
            writer.transport.abort()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
