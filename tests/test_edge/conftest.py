"""Both services behind the shared edge server, started in the test's own event loop, for the
tests that must hold for each of them (requests that are not HTTP, timeouts, the cap)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest

from bff.app import BffApp, start_server
from bff.config import BffConfig
from httpedge.listener import EdgeServer
from server.app import ExportApi
from sql.devserver import DevServer
from tests.test_server.conftest import api_config


@dataclass
class Running:
    name: str
    port: int
    edge: EdgeServer


StartService = Callable[..., Awaitable[Running]]


@pytest.fixture(params=["api", "bff"])
async def start_service(
    request: pytest.FixtureRequest, devserver: DevServer
) -> AsyncIterator[StartService]:
    """``await start_service(header_timeout_s=..., max_connections=...)``: the API (against
    the dev server) or the BFF (against that API), whichever this run of the test is for."""
    stops: list[Callable[[], Awaitable[None]]] = []

    async def start(**limits: Any) -> Running:
        api = ExportApi(api_config(devserver.port, **(limits if request.param == "api" else {})))
        await api.start()
        stops.append(lambda: api.close(grace_s=0.5))
        if request.param == "api":
            assert api.server is not None
            return Running("api", api.port, api.server)
        config = replace(BffConfig(api_urls=(f"http://127.0.0.1:{api.port}",), port=0), **limits)
        bff = await start_server(BffApp(config), "127.0.0.1", 0, shutdown_grace_s=0.5)
        stops.append(bff.close)
        assert bff.app.server is not None
        return Running("bff", bff.port, bff.app.server)

    yield start
    for stop in reversed(stops):
        await stop()
