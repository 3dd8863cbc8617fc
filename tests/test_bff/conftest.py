"""Real HTTP upstreams for the proxy tests, and a factory for BFFs pointed at them.

An upstream is an aiohttp low-level server on a real port that plays the API's part in
whatever way a test needs: stream slowly, stop half-way, hang before headers, answer JSON
errors, answer /readyz as told. Like the API it has a catalog of reports (``GET /reports``)
and downloads each at ``/export/<id>``; an id it does not list is its ``404 UNKNOWN_REPORT``.
It records what it received (readiness checks apart) and whether its client (the BFF) went
away. Its port is bound before it listens: until ``start()`` (and after ``stop()``)
connections to it are refused, and no other process can take the port meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bff.app import BffApp, BffServer, start_server
from bff.config import BffConfig

CHUNK = b"x" * 1024
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
# The fake API's reports: the demo report every older test downloads, and a second one.
REPORTS = ("report", "sales-by-region")
CATALOG = {
    "reports": [
        {"id": report, "title": report.title(), "description": "A test report.", "parameters": []}
        for report in REPORTS
    ]
}


@dataclass
class Upstream:
    url: str = ""
    requests: list[web.BaseRequest] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    disconnects: int = 0
    finished: int = 0
    bytes_sent: int = 0
    writing_since: float | None = None  # loop time a still-running write began
    ready_status: int = 200  # what /readyz answers
    draining: bool = False  # every relayed request answered as a draining API does
    # What /reports answers: status, body (sent with a Content-Length unless chunked), and a
    # pause before the headers.
    catalog_status: int = 200
    catalog_body: bytes = json.dumps(CATALOG).encode()
    catalog_chunked: bool = False
    catalog_hang_s: float = 0.0
    readiness_checks: int = 0
    socket: socket.socket | None = None
    runner: web.ServerRunner | None = None

    async def start(self) -> None:
        """Listen on the bound port: from now on connections are accepted."""
        assert self.socket is not None
        assert self.runner is None
        self.socket.listen(128)
        self.runner = web.ServerRunner(
            web.Server(make_handler(self), handler_cancellation=True), shutdown_timeout=0.5
        )
        await self.runner.setup()
        await web.SockSite(self.runner, self.socket).start()

    async def stop(self) -> None:
        """Stop listening and drop every connection: from now on connections are refused."""
        if self.runner is not None:
            await self.runner.cleanup()
        if self.socket is not None:
            self.socket.close()

    def blocked(self, for_s: float = 0.3) -> bool:
        """Whether a write has been waiting on its peer (backpressure) for ``for_s``."""
        since = self.writing_since
        return since is not None and asyncio.get_running_loop().time() - since > for_s


async def _stream(
    request: web.BaseRequest, state: Upstream, chunks: int, delay: float
) -> web.StreamResponse:
    response = web.StreamResponse(status=200)
    response.headers["Content-Type"] = XLSX_TYPE
    response.headers["Content-Disposition"] = 'attachment; filename="report.xlsx"'
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Internal-Debug"] = "secret"
    response.headers["Keep-Alive"] = "timeout=5"
    response.headers["Proxy-Authenticate"] = "Basic"
    response.headers["Trailer"] = "X-Checksum"
    response.enable_chunked_encoding()
    await response.prepare(request)
    loop = asyncio.get_running_loop()
    for i in range(chunks):
        if i == 1 and request.query.get("gate"):
            await state.release.wait()
        state.writing_since = loop.time()
        await response.write(CHUNK)
        state.writing_since = None
        state.bytes_sent += len(CHUNK)
        if delay:
            await asyncio.sleep(delay)
    if request.query.get("abort"):
        assert request.transport is not None
        request.transport.abort()  # mid-body, no final chunk
        return response
    await response.write_eof()
    return response


def _json_error(status: int, code: str, message: str) -> web.Response:
    body = {"error": {"message": message, "code": code}}
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")


async def _catalog(request: web.BaseRequest, state: Upstream) -> web.StreamResponse:
    if state.catalog_hang_s:
        await asyncio.sleep(state.catalog_hang_s)
    response = web.StreamResponse(status=state.catalog_status)
    response.content_type = "application/json"
    response.headers["Retry-After"] = "3"
    response.headers["X-Internal-Debug"] = "secret"
    if state.catalog_chunked:
        response.enable_chunked_encoding()
    else:
        response.content_length = len(state.catalog_body)
    await response.prepare(request)
    if request.method != "HEAD":
        for start in range(0, len(state.catalog_body), 65536):
            await response.write(state.catalog_body[start : start + 65536])
    await response.write_eof()
    return response


def make_handler(state: Upstream) -> Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]:
    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        if request.path == "/readyz":  # the BFF's background check, not a relayed request
            state.readiness_checks += 1
            code = {"error": {"message": "not ready", "code": "TOO_MANY_EXPORTS"}}
            return web.json_response(
                {"status": "ok"} if state.ready_status == 200 else code, status=state.ready_status
            )
        state.requests.append(request)
        state.headers.append(dict(request.headers))
        if state.draining:  # the API after SIGTERM: 503, and the connection closed after it
            refused = _json_error(503, "SHUTTING_DOWN", "the service is shutting down")
            refused.headers["Retry-After"] = "9"
            refused.force_close()
            return refused
        if request.path == "/reports":
            return await _catalog(request, state)
        if request.path.removeprefix("/export/") not in REPORTS:
            return _json_error(404, "UNKNOWN_REPORT", "No such report.")
        q = request.query
        try:
            if request.method == "HEAD":  # what the API's HEAD answers: headers, no work
                head = web.StreamResponse(status=int(q.get("status", "200")))
                head.headers["Content-Type"] = XLSX_TYPE
                head.headers["Content-Disposition"] = 'attachment; filename="report.xlsx"'
                head.headers["X-Internal-Debug"] = "secret"
                return head
            if "hang" in q:
                await asyncio.sleep(float(q["hang"]))
            if "status" in q:
                error = _json_error(int(q["status"]), q.get("code", "X"), q.get("message", "bad"))
                if "retry" in q:
                    error.headers["Retry-After"] = q["retry"]
                return error
            response = await _stream(
                request, state, int(q.get("chunks", "4")), float(q.get("delay", "0"))
            )
            state.finished += 1
            return response
        except (ConnectionError, asyncio.CancelledError):
            state.disconnects += 1
            raise

    return handler


UpstreamFactory = Callable[..., Awaitable[Upstream]]


@pytest.fixture
async def make_upstream() -> AsyncIterator[UpstreamFactory]:
    """``await make_upstream()``: one more upstream, listening unless ``listening=False``."""
    made: list[Upstream] = []

    async def factory(*, listening: bool = True) -> Upstream:
        held = socket.socket()
        held.bind(("127.0.0.1", 0))
        state = Upstream(url=f"http://127.0.0.1:{held.getsockname()[1]}", socket=held)
        made.append(state)
        if listening:
            await state.start()
        return state

    yield factory
    for state in made:
        await state.stop()


@pytest.fixture
async def upstream(make_upstream: UpstreamFactory) -> Upstream:
    return await make_upstream()


BffFactory = Callable[..., Awaitable[BffServer]]


@pytest.fixture
async def start_bff() -> AsyncIterator[BffFactory]:
    """``await start_bff(**config)``: a BFF on a free port with that configuration, closed
    after the test."""
    servers: list[BffServer] = []

    async def factory(**overrides: Any) -> BffServer:
        config = replace(BffConfig(port=0), **overrides)
        server = await start_server(BffApp(config), "127.0.0.1", 0, shutdown_grace_s=0.5)
        servers.append(server)
        return server

    yield factory
    for server in servers:
        await server.close()


@pytest.fixture
def make_bff(upstream: Upstream, start_bff: BffFactory) -> BffFactory:
    """``await make_bff(**config)``: a BFF relaying to ``upstream`` unless ``api_urls`` says
    otherwise."""

    async def factory(**overrides: Any) -> BffServer:
        return await start_bff(**{"api_urls": (upstream.url,), **overrides})

    return factory


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    """A client that reads bodies as the BFF relays them (it never decompresses either)."""
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        yield session
