"""A real HTTP upstream for the proxy tests, and a factory for BFFs pointed at it.

The upstream is an aiohttp low-level server on a real port that plays the API's part in
whatever way a test needs: stream slowly, stop half-way, hang before headers, answer JSON
errors. It records what it received and whether its client (the BFF) went away.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from aiohttp import web

from bff.app import BffApp, BffServer, start_server
from bff.config import BffConfig

CHUNK = b"x" * 1024
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


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


def make_handler(state: Upstream) -> Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]:
    async def handler(request: web.BaseRequest) -> web.StreamResponse:
        state.requests.append(request)
        state.headers.append(dict(request.headers))
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
                body = {"error": {"message": q.get("message", "bad"), "code": q.get("code", "X")}}
                response = web.Response(
                    status=int(q["status"]), text=json.dumps(body), content_type="application/json"
                )
                if "retry" in q:
                    response.headers["Retry-After"] = q["retry"]
                return response
            response = await _stream(
                request, state, int(q.get("chunks", "4")), float(q.get("delay", "0"))
            )
            state.finished += 1
            return response
        except (ConnectionError, asyncio.CancelledError):
            state.disconnects += 1
            raise

    return handler


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    state = Upstream()
    server = web.Server(make_handler(state), handler_cancellation=True)
    runner = web.ServerRunner(server, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    state.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield state
    await runner.cleanup()


BffFactory = Callable[..., Awaitable[BffServer]]


@pytest.fixture
async def make_bff(upstream: Upstream) -> AsyncIterator[BffFactory]:
    servers: list[BffServer] = []

    async def factory(**overrides: Any) -> BffServer:
        config = replace(BffConfig(api_url=upstream.url, port=0), **overrides)
        server = await start_server(BffApp(config), "127.0.0.1", 0, shutdown_grace_s=0.5)
        servers.append(server)
        return server

    yield factory
    for server in servers:
        await server.close()
