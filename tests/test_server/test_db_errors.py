"""Failures before the first byte of the body: a JSON error with the right status, never a
broken download; /readyz proves a round trip; and the service recovers by itself when the
database comes back."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import re
import socket
import time
from collections.abc import AsyncIterator, Iterator

import aiohttp
import pytest

from server import db
from server.app import ExportApi
from server.metrics import Outcome
from sql.devserver import DevServer
from tests.polling import apoll
from tests.test_server.conftest import (
    StartApi,
    download,
    held_port,
    port_held,
    url,
    wait_idle,
)
from tests.test_server.readers import is_valid_zip


async def _json_error(response: aiohttp.ClientResponse) -> tuple[str, str]:
    assert response.headers["Content-Type"].startswith("application/json")
    body = await response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "code"}
    message = body["error"]["message"]
    assert "Traceback" not in message
    # Words for people: no CamelCase class names (DatabaseStalled, OperationalError, ...).
    assert re.search(r"\b[A-Z][a-z]+[A-Z]\w*", message) is None, message
    return body["error"]["code"], message


async def test_database_down_is_503_with_retry_after(
    start_api: StartApi, http: aiohttp.ClientSession, refused_port: int
) -> None:
    api = await start_api(db_port=refused_port, retry_after_s=7)
    async with http.get(url(api, "/export/report?rowCount=10")) as response:
        assert response.status == 503
        assert response.headers["Retry-After"] == "7"
        code, _ = await _json_error(response)
    assert code == "DATABASE_UNAVAILABLE"
    async with http.get(url(api, "/readyz")) as response:
        assert response.status == 503
        assert (await _json_error(response))[0] == "DATABASE_UNAVAILABLE"
    await wait_idle(api)
    assert api.metrics.requests(Outcome.DB_ERROR) == 1


async def test_an_unreachable_database_is_named_to_clients_without_address_or_os_text(
    start_api: StartApi,
    http: aiohttp.ClientSession,
    refused_port: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Clients learn that the database cannot be reached, not where it is or what the
    operating system said; the log keeps both for the operator."""
    caplog.set_level(logging.INFO)
    api = await start_api(db_port=refused_port)
    for path in ("/export/report?rowCount=10", "/readyz"):
        async with http.get(url(api, path)) as response:
            assert response.status == 503, path
            code, message = await _json_error(response)
        assert (code, message) == ("DATABASE_UNAVAILABLE", "the database cannot be reached"), path
    logged = "\n".join(r.getMessage() for r in caplog.records)
    for detail in (f"127.0.0.1:{refused_port}", "ConnectionRefusedError", "Connection refused"):
        assert detail in logged, detail
    await wait_idle(api)


def test_a_broken_connection_is_told_in_words_of_our_own() -> None:
    """A socket error mid-stream: the client's words are ours; the OS's go to the log."""
    error = db.translate(ConnectionResetError(errno.ECONNRESET, "Connection reset by peer"))
    assert error.message == "lost the database connection: the connection broke off"
    assert "reset" not in error.message
    assert "Connection reset by peer" in error.for_log


async def test_wrong_password_is_500_without_retry_after_and_leaks_nothing(
    devserver: DevServer, start_api: StartApi, http: aiohttp.ClientSession
) -> None:
    """A server that answers but refuses the login will refuse the retry too: no Retry-After."""
    api = await start_api(db={"password": "not-the-password", "user": "report-reader"})
    for path in ("/export/report?rowCount=10", "/readyz"):
        async with http.get(url(api, path)) as response:
            assert response.status == 500, path
            assert "Retry-After" not in response.headers, path
            code, message = await _json_error(response)
        assert code == "DATABASE_ERROR", path
        assert "refused the login" in message
        assert "18456" in message
        for leak in ("not-the-password", "report-reader", "Login failed", "OperationalError"):
            assert leak not in message, (path, leak)
    assert devserver.stats.logins_failed == 2
    await wait_idle(api)
    assert api.metrics.requests(Outcome.DB_ERROR) == 1


