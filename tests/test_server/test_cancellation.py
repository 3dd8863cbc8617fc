"""Clients that go away, databases that fail mid-stream: the query is cancelled with an attention,
the pool gets its connection back (or a broken one is closed), and a failed transfer is visibly
failed, never a well-formed but truncated workbook."""

from __future__ import annotations

import asyncio
import pathlib

import aiohttp
import pytest

from server.metrics import Outcome
from sql.devserver import DevServer
from tests.devclient import AFTER_ATTENTION
from tests.polling import apoll
from tests.test_server.conftest import (
    EXPORT_MODE_IDS,
    EXPORT_MODES,
    StartApi,
    read_until_aborted,
    url,
    wait_idle,
)
from tests.test_server.readers import is_valid_zip

# Exports in a worker process and on threads of the HTTP process alike.
pytestmark = pytest.mark.parametrize("export_workers", EXPORT_MODES, ids=EXPORT_MODE_IDS)


async def _open_export(port: int, rows: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A raw HTTP/1.1 client: nothing between us and the socket (we decide when it closes)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"GET /export/report?rowCount={rows} HTTP/1.1\r\nHost: test\r\n\r\n".encode("ascii")
    )
    await writer.drain()
    return reader, writer


async def test_disconnect_before_the_first_row_cancels_the_query(
    devserver: DevServer, start_api: StartApi
) -> None:
    devserver.faults.first_row_delay = 60.0  # the procedure "runs" for a minute
    api = await start_api()
    _, writer = await _open_export(api.port, 1_000)
    await apoll(lambda: devserver.stats.requests == 1, what="the RPC to reach the server")
    writer.close()  # the person closed the tab while the database was still working

    await apoll(lambda: devserver.stats.attentions == 1, what="an attention")
    await wait_idle(api)
    assert api.pool.idle == 1, "acknowledged cancel: the connection is clean and kept"
    assert api.metrics.requests(Outcome.CLIENT_DISCONNECTED) == 1
    assert devserver.stats.rows_sent == 0


async def test_disconnect_mid_stream_cancels_the_query(
    devserver: DevServer, start_api: StartApi
) -> None:
    api = await start_api()
    reader, writer = await _open_export(api.port, 1_000_000)
    received = 0
    while received < 200_000:  # headers and the first ~200 KB of the workbook
        data = await reader.read(65_536)
        assert data, "the server closed the connection early"
        received += len(data)
    writer.close()

    await apoll(lambda: devserver.stats.attentions == 1, what="an attention")
    await wait_idle(api)
    assert api.pool.idle == 1
    assert api.metrics.requests(Outcome.CLIENT_DISCONNECTED) == 1
    stats = devserver.stats
    # The client stopped reading: backpressure held the query back, so the attention found it
    # still producing, and it produced (almost) nothing after.
    assert stats.rows_at_last_attention < 1_000_000, "the attention came after the last row"
    assert stats.rows_sent - stats.rows_at_last_attention <= AFTER_ATTENTION


async def test_cancelled_connection_is_reused_cleanly(
    devserver: DevServer, start_api: StartApi, http: aiohttp.ClientSession
) -> None:
    """After an acknowledged attention the next export on the same connection is complete."""
    devserver.faults.first_row_delay = 60.0
    api = await start_api(pool_max=1)
    _, writer = await _open_export(api.port, 1_000)
    await apoll(lambda: devserver.stats.requests == 1, what="the RPC")
    writer.close()
    await wait_idle(api)
    devserver.faults.first_row_delay = 0.0
    async with http.get(url(api, "/export/report?rowCount=3000")) as response:
        assert response.status == 200
        body = await response.read()
    assert is_valid_zip(body)
    assert devserver.stats.connections_total == 1  # the same connection served both


@pytest.mark.parametrize(
    ("fault", "kept"),
    [
        ("error_after_rows", 1),  # a server-reported error leaves the connection usable
        ("drop_after_rows", 0),  # a dropped connection is closed, not pooled
    ],
)
async def test_mid_stream_database_failure_aborts_the_download(
    devserver: DevServer, start_api: StartApi, http: aiohttp.ClientSession, fault: str, kept: int
) -> None:
    setattr(devserver.faults, fault, 20_000)
    api = await start_api()
    async with http.get(url(api, "/export/report?rowCount=50000")) as response:
        assert response.status == 200  # the headers went out before the failure
        body, aborted = await read_until_aborted(response)
    assert aborted, "the transfer must fail, not end normally"
    assert not is_valid_zip(body)
    await wait_idle(api)
    assert api.metrics.requests(Outcome.DB_ERROR) == 1
    assert api.pool.idle == kept


@pytest.mark.parametrize("fault", ["error_after_rows", "drop_after_rows"])
async def test_curl_reports_the_aborted_transfer(
    devserver: DevServer, start_api: StartApi, fault: str, tmp_path: pathlib.Path
) -> None:
    """curl, an independent client, exits 18 ("transfer closed with outstanding read data")."""
    setattr(devserver.faults, fault, 20_000)
    api = await start_api()
    process = await asyncio.create_subprocess_exec(
        "curl",
        "-sSfo",
        f"{tmp_path}/report.xlsx",
        url(api, "/export/report?rowCount=50000"),
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await process.communicate()
    assert process.returncode == 18, stderr


async def test_database_silent_between_rows_times_out_and_aborts(
    devserver: DevServer, start_api: StartApi, http: aiohttp.ClientSession
) -> None:
    devserver.faults.row_delay = 60.0
    devserver.faults.row_delay_every = 5_000
    api = await start_api(row_timeout_s=0.5)
    async with http.get(url(api, "/export/report?rowCount=20000")) as response:
        assert response.status == 200
        body, aborted = await read_until_aborted(response)
    assert aborted
    assert not is_valid_zip(body)
    await apoll(lambda: devserver.stats.attentions == 1, what="an attention")
    await wait_idle(api)
    assert api.pool.idle == 1
    assert api.metrics.requests(Outcome.DB_ERROR) == 1
