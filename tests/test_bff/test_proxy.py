"""The relay against a real upstream HTTP server: streaming, headers, errors, disconnects."""

from __future__ import annotations

import json
import logging
import socket

import aiohttp
import pytest

from tests import rawhttp
from tests.polling import apoll
from tests.rawhttp import RawClients
from tests.test_bff.conftest import CHUNK, XLSX_TYPE, BffFactory, Upstream


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
        bff = await make_bff(api_urls=(f"http://127.0.0.1:{held.getsockname()[1]}",))
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
            api_urls=(f"http://127.0.0.1:{listener.getsockname()[1]}",),
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
    upstream: Upstream, make_bff: BffFactory, raw: RawClients, caplog: pytest.LogCaptureFixture
) -> None:
    bff = await make_bff()
    # Read until the BFF closes.
    received = await raw.exchange(bff.port, _get("/exports/report?chunks=8&abort=1"))
    assert received.startswith(b"HTTP/1.1 200")
    assert b"\r\n\r\n" in received
    assert not received.endswith(b"0\r\n\r\n")
    await apoll(
        lambda: bff.app.metrics.outcomes["upstream_aborted"] == 1,
        what="the upstream abort to be counted",
    )
    _assert_quiet(caplog)


async def test_an_http_1_0_client_gets_the_body_until_close(
    upstream: Upstream, make_bff: BffFactory, raw: RawClients
) -> None:
    bff = await make_bff()
    received = await raw.exchange(bff.port, _get("/exports/report?chunks=3", "1.0"))
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200")
    assert b"Transfer-Encoding" not in head
    assert body == 3 * CHUNK


def _get(target: str, version: str = "1.1") -> bytes:
    return rawhttp.request("GET", target, version=version)


async def test_client_drop_mid_body_closes_the_upstream_connection(
    upstream: Upstream, make_bff: BffFactory, raw: RawClients, caplog: pytest.LogCaptureFixture
) -> None:
    bff = await make_bff()
    reader, writer = await raw.send(bff.port, _get("/exports/report?chunks=100000&delay=0.01"))
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
    upstream: Upstream, make_bff: BffFactory, raw: RawClients
) -> None:
    bff = await make_bff()
    _, writer = await raw.send(bff.port, _get("/exports/report?hang=30"))
    await apoll(lambda: len(upstream.requests) == 1, what="the request to reach the upstream")
    writer.transport.abort()
    await apoll(lambda: upstream.disconnects == 1, what="the upstream request to be closed")


async def test_a_client_that_stops_reading_stops_the_upstream(
    upstream: Upstream, make_bff: BffFactory, raw: RawClients
) -> None:
    bff = await make_bff()
    reader, writer = await raw.send(bff.port, _get("/exports/report?chunks=1000000"))
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
    upstream: Upstream, make_bff: BffFactory, raw: RawClients, caplog: pytest.LogCaptureFixture
) -> None:
    bff = await make_bff(client_write_timeout_s=0.5, max_downloads_per_client=1)
    reader, writer = await raw.send(bff.port, _get("/exports/report?chunks=1000000"))
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
    ("method", "path", "status", "code", "allow"),
    [
        ("GET", "/nope", 404, "NOT_FOUND", None),
        ("GET", "/exports", 404, "NOT_FOUND", None),
        ("GET", "/report", 404, "NOT_FOUND", None),
        ("GET", "/exports/Report", 404, "UNKNOWN_REPORT", None),
        ("POST", "/exports/report", 405, "METHOD_NOT_ALLOWED", "GET, HEAD"),
        ("POST", "/exports/sales-by-region", 405, "METHOD_NOT_ALLOWED", "GET, HEAD"),
        ("POST", "/reports", 405, "METHOD_NOT_ALLOWED", "GET, HEAD"),
        ("OPTIONS", "/reports", 405, "METHOD_NOT_ALLOWED", "GET, HEAD"),
        ("DELETE", "/", 405, "METHOD_NOT_ALLOWED", "GET, HEAD"),
        # CORS off: no preflight
        ("OPTIONS", "/exports/report", 405, "METHOD_NOT_ALLOWED", "GET, HEAD"),
        ("GET", "/exports/ticket", 405, "METHOD_NOT_ALLOWED", "POST"),
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
    allow: str | None,
) -> None:
    bff = await make_bff()
    async with client.request(method, f"http://127.0.0.1:{bff.port}{path}") as response:
        assert response.status == status
        body = await response.json()
        if status == 405:
            assert response.headers["Allow"] == allow
    assert body["error"]["code"] == code
    assert upstream.requests == []


async def test_healthz(make_bff: BffFactory, client: aiohttp.ClientSession) -> None:
    bff = await make_bff()
    async with client.get(f"http://127.0.0.1:{bff.port}/healthz") as response:
        assert response.status == 200
        assert await response.json() == {"status": "ok"}


