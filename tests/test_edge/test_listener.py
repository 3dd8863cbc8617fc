"""The edge both services share, over raw TCP: requests that are not HTTP get the JSON error
shape, connections that never send their headers are closed, the connection cap refuses and
counts. Each test runs against the API and against the BFF (``start_service``).

These also pin the aiohttp behaviour the edge relies on (its ``handle_error`` hook, its
keep-alive timer, the limit its line-length error reports): an aiohttp upgrade that changes
any of them fails here."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from httpedge.forwarded import parse_networks
from httpedge.listener import (
    MAX_HEADER_FIELD_BYTES,
    MAX_HEADERS,
    MAX_URL_BYTES,
    SERVER_NAME,
    EdgeLimits,
    EdgeServer,
)
from tests import rawhttp
from tests.polling import apoll
from tests.rawhttp import RawClients
from tests.test_edge.conftest import Running, StartService


def _get(target: bytes, *headers: bytes) -> bytes:
    return rawhttp.request("GET", target, *headers)


LONG_URL = b"/export/report?rowCount=" + b"9" * 100_000
NOT_HTTP = {
    "url over the limit": (_get(LONG_URL), 414, "URI_TOO_LONG", b"999"),
    "header over the limit": (
        _get(b"/healthz", b"X-Padding: " + b"a" * 9_000),
        431,
        "HEADER_FIELDS_TOO_LARGE",
        b"aaa",
    ),
    "too many headers": (
        _get(b"/healthz", *(b"X-Many-%d: 1" % i for i in range(MAX_HEADERS + 1))),
        431,
        "HEADER_FIELDS_TOO_LARGE",
        b"X-Many",
    ),
    "raw non-ASCII in the query": (
        _get(b"/export/report?rowCount=\xff\xfe"),
        400,
        "BAD_REQUEST",
        b"rowCount",
    ),
    "TLS on the HTTP port": (
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",
        400,
        "BAD_REQUEST",
        b"",
    ),
    "not a request line": (b"HELLO\r\n\r\n", 400, "BAD_REQUEST", b"HELLO"),
}


@pytest.mark.parametrize("case", NOT_HTTP)
async def test_a_request_that_is_not_http_gets_the_json_error_shape(
    start_service: StartService, raw: RawClients, case: str
) -> None:
    request, status, code, echo = NOT_HTTP[case]
    service = await start_service()
    status_line, headers, body = rawhttp.split_answer(await raw.exchange(service.port, request))
    assert re.fullmatch(rf"HTTP/1\.1 {status} [A-Za-z -]+", status_line), status_line
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert re.fullmatch(r"[0-9a-f]{32}", headers["x-request-id"]), "every answer has an id"
    assert headers["server"] == SERVER_NAME
    assert int(headers["content-length"]) == len(body)
    parsed = json.loads(body)
    assert set(parsed) == {"error"}
    assert parsed["error"]["code"] == code
    message = parsed["error"]["message"]
    assert message.endswith(".")
    # Nothing the client sent comes back, and no internal names.
    if echo:
        assert echo not in body
    for leak in ("bytearray", "b'", "Error", "aiohttp"):
        assert leak not in message, leak


@pytest.mark.parametrize(
    "request_line",
    [b"GET /healthz HTTP/2.0", b"GET /healthz HTTP/0.9", b"GET /healthz"],
    ids=["HTTP/2.0", "HTTP/0.9", "HTTP/0.9 without a version"],
)
async def test_other_http_versions_get_505_in_http_1_1(
    start_service: StartService, raw: RawClients, request_line: bytes
) -> None:
    service = await start_service()
    answer = await raw.exchange(service.port, request_line + b"\r\nX-Request-ID: v-1\r\n\r\n")
    status_line, headers, body = rawhttp.split_answer(answer)
    assert status_line == "HTTP/1.1 505 HTTP Version Not Supported"
    assert headers["connection"] == "close"
    assert headers["x-request-id"] == "v-1"
    assert json.loads(body)["error"]["code"] == "HTTP_VERSION_NOT_SUPPORTED"


async def test_connect_is_a_405_with_allow(start_service: StartService, raw: RawClients) -> None:
    service = await start_service()
    request = b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"
    status_line, headers, body = rawhttp.split_answer(await raw.exchange(service.port, request))
    assert status_line == "HTTP/1.1 405 Method Not Allowed"
    assert headers["allow"] == ("GET, HEAD" if service.name == "api" else "GET, HEAD, POST")
    assert headers["connection"] == "close"
    assert re.fullmatch(r"[0-9a-f]{32}", headers["x-request-id"])
    assert json.loads(body)["error"]["code"] == "METHOD_NOT_ALLOWED"


async def test_the_server_header_names_the_product_only(
    start_service: StartService, raw: RawClients
) -> None:
    service = await start_service()
    for path in (b"/healthz", b"/no-such-path"):
        answer = await raw.exchange(service.port, _get(path, b"Connection: close"))
        _, headers, _ = rawhttp.split_answer(answer)
        assert headers["server"] == SERVER_NAME, path


async def test_the_limits_are_where_the_messages_say(
    start_service: StartService, raw: RawClients
) -> None:
    """A URL and a header value just inside the limits are served; one byte more is not."""
    service = await start_service()
    path = b"/healthz?pad="
    url_fits = path + b"p" * (MAX_URL_BYTES - len(path))
    value_fits = b"h" * MAX_HEADER_FIELD_BYTES
    closing = b"Connection: close"
    for request, status in (
        (_get(url_fits, closing), b"200"),
        (_get(url_fits + b"p", closing), b"414"),
        (_get(b"/healthz", b"X-Padding: " + value_fits, closing), b"200"),
        (_get(b"/healthz", b"X-Padding: " + value_fits + b"h", closing), b"431"),
    ):
        answer = await raw.exchange(service.port, request)
        assert answer.startswith(b"HTTP/1.1 " + status), answer[:100]


async def _open_connections(service: Running, count: int) -> None:
    await apoll(
        lambda: service.edge.open_connections == count,
        within=30,
        what=f"{count} open connection(s) on the {service.name}",
    )


async def test_connections_that_never_send_their_headers_are_closed(
    start_service: StartService,
    raw: RawClients,
) -> None:
    service = await start_service(header_timeout_s=0.5)
    silent = [await raw.connect(service.port) for _ in range(5)]
    partial = [await raw.connect(service.port) for _ in range(5)]
    for _, writer in partial:
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Slow: ")  # never finished
    # A generous deadline: the point is that they close at all (without the header timeout
    # aiohttp keeps them for an hour), not how fast on a loaded machine.
    received = await asyncio.wait_for(
        asyncio.gather(*(rawhttp.closed_by_peer(reader) for reader, _ in silent + partial)),
        timeout=30,
    )
    assert received == [b""] * 10  # closed without an answer
    await _open_connections(service, 0)


async def test_a_kept_alive_connection_gets_the_same_time_for_its_next_request(
    start_service: StartService,
    raw: RawClients,
) -> None:
    service = await start_service(header_timeout_s=0.5)
    reader, writer = await raw.connect(service.port)
    writer.write(_get(b"/healthz"))
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
    await reader.readexactly(len(b'{"status":"ok"}'))
    # Idle after its response: closed like a connection that never sent anything.
    assert await asyncio.wait_for(rawhttp.closed_by_peer(reader), timeout=30) == b""


async def test_at_the_cap_a_new_connection_takes_the_place_of_the_longest_idle_one(
    start_service: StartService,
    raw: RawClients,
) -> None:
    service = await start_service(max_connections=3, header_timeout_s=60.0)
    held = [await raw.connect(service.port, source="127.0.0.2") for _ in range(3)]
    await _open_connections(service, 3)
    # A kept-alive connection that answered a request is idle again from its answer on: the
    # oldest idle one is now the second.
    reader, writer = held[0]
    writer.write(_get(b"/healthz"))
    status, _, _ = await rawhttp.read_response(reader)
    assert status == "HTTP/1.1 200 OK"
    answer = await raw.exchange(service.port, _get(b"/metrics", b"Connection: close"))
    assert answer.startswith(b"HTTP/1.1 200"), answer[:100]
    assert await asyncio.wait_for(rawhttp.closed_by_peer(held[1][0]), timeout=30) == b""
    prefix = "http" if service.name == "api" else "bff"
    text = answer.decode()
    assert f"\n{prefix}_connections_evicted_total 1\n" in text
    assert f"\n{prefix}_connections_refused_total 0\n" in text
    assert f"\n{prefix}_connections_open 3\n" in text  # two held and this one
    assert f"\n{prefix}_connections_max 3\n" in text
    assert service.edge.evicted_connections == 1


async def test_one_client_address_cannot_hold_more_than_its_share(
    start_service: StartService,
    raw: RawClients,
) -> None:
    """A flood of idle connections from one address: past its limit they are closed at once,
    and another address is answered as ever."""
    service = await start_service(
        max_connections=20, max_connections_per_client=5, header_timeout_s=60.0
    )
    flood = [await raw.connect(service.port, source="127.0.0.2") for _ in range(12)]
    await _open_connections(service, 5)
    refused = 0
    for reader, _ in flood[5:]:
        assert await asyncio.wait_for(rawhttp.closed_by_peer(reader), timeout=30) == b""
        refused += 1
    assert service.edge.refused_per_client == refused == 7
    answer = await raw.exchange(service.port, _get(b"/metrics", b"Connection: close"))
    assert answer.startswith(b"HTTP/1.1 200"), answer[:100]
    prefix = "http" if service.name == "api" else "bff"
    assert f"\n{prefix}_connections_refused_per_client_total 7\n" in answer.decode()
    # One of the five goes: that address has room for one more.
    flood[0][1].transport.abort()
    await _open_connections(service, 4)
    reader, writer = await raw.connect(service.port, source="127.0.0.2")
    writer.write(_get(b"/healthz"))
    status, _, _ = await rawhttp.read_response(reader)
    assert status == "HTTP/1.1 200 OK"


async def test_exempt_addresses_are_not_held_to_the_per_client_limit(
    start_service: StartService,
    raw: RawClients,
) -> None:
    service = await start_service(
        max_connections=20,
        max_connections_per_client=2,
        connection_limit_exempt=parse_networks("127.0.0.3/32"),
        header_timeout_s=60.0,
    )
    for _ in range(6):
        await raw.connect(service.port, source="127.0.0.3")
    await _open_connections(service, 6)
    assert service.edge.refused_per_client == 0


# -- the edge server alone, with handlers that misbehave --------------------------------------


Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


@pytest.fixture
async def edge_with() -> AsyncIterator[Callable[..., Awaitable[tuple[int, EdgeServer]]]]:
    """``await edge_with(handler, max_connections=10)``: the port of an edge server running
    ``handler``, and the server."""
    listeners: list[asyncio.Server] = []

    async def start(handler: Handler, *, max_connections: int = 10) -> tuple[int, EdgeServer]:
        edge = EdgeServer(
            handler,
            limits=EdgeLimits(header_timeout_s=10.0, max_connections=max_connections),
            logger=logging.getLogger("tests.edge"),
        )
        listener = await asyncio.get_running_loop().create_server(edge, "127.0.0.1", 0)
        listeners.append(listener)
        return int(listener.sockets[0].getsockname()[1]), edge

    yield start
    for listener in listeners:
        listener.close()
        await listener.wait_closed()


async def test_at_the_cap_with_every_connection_busy_a_new_one_is_refused(
    edge_with: Callable[..., Awaitable[tuple[int, EdgeServer]]], raw: RawClients
) -> None:
    """No connection waits for a request, so none can make room: the new one is closed at once,
    and once a request ends its connection is idle and makes room again."""
    release = asyncio.Event()
    started = 0

    async def slow(request: web.BaseRequest) -> web.StreamResponse:
        nonlocal started
        started += 1
        await release.wait()
        return web.Response(text="done")

    port, edge = await edge_with(slow, max_connections=2)
    busy = [await raw.send(port, _get(b"/")) for _ in range(2)]
    await apoll(lambda: started == 2, what="two requests in progress")
    reader, _ = await raw.connect(port)
    assert await asyncio.wait_for(rawhttp.closed_by_peer(reader), timeout=30) == b""
    assert (edge.refused_connections, edge.evicted_connections) == (1, 0)
    release.set()
    for busy_reader, _ in busy:
        status, _, body = await rawhttp.read_response(busy_reader)
        assert (status, body) == ("HTTP/1.1 200 OK", b"done")
    reader, writer = await raw.connect(port)  # room again: an idle one gives way
    writer.write(_get(b"/"))
    status, _, _ = await rawhttp.read_response(reader)
    assert status == "HTTP/1.1 200 OK"
    assert edge.evicted_connections == 1


async def test_an_exception_a_handler_lets_escape_is_a_json_500(
    edge_with: Callable[..., Awaitable[tuple[int, EdgeServer]]],
    raw: RawClients,
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(request: web.BaseRequest) -> web.StreamResponse:
        raise RuntimeError("secret detail")

    port, _ = await edge_with(broken)
    status_line, headers, body = rawhttp.split_answer(await raw.exchange(port, _get(b"/")))
    assert status_line.startswith("HTTP/1.1 500")
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {"error": {"message": "Internal error.", "code": "INTERNAL_ERROR"}}
    assert "secret detail" in caplog.text  # logged with its traceback, never sent


@pytest.mark.parametrize("version", [b"1.0", b"1.1"])
async def test_an_exception_after_the_body_started_breaks_the_transfer(
    edge_with: Callable[..., Awaitable[tuple[int, EdgeServer]]], raw: RawClients, version: bytes
) -> None:
    async def breaks_mid_body(request: web.BaseRequest) -> web.StreamResponse:
        response = web.StreamResponse()
        if request.version >= (1, 1):
            response.enable_chunked_encoding()
        await response.prepare(request)
        await response.write(b"partial")
        raise RuntimeError("broke mid-body")

    port, _ = await edge_with(breaks_mid_body)
    reader, _ = await raw.send(port, rawhttp.request("GET", "/", version=version.decode()))
    received = bytearray()
    try:
        await rawhttp.read_until_closed(reader, received)
    except ConnectionResetError:
        reset = True
    else:
        reset = False
    assert received.startswith(b"HTTP/" + version + b" 200")
    assert b"partial" in received
    if version == b"1.0":
        assert reset, "an HTTP/1.0 body that ends with a FIN looks complete"
    else:
        assert not received.endswith(b"0\r\n\r\n"), "no final chunk: the body is incomplete"