async def test_refused_logins_are_500_until_the_server_accepts_them_again(
    devserver: DevServer, start_api: StartApi, http: aiohttp.ClientSession
) -> None:
    """The dev server's refuse_logins fault sends the login ERROR token (18456) and closes."""
    devserver.faults.refuse_logins = True
    api = await start_api()
    async with http.get(url(api, "/export/report?rowCount=10")) as response:
        assert response.status == 500
        assert "Retry-After" not in response.headers
        assert (await _json_error(response))[0] == "DATABASE_ERROR"
    async with http.get(url(api, "/readyz")) as response:
        assert response.status == 500
    devserver.faults.refuse_logins = False
    async with http.get(url(api, "/readyz")) as response:
        assert response.status == 200
    async with http.get(url(api, "/export/report?rowCount=10")) as response:
        assert response.status == 200
        assert is_valid_zip(await response.read())
    await wait_idle(api)


async def test_missing_procedure_is_500_database_error(
    devserver: DevServer, start_api: StartApi, http: aiohttp.ClientSession
) -> None:
    api = await start_api(procedure="dbo.spDoesNotExist")
    async with http.get(url(api, "/export/report?rowCount=10")) as response:
        assert response.status == 500
        code, message = await _json_error(response)
    assert code == "DATABASE_ERROR"
    assert "2812" in message
    await wait_idle(api)
    assert api.pool.idle == 1, "a server-reported error leaves the connection usable"


async def test_error_before_the_first_row_is_500_not_a_download(
    devserver: DevServer, start_api: StartApi, http: aiohttp.ClientSession
) -> None:
    devserver.faults.error_after_rows = 0
    api = await start_api()
    async with http.get(url(api, "/export/report?rowCount=10")) as response:
        assert response.status == 500
        assert (await _json_error(response))[0] == "DATABASE_ERROR"


async def test_first_row_timeout_is_504_and_cancels_the_query(
    devserver: DevServer, start_api: StartApi, http: aiohttp.ClientSession
) -> None:
    devserver.faults.first_row_delay = 60.0
    api = await start_api(first_row_timeout_s=0.5)
    async with http.get(url(api, "/export/report?rowCount=10")) as response:
        assert response.status == 504
        assert (await _json_error(response))[0] == "DATABASE_TIMEOUT"
    await apoll(lambda: devserver.stats.attentions == 1, what="an attention")
    await wait_idle(api)
    assert api.pool.idle == 1


@pytest.fixture
def refused_port() -> Iterator[int]:
    with port_held() as holder:
        yield held_port(holder)


async def _one_export_then_database_gone(
    start_api: StartApi, http: aiohttp.ClientSession, stack: contextlib.ExitStack
) -> tuple[ExportApi, socket.socket]:
    """An API whose one pooled connection went dead: its database ran an export, then stopped.
    Returns the API and a socket holding the database's port (bound, not listening, until
    ``stack`` closes or :func:`_database_back` takes over), so nothing else takes it meanwhile."""
    first = DevServer(port=0)
    await first.start()
    port = first.port
    api = await start_api(db_port=port)
    await download(http, api, 100)
    await wait_idle(api)
    assert api.pool.idle == 1
    await first.close()
    return api, stack.enter_context(port_held(port))


async def _database_back(holder: socket.socket, *, deadline_s: float = 10.0) -> DevServer:
    """A dev server on the held port: the holder lets go of it right before the server binds."""
    port = held_port(holder)
    holder.close()
    deadline = time.monotonic() + deadline_s
    while True:
        server = DevServer(port=port)
        try:
            await server.start()
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.05)
        else:
            return server


async def test_service_recovers_when_the_database_comes_back(
    start_api: StartApi, http: aiohttp.ClientSession
) -> None:
    with contextlib.ExitStack() as stack:
        api, holder = await _one_export_then_database_gone(start_api, http, stack)
        async with http.get(url(api, "/export/report?rowCount=100")) as response:
            assert response.status == 503
        async with http.get(url(api, "/readyz")) as response:
            assert response.status == 503
        second = await _database_back(holder)  # back on the same address
    try:
        async with http.get(url(api, "/readyz")) as response:
            assert response.status == 200
        assert is_valid_zip(await download(http, api, 100))
    finally:
        await second.close()
    await wait_idle(api)


async def test_dead_pooled_connection_is_replaced_without_an_error(
    start_api: StartApi, http: aiohttp.ClientSession
) -> None:
    """A restart between two exports: the idle connection fails its check and a new one is made."""
    with contextlib.ExitStack() as stack:
        api, holder = await _one_export_then_database_gone(start_api, http, stack)
        second = await _database_back(holder)
    try:
        assert is_valid_zip(await download(http, api, 100))
        assert second.stats.connections_total == 1
    finally:
        await second.close()


