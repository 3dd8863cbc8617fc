"""Export API fixtures: the API in the test's event loop, talking to the dev server over TCP."""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import aiohttp
import pytest

from server.app import ExportApi
from server.config import ApiConfig, DbSettings
from sql.devserver import DEV_PASSWORD, DevServer
from tests.polling import apoll, poll

StartApi = Callable[..., Awaitable[ExportApi]]

# Small pool and short timeouts: tests wait for conditions, and short limits keep them quick.
# Budgets that only a broken server should exhaust (login, cancel acknowledgement) stay roomy:
# on a loaded 2-core CI machine the dev server may not be scheduled for a second or more.
TEST_DEFAULTS: dict[str, Any] = {
    "port": 0,
    "pool_min": 1,
    "pool_max": 4,
    "first_row_timeout_s": 10.0,
    "row_timeout_s": 10.0,
    "client_write_timeout_s": 30.0,
    "cancel_timeout_s": 10.0,
    "poll_interval_s": 0.05,
    "memory_log_every_rows": 0,
    "shutdown_grace_s": 2.0,
    # Exports in a worker process, as in production; tests that are about several workers, or
    # about the in-process mode, ask for their own count.
    "workers": 1,
}


def api_config(db_port: int, **overrides: Any) -> ApiConfig:
    db_overrides = overrides.pop("db", {})
    db_settings = {"port": db_port, "password": DEV_PASSWORD, "login_timeout_s": 10.0}
    db = DbSettings(**{**db_settings, **db_overrides})
    return dataclasses.replace(ApiConfig(db=db), **{**TEST_DEFAULTS, **overrides})


@pytest.fixture
async def start_api(devserver: DevServer) -> AsyncIterator[StartApi]:
    """``await start_api(**config_overrides)``: a started ExportApi against ``devserver``."""
    started: list[ExportApi] = []

    async def start(**overrides: Any) -> ExportApi:
        db_port = overrides.pop("db_port", devserver.port)
        api = ExportApi(api_config(db_port, **overrides))
        await api.start()
        started.append(api)
        return api

    yield start
    for api in started:
        await api.close(grace_s=0.5)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


def url(api: ExportApi, path: str) -> str:
    return f"http://127.0.0.1:{api.port}{path}"


async def download(
    http: aiohttp.ClientSession, api: ExportApi, rows: int, *, status: int = 200
) -> bytes:
    """``GET /export/report?rowCount=rows``: the whole body, after checking the status."""
    async with http.get(url(api, f"/export/report?rowCount={rows}")) as response:
        assert response.status == status
        return await response.read()


async def wait_idle(api: ExportApi) -> None:
    """Every export over and every pooled connection given back."""
    await apoll(
        lambda: api.active_exports == 0 and api.pool.in_use == 0,
        what="exports to end and the pool's in-use count to return to 0",
    )


@contextlib.contextmanager
def port_held(port: int = 0, *, deadline_s: float = 10.0) -> Iterator[socket.socket]:
    """A socket bound to ``port`` (0: any free one) and never listening, for the block's duration:
    connections to that port are refused for sure, and no other process can take it. (A port
    probed free and then released can be taken by anyone before the test uses it.)

    SO_REUSEADDR, because a server that just stopped on this port leaves connections in
    TIME_WAIT there; the kernel still never hands this port out to another ``bind(0)``."""
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        poll(lambda: _bound(holder, port), within=deadline_s, what=f"port {port} to be free")
        yield holder


def _bound(sock: socket.socket, port: int) -> bool:
    """Bind ``sock`` to ``port`` on loopback; False while another socket still has it."""
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        return False
    return True


def held_port(holder: socket.socket) -> int:
    return int(holder.getsockname()[1])
