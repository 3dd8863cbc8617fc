"""The page's download status learns the rows read from the API serving the download
(``bff.progress``): asked by ticket, of that API only, at a bounded rate, once more after the
end, and never at the cost of the status itself."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
import pytest
from aiohttp import web

from bff import progress as bff_progress
from bff.app import BffServer
from tests.test_bff.conftest import BffFactory

CHUNK = b"x" * 4096


@dataclass
class FakeApi:
    """An API whose download streams until ``finish`` is set and whose ``/progress/<id>``
    answers ``rows`` (or ``progress_status``, or nothing for ``progress_hang_s``)."""

    rows: int = 0
    progress_status: int = 200
    progress_hang_s: float = 0.0
    progress_body: bytes | None = None
    asked: list[tuple[str, str | None]] = field(default_factory=list)  # (path, X-Request-ID)
    downloads: int = 0
    finish: asyncio.Event = field(default_factory=asyncio.Event)
    runner: web.ServerRunner | None = None
    url: str = ""

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        if request.path.startswith("/progress/"):
            self.asked.append((request.path, request.headers.get("X-Request-ID")))
            if self.progress_hang_s:
                await asyncio.sleep(self.progress_hang_s)
            body = self.progress_body
            if body is None:
                body = json.dumps({"rows": self.rows, "bytes": 1, "state": "streaming"}).encode()
            return web.Response(
                status=self.progress_status, body=body, content_type="application/json"
            )
        if request.path == "/readyz":
            return web.json_response({"status": "ready"})
        self.downloads += 1
        response = web.StreamResponse()
        response.content_type = "application/octet-stream"
        await response.prepare(request)
        await response.write(CHUNK)
        await self.finish.wait()
        with contextlib.suppress(ConnectionError):  # the BFF's client went away first
            await response.write(CHUNK)
            await response.write_eof()
        return response


ApiFactory = Callable[[], Awaitable[FakeApi]]


@pytest.fixture
async def make_api() -> AsyncIterator[ApiFactory]:
    made: list[FakeApi] = []

    async def factory() -> FakeApi:
        api = FakeApi()
        api.runner = web.ServerRunner(web.Server(api.handle), shutdown_timeout=0.5)
        await api.runner.setup()
        site = web.TCPSite(api.runner, "127.0.0.1", 0)
        await site.start()
        api.url = f"http://127.0.0.1:{api.runner.addresses[0][1]}"
        made.append(api)
        return api

    yield factory
    for api in made:
        api.finish.set()
        assert api.runner is not None
        await api.runner.cleanup()


class Page:
    """What the page does: a ticket, the download carrying it, status polls."""

    def __init__(self, client: aiohttp.ClientSession, bff: BffServer) -> None:
        self.client = client
        self.base = f"http://127.0.0.1:{bff.port}"
        self.ticket = ""
        self.body: asyncio.Task[bytes] | None = None

    async def start_download(self) -> None:
        async with self.client.post(f"{self.base}/exports/ticket") as response:
            self.ticket = str((await response.json())["id"])

        async def read() -> bytes:
            async with self.client.get(
                f"{self.base}/exports/report", headers={"Cookie": f"bff_download={self.ticket}"}
            ) as response:
                return await response.read()

        self.body = asyncio.create_task(read())
        deadline = asyncio.get_running_loop().time() + 30
        while (await self.status())["state"] != "streaming":
            assert asyncio.get_running_loop().time() < deadline, "the download never streamed"
            await asyncio.sleep(0.02)

    async def status(self, method: str = "GET") -> dict[str, object]:
        async with self.client.request(
            method, f"{self.base}/exports/status/{self.ticket}"
        ) as response:
            if method == "HEAD":
                return {}
            if response.status == 404:
                return {"state": "not yet"}
            assert response.status == 200
            return dict(await response.json())

    async def close(self) -> None:
        if self.body is not None:
            self.body.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiohttp.ClientError):
                await self.body


async def test_the_status_has_the_rows_the_serving_api_reports(
    make_api: ApiFactory,
    start_bff: BffFactory,
    client: aiohttp.ClientSession,
) -> None:
    first, second = await make_api(), await make_api()
    bff = await start_bff(api_urls=(first.url, second.url))
    page = Page(client, bff)
    await page.start_download()
    serving, other = (first, second) if first.downloads else (second, first)
    serving.rows, other.rows = 1234, 999_999
    await asyncio.sleep(bff_progress_interval())
    status = await page.status()
    assert status["rows"] == 1234
    assert status["state"] == "streaming"
    # Asked by ticket, of the API serving the download only.
    assert serving.asked[-1] == (f"/progress/{page.ticket}", page.ticket)
    assert other.asked == []
    serving.rows = 5678
    await asyncio.sleep(bff_progress_interval())
    assert (await page.status())["rows"] == 5678
    await page.close()


def bff_progress_interval() -> float:
    return float(bff_progress.MIN_INTERVAL_S) + 0.05


async def test_questions_to_the_api_are_rate_limited_and_head_asks_nothing(
    make_api: ApiFactory,
    start_bff: BffFactory,
    client: aiohttp.ClientSession,
) -> None:
    api = await make_api()
    bff = await start_bff(api_urls=(api.url,))
    page = Page(client, bff)
    await page.start_download()
    asked = len(api.asked)
    await asyncio.sleep(bff_progress_interval())
    loop = asyncio.get_running_loop()
    started = loop.time()
    for _ in range(20):
        await page.status()
    elapsed = loop.time() - started
    questions = len(api.asked) - asked
    assert 1 <= questions <= 1 + elapsed / bff_progress.MIN_INTERVAL_S
    asked = len(api.asked)
    await asyncio.sleep(bff_progress_interval())
    await page.status("HEAD")
    assert len(api.asked) == asked
    await page.close()


async def test_the_final_count_is_asked_once_after_the_end(
    make_api: ApiFactory,
    start_bff: BffFactory,
    client: aiohttp.ClientSession,
) -> None:
    api = await make_api()
    bff = await start_bff(api_urls=(api.url,))
    page = Page(client, bff)
    await page.start_download()
    api.rows = 100
    api.finish.set()
    assert page.body is not None
    assert await page.body == CHUNK * 2
    api.rows = 30_000  # what the API says once the export is over
    deadline = asyncio.get_running_loop().time() + 30
    while (status := await page.status())["state"] != "completed":
        assert asyncio.get_running_loop().time() < deadline, "the download never completed"
        await asyncio.sleep(0.02)
    assert status["rows"] == 30_000
    # That was the last question: the API is not asked again.
    asked = len(api.asked)
    for _ in range(3):
        await asyncio.sleep(bff_progress_interval())
        assert (await page.status())["rows"] == 30_000
    assert len(api.asked) == asked


@pytest.mark.parametrize(
    "failure",
    [
        {"progress_status": 404, "progress_body": b'{"error": {"message": "no", "code": "X"}}'},
        {"progress_body": b'{"rows": "many"}'},
        {"progress_body": b'{"rows": -1}'},
        {"progress_body": b"not json"},
        {"progress_body": b"[" * 10_000},
        {"progress_hang_s": 5.0},
    ],
    ids=["404", "not-a-number", "negative", "not-json", "too-long", "no-answer"],
)
async def test_an_api_that_cannot_tell_leaves_the_rows_unknown(
    make_api: ApiFactory,
    start_bff: BffFactory,
    client: aiohttp.ClientSession,
    monkeypatch: pytest.MonkeyPatch,
    failure: dict[str, object],
) -> None:
    monkeypatch.setattr(bff_progress, "TIMEOUT_S", 0.5)
    api = await make_api()
    for name, value in failure.items():
        setattr(api, name, value)
    server = await start_bff(api_urls=(api.url,))
    page = Page(client, server)
    await page.start_download()
    loop = asyncio.get_running_loop()
    started = loop.time()
    status = await page.status()
    assert loop.time() - started < 3.0  # the status is not held up by the API
    assert status["state"] == "streaming"
    assert status["rows"] is None
    assert status["bytes"] == len(CHUNK)
    await page.close()
