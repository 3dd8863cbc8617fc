"""The relay against a real upstream HTTP server: streaming, headers, errors, disconnects."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.polling import apoll
from tests.test_bff.conftest import CHUNK, XLSX_TYPE, BffFactory, Upstream


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        yield session


def _assert_quiet(caplog: pytest.LogCaptureFixture) -> None:
    """A broken transfer is an expected event: logged as an outcome, never as a traceback."""
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors == [], [r.getMessage() for r in errors]


def _url(server_port: int, query: str) -> str:
    return f"http://127.0.0.1:{server_port}/exports/report?{query}"


async def test_first_bytes_arrive_before_the_upstream_finishes(
    upstream: Upstream, make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    bff = await make_bff()
    async with client.get(_url(bff.port, "rowCount=5&gate=1&chunks=4")) as response:
        assert response.status == 200
        first = await response.content.readexactly(len(CHUNK))
        assert first == CHUNK
        # The upstream is still parked before its second chunk: nothing was buffered whole.
        assert upstream.finished == 0
        upstream.release.set()
        rest = await response.read()
    assert len(first) + len(rest) == 4 * len(CHUNK)
    await apoll(lambda: upstream.finished == 1, what="the upstream response to finish")


async def test_relays_the_right_headers_and_no_hop_by_hop_ones(
    upstream: Upstream, make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    bff = await make_bff()
    async with client.get(_url(bff.port, "rowCount=5")) as response:
        body = await response.read()
        headers = response.headers
    assert response.status == 200
    assert len(body) == 4 * len(CHUNK)
    assert headers["Content-Type"] == XLSX_TYPE
    assert headers["Content-Disposition"] == 'attachment; filename="report.xlsx"'
    assert headers["Cache-Control"] == "no-store"
    assert headers["Transfer-Encoding"] == "chunked"  # our own hop, not the upstream's
    for name in ("X-Internal-Debug", "Keep-Alive", "Proxy-Authenticate", "Trailer"):
        assert name not in headers
    assert "Content-Length" not in headers


async def test_path_is_rewritten_and_the_query_passed_through_untouched(
    upstream: Upstream, make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    bff = await make_bff()
    raw_query = "rowCount=0012&rowCount=%2B3&note=a%20b&chunks=1"
    async with client.get(aiohttp.client.URL(_url(bff.port, raw_query), encoded=True)) as response:
        await response.read()
    seen = upstream.requests[-1]
    assert seen.path == "/export/report"
    assert seen.raw_path == "/export/report?" + raw_query
    assert upstream.headers[-1]["Accept-Encoding"] == "identity"


@pytest.mark.parametrize(
    ("status", "code", "extra"),
    [(400, "INVALID_ROW_COUNT", ""), (503, "DATABASE_UNAVAILABLE", "&retry=7"), (500, "DB", "")],
)
async def test_error_answers_are_relayed_with_their_bodies(
    upstream: Upstream,
    make_bff: BffFactory,
    client: aiohttp.ClientSession,
    status: int,
    code: str,
    extra: str,
) -> None:
    bff = await make_bff()
    query = f"status={status}&code={code}&message=nope{extra}"
    async with client.get(_url(bff.port, query)) as response:
        body = await response.json()
        assert response.status == status
        assert response.content_type == "application/json"
        if extra:
            assert response.headers["Retry-After"] == "7"
    assert body == {"error": {"message": "nope", "code": code}}


@pytest.mark.parametrize(
    ("given", "kept"),
    [("abc-123_x.y", True), ("has space", False), ("x" * 65, False), ("", False), (None, False)],
)
async def test_request_id_is_accepted_when_well_formed_and_passed_both_ways(
    upstream: Upstream,
    make_bff: BffFactory,
    client: aiohttp.ClientSession,
    given: str | None,
    kept: bool,
) -> None:
    bff = await make_bff()
    headers = {} if given is None else {"X-Request-ID": given}
    async with client.get(_url(bff.port, "chunks=1"), headers=headers) as response:
        await response.read()
        returned = response.headers["X-Request-ID"]
    assert upstream.headers[-1]["X-Request-ID"] == returned
    if kept:
        assert returned == given
    else:
        assert returned != given
        assert len(returned) == 32
        int(returned, 16)


async def test_unreachable_upstream_is_a_502_json(
    make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    # A port bound but never listening, held for the whole test: connections are refused and
    # no other process can start listening there meanwhile.
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        bff = await make_bff(api_url=f"http://127.0.0.1:{held.getsockname()[1]}")
        async with client.get(_url(bff.port, "rowCount=5")) as response:
            assert response.status == 502
            body = await response.json()
    assert body["error"]["code"] == "PROXY_ERROR"
    assert body["error"]["message"]


async def test_upstream_that_cannot_be_connected_to_in_time_is_a_502_not_a_504(
    make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    """A connect that hangs (a host that drops packets) means the API is unreachable, not slow."""
    # A listener whose accept queue (backlog 0: one connection) is full and never drained: the
    # kernel drops further SYNs, so connecting hangs as with a firewalled or vanished host.
    with socket.socket() as listener, socket.socket() as filler:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        filler.connect(listener.getsockname())
        bff = await make_bff(
            api_url=f"http://127.0.0.1:{listener.getsockname()[1]}",
            upstream_connect_timeout_s=0.3,
        )
        async with client.get(_url(bff.port, "rowCount=5")) as response:
            assert response.status == 502
            body = await response.json()
    assert body["error"]["code"] == "PROXY_ERROR"
    assert bff.app.metrics.outcomes["proxy_error"] == 1


async def test_upstream_too_slow_with_headers_is_a_504_json(
    upstream: Upstream, make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    bff = await make_bff(upstream_headers_timeout_s=0.3)
    async with client.get(_url(bff.port, "hang=5")) as response:
        assert response.status == 504
        body = await response.json()
    assert body["error"]["code"] == "PROXY_TIMEOUT"
    # The upstream request was given up, not left running.
    await apoll(lambda: upstream.disconnects == 1, what="the upstream request to be closed")


async def test_upstream_abort_mid_body_aborts_our_response(
    upstream: Upstream, make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    bff = await make_bff()
    async with client.get(_url(bff.port, "chunks=8&abort=1")) as response:
        assert response.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()


async def test_upstream_abort_never_sends_the_final_chunk(
    upstream: Upstream, make_bff: BffFactory, caplog: pytest.LogCaptureFixture
) -> None:
    bff = await make_bff()
    reader, writer = await asyncio.open_connection("127.0.0.1", bff.port)
    writer.write(b"GET /exports/report?chunks=8&abort=1 HTTP/1.1\r\nHost: t\r\n\r\n")
    received = await asyncio.wait_for(reader.read(), timeout=10)  # until the BFF closes
    writer.close()
    assert received.startswith(b"HTTP/1.1 200")
    assert b"\r\n\r\n" in received
    assert not received.endswith(b"0\r\n\r\n")
    await apoll(
        lambda: bff.app.metrics.outcomes["upstream_aborted"] == 1,
        what="the upstream abort to be counted",
    )
    _assert_quiet(caplog)


_opened: list[asyncio.StreamWriter] = []


async def test_an_http_1_0_client_gets_the_body_until_close(
    upstream: Upstream, make_bff: BffFactory
) -> None:
    bff = await make_bff()
    reader, writer = await asyncio.open_connection("127.0.0.1", bff.port)
    _opened.append(writer)
    writer.write(b"GET /exports/report?chunks=3 HTTP/1.0\r\n\r\n")
    received = await asyncio.wait_for(reader.read(), timeout=10)
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200")
    assert b"Transfer-Encoding" not in head
    assert body == 3 * CHUNK


async def _raw_request(port: int, target: str) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """A bare socket client, so a test can stop reading or vanish exactly when it wants."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    _opened.append(writer)
    writer.write(f"GET {target} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
    await writer.drain()
    return reader, writer


@pytest.fixture(autouse=True)
async def _close_raw_clients() -> AsyncIterator[None]:
    """Raw clients are dropped even when a test fails half-way (no unclosed-socket warnings)."""
    yield
    while _opened:
        writer = _opened.pop()
        writer.transport.abort()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def test_client_drop_mid_body_closes_the_upstream_connection(
    upstream: Upstream, make_bff: BffFactory, caplog: pytest.LogCaptureFixture
) -> None:
    bff = await make_bff()
    reader, writer = await _raw_request(bff.port, "/exports/report?chunks=100000&delay=0.01")
    await reader.readuntil(b"\r\n\r\n")
    await reader.readexactly(len(CHUNK))
    writer.transport.abort()
    await apoll(lambda: upstream.disconnects == 1, what="the upstream request to be closed")
    assert upstream.finished == 0
    await apoll(
        lambda: bff.app.metrics.outcomes["client_disconnected"] == 1,
        what="the client's disconnect to be counted",
    )
    await apoll(lambda: bff.app.metrics.relays_active == 0, what="no relay left active")
    _assert_quiet(caplog)


async def test_client_drop_before_headers_closes_the_upstream_connection(
    upstream: Upstream, make_bff: BffFactory
) -> None:
    bff = await make_bff()
    _, writer = await _raw_request(bff.port, "/exports/report?hang=30")
    await apoll(lambda: len(upstream.requests) == 1, what="the request to reach the upstream")
    writer.transport.abort()
    await apoll(lambda: upstream.disconnects == 1, what="the upstream request to be closed")


async def test_a_client_that_stops_reading_stops_the_upstream(
    upstream: Upstream, make_bff: BffFactory
) -> None:
    bff = await make_bff()
    reader, writer = await _raw_request(bff.port, "/exports/report?chunks=1000000")
    await reader.readuntil(b"\r\n\r\n")
    # We read nothing more: socket buffers fill, the BFF's write waits, it stops reading the
    # upstream, and the upstream's own write blocks.
    await apoll(upstream.blocked, within=30, what="the upstream's writes to block")
    held = upstream.bytes_sent
    # Kernel buffers on loopback (autotuned up to a few MiB each way) plus at most a few chunks
    # in the BFF; 1 GB would stream through if nothing pushed back.
    assert held < 32 * 1024 * 1024
    # Reading again lets the upstream move on.
    for _ in range(64):
        await reader.read(65536)
    await apoll(lambda: upstream.bytes_sent > held, what="the upstream to send more")
    writer.transport.abort()
    await apoll(lambda: upstream.disconnects == 1, what="the upstream request to be closed")


async def test_a_client_that_accepts_nothing_for_the_write_timeout_is_cut_off(
    upstream: Upstream, make_bff: BffFactory, caplog: pytest.LogCaptureFixture
) -> None:
    bff = await make_bff(client_write_timeout_s=0.5, max_downloads_per_client=1)
    reader, writer = await _raw_request(bff.port, "/exports/report?chunks=1000000")
    try:
        await reader.readuntil(b"\r\n\r\n")
        await apoll(
            lambda: upstream.disconnects == 1, within=30, what="the upstream request to be closed"
        )
        assert bff.app.metrics.outcomes["client_stalled"] == 1
        # Its per-client slot is free again.
        await apoll(lambda: bff.app.metrics.relays_active == 0, what="no relay left active")
        _assert_quiet(caplog)
    finally:
        writer.transport.abort()


async def test_metrics_count_relays_bytes_and_outcomes(
    upstream: Upstream, make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    bff = await make_bff()
    metrics_url = f"http://127.0.0.1:{bff.port}/metrics"
    async with client.get(_url(bff.port, "gate=1&chunks=3")) as response:
        await response.content.readexactly(len(CHUNK))
        async with client.get(metrics_url) as m:
            during = await m.text()
        upstream.release.set()
        await response.read()
    async with client.get(_url(bff.port, "status=400")) as response:
        await response.read()
    async with client.get(metrics_url) as m:
        assert m.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        after = await m.text()
    assert "bff_relays_active 1\n" in during
    assert "bff_relays_active 0\n" in after
    assert 'bff_downloads_total{outcome="completed"} 2\n' in after
    assert 'bff_downloads_total{outcome="client_disconnected"} 0\n' in after
    assert 'bff_upstream_responses_total{status_class="4xx"} 1\n' in after
    relayed = next(x for x in after.splitlines() if x.startswith("bff_bytes_relayed_total"))
    error_body_size = len(json.dumps({"error": {"message": "bad", "code": "X"}}))
    assert int(relayed.split()[1]) == 3 * len(CHUNK) + error_body_size
    assert "process_resident_memory_bytes " in after


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", "/nope", 404, "NOT_FOUND"),
        ("GET", "/exports/reports", 404, "NOT_FOUND"),
        ("POST", "/exports/report", 405, "METHOD_NOT_ALLOWED"),
        ("DELETE", "/", 405, "METHOD_NOT_ALLOWED"),
        ("OPTIONS", "/exports/report", 405, "METHOD_NOT_ALLOWED"),  # CORS off: no preflight
    ],
)
async def test_unknown_paths_and_methods_are_json_errors(
    upstream: Upstream,
    make_bff: BffFactory,
    client: aiohttp.ClientSession,
    method: str,
    path: str,
    status: int,
    code: str,
) -> None:
    bff = await make_bff()
    async with client.request(method, f"http://127.0.0.1:{bff.port}{path}") as response:
        assert response.status == status
        body = await response.json()
        if status == 405:
            assert response.headers["Allow"] == "GET"
    assert body["error"]["code"] == code
    assert upstream.requests == []


async def test_healthz(make_bff: BffFactory, client: aiohttp.ClientSession) -> None:
    bff = await make_bff()
    async with client.get(f"http://127.0.0.1:{bff.port}/healthz") as response:
        assert response.status == 200
        assert await response.json() == {"status": "ok"}
