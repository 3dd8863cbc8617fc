"""A client that stops reading: production pauses all the way back to the database server, memory
stays bounded, and a client that never resumes is given up on after the write timeout."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator

import psutil
import pytest

from server.metrics import Outcome
from sql.devserver import DevServer
from tests.test_server.conftest import StartApi, wait_for, wait_idle

ROWS = 1_000_000  # ~80 MB of workbook: far more than every buffer on the way put together
SMALL_RCVBUF = 4_096


@pytest.fixture
async def stalled_reader() -> AsyncIterator[
    tuple[list[asyncio.StreamWriter], list[asyncio.StreamReader]]
]:
    """Holds the raw clients a test opens and closes them at the end."""
    writers: list[asyncio.StreamWriter] = []
    readers: list[asyncio.StreamReader] = []
    yield writers, readers
    for writer in writers:
        writer.close()


async def _open_slow_client(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw client with a tiny receive buffer that reads only what it is told to."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_RCVBUF)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    # limit: asyncio stops reading the socket once this much is buffered and unread.
    reader, writer = await asyncio.open_connection(sock=sock, limit=SMALL_RCVBUF)
    writer.write(f"GET /export/report?rowCount={ROWS} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    await writer.drain()
    return reader, writer


async def _read(reader: asyncio.StreamReader, count: int) -> None:
    received = 0
    while received < count:
        data = await reader.read(SMALL_RCVBUF)
        assert data, "the server closed the connection early"
        received += len(data)


async def _until_stable(read: object, *, quiet_s: float = 1.0, deadline_s: float = 30.0) -> int:
    """Wait until ``read()`` has not changed for ``quiet_s``; return the value it settled on."""
    assert callable(read)
    deadline = time.monotonic() + deadline_s
    last = read()
    last_change = time.monotonic()
    while time.monotonic() - last_change < quiet_s:
        if time.monotonic() > deadline:
            pytest.fail(f"value still changing after {deadline_s:g} s (now {last})")
        await asyncio.sleep(0.05)
        now = read()
        if now != last:
            last, last_change = now, time.monotonic()
    return int(last)


async def test_paused_reader_pauses_the_database_and_memory_stays_bounded(
    devserver: DevServer,
    start_api: StartApi,
    stalled_reader: tuple[list[asyncio.StreamWriter], list[asyncio.StreamReader]],
) -> None:
    # The client stays stalled while the test waits for the pause and for production to settle:
    # on a loaded machine that can take a while, and it must not be dropped meanwhile.
    api = await start_api(client_write_timeout_s=150.0)
    process = psutil.Process()
    rss_before = process.memory_info().rss
    reader, writer = await _open_slow_client(api.port)
    stalled_reader[0].append(writer)
    await _read(reader, 100_000)  # the download has started...

    # ... and now the client reads nothing: the database must stop producing.
    await wait_for(lambda: devserver.stats.backpressure_pauses > 0, what="a backpressure pause")
    sent = await _until_stable(lambda: devserver.stats.rows_sent)
    assert sent < ROWS // 4, f"the database produced {sent:,} rows for a stalled client"
    growth = process.memory_info().rss - rss_before
    # Test process = dev server + API + client; the writer's chunks, the hand-off (4 x 64 KiB)
    # and the socket buffers are a few MB. Unbounded buffering would be ~80 MB.
    assert growth < 40 * 1024 * 1024, f"RSS grew by {growth / 2**20:.1f} MiB while stalled"

    # Reading again resumes production where it stopped (once the kernel's socket buffers,
    # several MB on loopback, have drained).
    deadline = time.monotonic() + 30
    while devserver.stats.rows_sent == sent:
        assert time.monotonic() < deadline, "production did not resume"
        await _read(reader, 65_536)

    writer.close()  # then the client goes away: the query is cancelled
    await wait_for(lambda: devserver.stats.attentions == 1, what="an attention")
    await wait_idle(api)
    assert api.pool.idle == 1


async def test_client_that_never_reads_again_is_dropped_after_the_write_timeout(
    devserver: DevServer,
    start_api: StartApi,
    stalled_reader: tuple[list[asyncio.StreamWriter], list[asyncio.StreamReader]],
) -> None:
    api = await start_api(client_write_timeout_s=1.0)
    reader, writer = await _open_slow_client(api.port)
    stalled_reader[0].append(writer)
    await _read(reader, 100_000)
    # No more reading: after ~1 s of refused writes the API gives up on this client.
    await wait_for(lambda: devserver.stats.attentions == 1, what="an attention")
    await wait_idle(api)
    assert api.metrics.requests(Outcome.CLIENT_DISCONNECTED) == 1
    assert api.pool.idle == 1
    # What the client still has buffered ends without the final chunk: the socket is closed.
    with pytest.raises((ConnectionError, AssertionError)):  # noqa: PT012 - read to the end
        while True:
            data = await reader.read(65_536)
            assert data, "closed"
            assert not data.endswith(b"\r\n0\r\n\r\n"), "the response must not end normally"
