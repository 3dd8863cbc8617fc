"""A client that stops reading: production pauses all the way back to the database server, memory
stays bounded, and a client that never resumes is given up on after the write timeout."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import psutil
import pytest

from server.metrics import Outcome
from sql.devserver import DevServer
from tests.backpressure import WITNESS_ROWS, assert_held, fetch_elsewhere
from tests.polling import apoll
from tests.test_server.conftest import EXPORT_MODE_IDS, EXPORT_MODES, StartApi, wait_idle

# Exports in a worker process and on threads of the HTTP process alike.
pytestmark = pytest.mark.parametrize("export_workers", EXPORT_MODES, ids=EXPORT_MODE_IDS)

ROWS = 1_000_000  # ~80 MB of workbook: far more than every buffer on the way put together
SMALL_RCVBUF = 4_096
# Rows in flight between the dev server and a client that stopped reading: the dev server's
# socket buffers, the export channel's 4 chunks, the API's socket buffers towards the client (~58k
# rows in all, measured with Linux's default buffer limits), with room to spare.
HELD_ROWS_BOUND = 120_000
# The chunked body's last chunk (RFC 9112 7.1): only a response that ended normally has it.
LAST_CHUNK = b"\r\n0\r\n\r\n"


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
    await apoll(lambda: devserver.stats.backpressure_pauses > 0, what="a backpressure pause")
    await asyncio.to_thread(fetch_elsewhere, devserver.port)  # the loop serves both meanwhile
    held = assert_held(devserver.stats, bound=HELD_ROWS_BOUND)
    growth = process.memory_info().rss - rss_before
    # Test process = dev server + API + client; the writer's chunks, the export channel (4 x 64 KiB)
    # and the socket buffers are a few MB. Unbounded buffering would be ~80 MB.
    assert growth < 40 * 1024 * 1024, f"RSS grew by {growth / 2**20:.1f} MiB while stalled"

    # Reading again resumes production where it stopped (once the kernel's socket buffers,
    # several MB on loopback, have drained).
    async with asyncio.timeout(60):
        while devserver.stats.rows_sent - WITNESS_ROWS == held:
            await _read(reader, 65_536)

    writer.close()  # then the client goes away: the query is cancelled
    await apoll(lambda: devserver.stats.attentions == 1, what="an attention")
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
    await apoll(lambda: devserver.stats.attentions == 1, what="an attention")
    await wait_idle(api)
    assert api.metrics.requests(Outcome.CLIENT_DISCONNECTED) == 1
    assert api.pool.idle == 1
    # What the client still has buffered ends without the chunked body's last chunk: the
    # connection was aborted, so the download cannot pass for a complete one.
    tail = b""
    with contextlib.suppress(ConnectionResetError):  # a reset is an abort too
        async with asyncio.timeout(60):
            while data := await reader.read(65_536):
                tail = (tail + data)[-len(LAST_CHUNK) :]
    assert tail != LAST_CHUNK, "the response ended normally"