class FreezableProxy:
    """A TCP relay to the dev server that can freeze like a stopped database process (``kill
    -STOP``): connections are still accepted by the kernel and what is sent is buffered, but
    nothing is answered or forwarded until :meth:`thaw`."""

    def __init__(self, target_port: int) -> None:
        self._target_port = target_port
        self._thawed = asyncio.Event()
        self._thawed.set()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    def freeze(self) -> None:
        self._thawed.clear()

    def thaw(self) -> None:
        self._thawed.set()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for writer in self._writers:
            writer.transport.abort()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.append(writer)
        await self._thawed.wait()
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self._target_port)
        self._writers.append(up_writer)
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(source, sink))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await source.read(65536):
                await self._thawed.wait()
                sink.write(data)
                await sink.drain()
        sink.transport.abort()


@pytest.fixture
async def proxy(devserver: DevServer) -> AsyncIterator[FreezableProxy]:
    relay = FreezableProxy(devserver.port)
    await relay.start()
    yield relay
    relay.thaw()
    await relay.close()


async def test_readyz_answers_503_within_its_timeout_when_the_database_is_frozen(
    start_api: StartApi, http: aiohttp.ClientSession, proxy: FreezableProxy
) -> None:
    """A frozen database keeps its sockets open: only a round trip shows it is not there.
    The budgets that would answer later (login, cancel: 10 s each) are far above the check's."""
    api = await start_api(db_port=proxy.port, readiness_timeout_s=0.5, retry_after_s=4)
    async with http.get(url(api, "/readyz")) as response:
        assert response.status == 200  # and a connection is now pooled, looking healthy
    proxy.freeze()
    started = time.monotonic()
    answers = await asyncio.gather(*(http.get(url(api, "/readyz")) for _ in range(5)))
    elapsed = time.monotonic() - started
    for response in answers:
        async with response:
            assert response.status == 503
            assert response.headers["Retry-After"] == "4"
            code, message = await _json_error(response)
        assert code == "DATABASE_UNAVAILABLE"
        assert message == "the database did not answer within 0.5 s"
    assert elapsed < 5.0, elapsed
    assert api.pool.in_use <= 1, "the five checks shared one round trip"
    proxy.thaw()
    await _wait_ready(http, api)


async def _wait_ready(http: aiohttp.ClientSession, api: ExportApi) -> None:
    """Poll /readyz until 200 (a check still running when the database came back may fail)."""
    deadline = time.monotonic() + 30
    while True:
        async with http.get(url(api, "/readyz")) as response:
            if response.status == 200:
                return
        assert time.monotonic() < deadline, "never ready again"
        await asyncio.sleep(0.1)


async def test_a_database_frozen_before_the_first_row_is_504_database_timeout(
    start_api: StartApi, http: aiohttp.ClientSession, proxy: FreezableProxy
) -> None:
    """The procedure call reaches a database that stopped: no first row within the first-row
    timeout, and no answer to the cancel either. To the client that is a timeout (504), with
    a message in words."""
    api = await start_api(db_port=proxy.port, first_row_timeout_s=0.5, cancel_timeout_s=0.5)
    assert is_valid_zip(await download(http, api, 10))
    await wait_idle(api)
    assert api.pool.idle == 1  # a pooled connection that looks fine
    proxy.freeze()
    async with http.get(url(api, "/export/report?rowCount=10")) as response:
        assert response.status == 504
        assert "Retry-After" not in response.headers
        code, message = await _json_error(response)
    assert code == "DATABASE_TIMEOUT"
    assert "0.5 s" in message
    await wait_idle(api)
    assert api.pool.idle == 0, "the connection that never answered was discarded"
    proxy.thaw()
    assert is_valid_zip(await download(http, api, 10))


async def test_a_database_that_never_answers_the_login_is_503_in_words(
    start_api: StartApi, http: aiohttp.ClientSession
) -> None:
    """A listener that accepts (the kernel's backlog) and never answers, as a frozen server."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        api = await start_api(
            db_port=listener.getsockname()[1],
            db={"login_timeout_s": 0.5},
            readiness_timeout_s=5.0,
        )
        async with http.get(url(api, "/export/report?rowCount=10")) as response:
            assert response.status == 503
            code, message = await _json_error(response)
        assert code == "DATABASE_UNAVAILABLE"
        assert message.endswith(": the database stopped answering"), message
        async with http.get(url(api, "/readyz")) as response:
            assert response.status == 503
            assert (await _json_error(response))[0] == "DATABASE_UNAVAILABLE"
        await wait_idle(api)
