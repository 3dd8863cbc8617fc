"""``GET /progress/{request id}``: a running export's rows and bytes, found by the request id its
client sent; the final counts for a while after it ends; nothing for any other id."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import aiohttp
import pytest

from server.errors import NotFound
from server.progress import ProgressBoard
from sql.devserver import DevServer
from tests.test_server.conftest import StartApi, url, wait_idle

ROWS = 20_000


@dataclass
class FakeRelay:
    """What the board reads of a relay."""

    request_id: str
    rows: int = 0
    bytes_sent: int = 0
    first_byte_s: float | None = None


def test_a_running_export_is_waiting_then_streaming() -> None:
    relay = FakeRelay("abc")
    board = ProgressBoard(lambda: [relay])  # type: ignore[list-item]
    assert board.lookup("abc").to_json() == {"rows": 0, "bytes": 0, "state": "waiting"}
    relay.rows, relay.bytes_sent, relay.first_byte_s = 1234, 56_789, 0.1
    assert board.lookup("abc").to_json() == {"rows": 1234, "bytes": 56_789, "state": "streaming"}


@pytest.mark.parametrize("request_id", ["other", "", "../abc", "a" * 65, "abc\n"])
def test_any_other_id_is_not_found(request_id: str) -> None:
    board = ProgressBoard(lambda: [FakeRelay("abc")])  # type: ignore[list-item]
    with pytest.raises(NotFound):
        board.lookup(request_id)


def test_an_id_two_running_exports_share_is_not_found() -> None:
    """Two clients sent the same X-Request-ID: neither's counts are told as the other's."""
    both = [FakeRelay("same", rows=1), FakeRelay("same", rows=2)]
    board = ProgressBoard(lambda: both)  # type: ignore[arg-type,return-value]
    with pytest.raises(NotFound):
        board.lookup("same")


def test_a_finished_export_is_answered_for_a_while_then_forgotten() -> None:
    now = [100.0]
    running: list[FakeRelay] = []
    board = ProgressBoard(
        lambda: running,  # type: ignore[arg-type,return-value]
        linger_s=30,
        clock=lambda: now[0],
    )
    board.finished(FakeRelay("done", rows=500, bytes_sent=9000))  # type: ignore[arg-type]
    now[0] += 29
    assert board.lookup("done").to_json() == {"rows": 500, "bytes": 9000, "state": "finished"}
    # The same id running again: the running export is the one answered.
    running.append(FakeRelay("done", rows=7, first_byte_s=0.1))
    assert board.lookup("done").rows == 7
    running.clear()
    now[0] += 2
    with pytest.raises(NotFound):
        board.lookup("done")


def test_finished_exports_are_bounded() -> None:
    board = ProgressBoard(lambda: [], max_finished=3)
    for n in range(4):
        board.finished(FakeRelay(f"r{n}", rows=n))  # type: ignore[arg-type]
    with pytest.raises(NotFound):
        board.lookup("r0")  # the oldest made room
    assert [board.lookup(f"r{n}").rows for n in (1, 2, 3)] == [1, 2, 3]


async def _progress(http: aiohttp.ClientSession, address: str) -> tuple[int, dict[str, object]]:
    async with http.get(address) as response:
        return response.status, dict(await response.json())


async def test_progress_over_http_follows_a_download_to_its_end(
    start_api: StartApi, devserver: DevServer, http: aiohttp.ClientSession
) -> None:
    # Slow enough to be seen part-way: a pause every 1,000 rows.
    devserver.faults.row_delay, devserver.faults.row_delay_every = 0.05, 1000
    api = await start_api()
    progress_url = url(api, "/progress/ticket-1")
    status, body = await _progress(http, progress_url)
    assert status == 404
    assert body["error"] == {
        "message": "no export with this request id is running",
        "code": "NOT_FOUND",
    }

    async def download() -> bytes:
        async with http.get(
            url(api, f"/export/report?rowCount={ROWS}"), headers={"X-Request-ID": "ticket-1"}
        ) as response:
            assert response.status == 200
            return await response.read()

    task = asyncio.create_task(download())
    seen: list[int] = []

    async def part_way() -> bool:
        status, body = await _progress(http, progress_url)
        if status == 200 and body["state"] == "streaming":
            assert isinstance(body["rows"], int)
            assert isinstance(body["bytes"], int)
            if body["rows"]:  # 0 until the first rows' frame
                seen.append(body["rows"])
        return len(set(seen)) >= 2

    deadline = asyncio.get_running_loop().time() + 30
    while not await part_way():
        assert not task.done(), f"the download ended before two counts were seen: {seen}"
        assert asyncio.get_running_loop().time() < deadline, "no progress seen"
        await asyncio.sleep(0.05)
    assert all(0 < rows <= ROWS for rows in seen), seen
    assert seen == sorted(seen)
    # Other ids tell nothing of it.
    assert (await _progress(http, url(api, "/progress/ticket-2")))[0] == 404
    workbook = await task
    await wait_idle(api)
    status, body = await _progress(http, progress_url)
    assert status == 200
    assert body == {"rows": ROWS, "bytes": len(workbook), "state": "finished"}


async def test_a_refused_export_has_no_progress(
    start_api: StartApi, http: aiohttp.ClientSession
) -> None:
    api = await start_api()
    async with http.get(
        url(api, "/export/report?rowCount=0"), headers={"X-Request-ID": "refused-1"}
    ) as response:
        assert response.status == 400
    status, _ = await _progress(http, url(api, "/progress/refused-1"))
    assert status == 404


async def test_progress_answers_get_and_head_only(
    start_api: StartApi, http: aiohttp.ClientSession
) -> None:
    api = await start_api()
    async with http.post(url(api, "/progress/x")) as response:
        assert response.status == 405
        assert response.headers["Allow"] == "GET, HEAD"