async def test_a_404_does_not_repeat_the_path(
    make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    bff = await make_bff()
    async with client.get(f"http://127.0.0.1:{bff.port}/%3Cscript%3Eprobe") as response:
        assert response.status == 404
        text = await response.text()
    assert "probe" not in text
    assert "script" not in text


async def test_an_unexpected_error_is_a_json_500(
    make_bff: BffFactory,
    client: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bff = await make_bff()

    def broken() -> str:
        raise RuntimeError("a bug in the metrics")

    monkeypatch.setattr(bff.app.metrics, "render", broken)
    async with client.get(f"http://127.0.0.1:{bff.port}/metrics") as response:
        assert response.status == 500
        assert response.content_type == "application/json"
        body = await response.json()
    assert body == {"error": {"message": "Internal error.", "code": "INTERNAL_ERROR"}}
    assert "a bug in the metrics" in caplog.text  # the traceback is in the log, not the answer
    # The service goes on.
    async with client.get(f"http://127.0.0.1:{bff.port}/healthz") as response:
        assert response.status == 200


async def test_the_client_address_is_appended_to_x_forwarded_for(
    upstream: Upstream, make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    bff = await make_bff()
    async with client.get(_url(bff.port, "chunks=1")) as response:
        await response.read()
    assert upstream.headers[-1]["X-Forwarded-For"] == "127.0.0.1"
    claimed = {"X-Forwarded-For": "203.0.113.7"}  # whatever a client claims stays on the left
    async with client.get(_url(bff.port, "chunks=1"), headers=claimed) as response:
        await response.read()
    assert upstream.headers[-1]["X-Forwarded-For"] == "203.0.113.7, 127.0.0.1"


async def test_an_http_1_0_client_sees_a_broken_body_as_a_reset(
    upstream: Upstream, make_bff: BffFactory, raw: RawClients, caplog: pytest.LogCaptureFixture
) -> None:
    """An HTTP/1.0 body ends with the connection: a FIN would make the truncated body look
    complete, so the BFF resets the connection when the API breaks off."""
    bff = await make_bff()
    reader, _ = await raw.send(bff.port, _get("/exports/report?chunks=8&abort=1", "1.0"))
    received = bytearray()
    with pytest.raises(ConnectionResetError):
        await rawhttp.read_until_closed(reader, received)
    assert received.startswith(b"HTTP/1.0 200")
    await apoll(
        lambda: bff.app.metrics.outcomes["upstream_aborted"] == 1, what="the aborted relay counted"
    )
    _assert_quiet(caplog)


def _head(target: str, *headers: str) -> bytes:
    return rawhttp.request("HEAD", target, "Connection: close", *headers)


async def test_head_is_relayed_as_a_head_with_the_download_headers_and_no_body(
    upstream: Upstream, make_bff: BffFactory, raw: RawClients
) -> None:
    bff = await make_bff()
    received = await raw.exchange(
        bff.port, _head("/exports/report?rowCount=5", "X-Request-ID: head-1")
    )
    status, headers = rawhttp.head_answer(received)
    assert status == 200
    assert headers["content-type"] == XLSX_TYPE
    assert headers["content-disposition"] == 'attachment; filename="report.xlsx"'
    assert headers["x-request-id"] == "head-1"
    assert "x-internal-debug" not in headers
    assert "transfer-encoding" not in headers
    assert [r.method for r in upstream.requests] == ["HEAD"]
    assert upstream.requests[0].raw_path == "/export/report?rowCount=5"
    assert bff.app.metrics.outcomes["completed"] == 0  # not a download


async def test_head_relays_the_api_error_status_without_its_body(
    upstream: Upstream, make_bff: BffFactory, raw: RawClients
) -> None:
    bff = await make_bff()
    received = await raw.exchange(bff.port, _head("/exports/report?status=400"))
    status, _ = rawhttp.head_answer(received)
    assert status == 400
    assert [r.method for r in upstream.requests] == ["HEAD"]


@pytest.mark.parametrize(
    "path", ["/", "/static/page.js", "/static/page.css", "/healthz", "/metrics"]
)
async def test_head_answers_wherever_get_does(
    make_bff: BffFactory, raw: RawClients, client: aiohttp.ClientSession, path: str
) -> None:
    bff = await make_bff()
    async with client.get(f"http://127.0.0.1:{bff.port}{path}") as response:
        assert response.status == 200
        get_type = response.headers["Content-Type"]
        get_length = len(await response.read())
    received = await raw.exchange(bff.port, _head(path))
    status, headers = rawhttp.head_answer(received)
    assert status == 200
    assert headers["content-type"] == get_type
    if path != "/metrics":  # the metrics text changes between two requests
        assert int(headers["content-length"]) == get_length


async def test_head_on_a_download_status(
    upstream: Upstream, make_bff: BffFactory, raw: RawClients, client: aiohttp.ClientSession
) -> None:
    bff = await make_bff()
    base = f"http://127.0.0.1:{bff.port}"
    async with client.post(f"{base}/exports/ticket") as response:
        ticket = (await response.json())["id"]
    async with client.get(
        _url(bff.port, "chunks=1"), headers={"Cookie": f"bff_download={ticket}"}
    ) as r:
        await r.read()
    status, headers = rawhttp.head_answer(
        await raw.exchange(bff.port, _head(f"/exports/status/{ticket}"))
    )
    assert status == 200
    assert headers["content-type"] == "application/json"
