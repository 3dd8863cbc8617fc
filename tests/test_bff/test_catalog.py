"""``GET``/``HEAD /reports``: the API's report catalog, relayed whole through the balancer with
the downloads' origin and token checks, and none of a download's slot, ticket or metrics."""

from __future__ import annotations

import json
import socket
from typing import Any, cast

import aiohttp
import pytest

from bff.catalog import MAX_CATALOG_BYTES
from bff.errors import UpstreamTooLarge
from bff.proxy import read_bounded
from tests import rawhttp
from tests.polling import apoll
from tests.rawhttp import RawClients
from tests.test_bff.conftest import CATALOG, CHUNK, BffFactory, Upstream, UpstreamFactory

TOKEN = "catalog-T0ken"


def _reports(port: int) -> str:
    return f"http://127.0.0.1:{port}/reports"


async def test_the_catalog_is_the_apis_json_relayed_as_it_is(
    upstream: Upstream, make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    bff = await make_bff()
    headers = {"X-Request-ID": "cat-1", "X-Forwarded-For": "203.0.113.7"}
    async with client.get(_reports(bff.port) + "?cache-buster=1", headers=headers) as response:
        assert response.status == 200
        assert response.content_type == "application/json"
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["X-Request-ID"] == "cat-1"
        assert response.headers["Content-Length"] == str(len(upstream.catalog_body))
        assert "X-Internal-Debug" not in response.headers
        body = await response.read()
    assert body == upstream.catalog_body
    assert json.loads(body) == CATALOG
    [seen] = upstream.requests
    assert (seen.method, seen.raw_path) == ("GET", "/reports")  # no query: it takes none
    assert upstream.headers[0]["X-Request-ID"] == "cat-1"
    assert upstream.headers[0]["X-Forwarded-For"] == "203.0.113.7, 127.0.0.1"


async def test_a_large_catalog_sent_in_chunks_arrives_whole(
    upstream: Upstream, make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    entries = [{"id": f"r-{n}", "description": "x" * 500} for n in range(1000)]
    upstream.catalog_body = json.dumps({"reports": entries}).encode()
    upstream.catalog_chunked = True
    assert 256 * 1024 < len(upstream.catalog_body) < MAX_CATALOG_BYTES
    bff = await make_bff()
    async with client.get(_reports(bff.port)) as response:
        assert response.status == 200
        assert await response.read() == upstream.catalog_body


async def test_head_is_relayed_as_a_head(
    upstream: Upstream, make_bff: BffFactory, raw: RawClients
) -> None:
    bff = await make_bff()
    request = rawhttp.request("HEAD", "/reports", "Connection: close")
    status, headers = rawhttp.head_answer(await raw.exchange(bff.port, request))
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert headers["content-length"] == str(len(upstream.catalog_body))
    assert [(r.method, r.path) for r in upstream.requests] == [("HEAD", "/reports")]


async def test_the_catalog_is_not_a_download(
    upstream: Upstream, make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    """No per-client slot (it is answered while the client's one download slot is taken), no
    ticket claimed, no download metric, no active download on the API."""
    bff = await make_bff(max_downloads_per_client=1)
    base = f"http://127.0.0.1:{bff.port}"
    async with client.post(f"{base}/exports/ticket") as response:
        ticket = (await response.json())["id"]
    url = f"{base}/exports/report?gate=1&chunks=2"
    async with client.get(url) as held:  # holds the client's only download slot
        await held.content.readexactly(len(CHUNK))
        async with client.get(
            _reports(bff.port), headers={"Cookie": f"bff_download={ticket}"}
        ) as r:
            assert r.status == 200
            assert "Set-Cookie" not in r.headers
            await r.read()
        assert bff.app.balancer.targets[0].active == 1  # the held download only
        upstream.release.set()
        await held.read()
    await apoll(lambda: bff.app.metrics.relays_active == 0, what="the download to end")
    metrics = bff.app.metrics
    assert metrics.outcomes.total() == 1  # the held download, nothing for the catalog
    assert metrics.upstream_statuses.total() == 1
    assert metrics.bytes_relayed == 2 * len(CHUNK)
    assert sum(bff.app.balancer.targets[0].downloads.values()) == 1
    # The ticket was not spent on the catalog: a download can still claim it.
    assert bff.app.downloads.claim(ticket) is not None


@pytest.mark.parametrize(
    ("authorization", "challenge"),
    [
        (None, 'Bearer realm="xlsx-export"'),
        ("Bearer wrong", 'Bearer realm="xlsx-export", error="invalid_token"'),
    ],
)
async def test_with_tokens_the_catalog_needs_one(
    upstream: Upstream,
    make_bff: BffFactory,
    client: aiohttp.ClientSession,
    authorization: str | None,
    challenge: str,
) -> None:
    bff = await make_bff(tokens=(TOKEN,))
    headers = {} if authorization is None else {"Authorization": authorization}
    async with client.get(_reports(bff.port), headers=headers) as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == challenge
        assert (await response.json())["error"]["code"] == "UNAUTHORIZED"
    assert upstream.requests == []
    assert bff.app.metrics.outcomes.total() == 0  # not a download refused
    async with client.get(
        _reports(bff.port), headers={"Authorization": f"Bearer {TOKEN}"}
    ) as response:
        assert response.status == 200
        assert await response.json() == CATALOG
    assert "Authorization" not in upstream.headers[-1]  # ours to check, not the API's


async def test_cors_applies_to_the_catalog_as_to_downloads(
    upstream: Upstream, make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    bff = await make_bff(cors_origins=("http://app.example",))
    url = _reports(bff.port)
    async with client.get(url, headers={"Origin": "http://app.example"}) as response:
        assert response.status == 200
        assert response.headers["Access-Control-Allow-Origin"] == "http://app.example"
        assert response.headers["Vary"] == "Origin"
        await response.read()
    async with client.get(url, headers={"Origin": "http://evil.example"}) as response:
        assert response.status == 403
        assert "Access-Control-Allow-Origin" not in response.headers
        assert (await response.json())["error"]["code"] == "ORIGIN_NOT_ALLOWED"
    preflight = {"Origin": "http://app.example", "Access-Control-Request-Method": "GET"}
    async with client.options(url, headers=preflight) as response:
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == "http://app.example"
        assert "Authorization" in response.headers["Access-Control-Allow-Headers"]
    async with client.options(url, headers={**preflight, "Origin": "http://evil.example"}) as r:
        assert r.status == 403
    assert len(upstream.requests) == 1  # only the allowed GET


async def test_an_api_error_is_relayed_with_its_status(
    upstream: Upstream, make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    error = {"error": {"message": "shutting down", "code": "SHUTTING_DOWN"}}
    upstream.catalog_status, upstream.catalog_body = 503, json.dumps(error).encode()
    bff = await make_bff()
    async with client.get(_reports(bff.port)) as response:
        assert response.status == 503
        assert response.headers["Retry-After"] == "3"
        assert await response.json() == error


async def test_no_api_reachable_is_a_502(
    make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    with socket.socket() as held:  # bound, never listening: connections are refused
        held.bind(("127.0.0.1", 0))
        bff = await make_bff(api_urls=(f"http://127.0.0.1:{held.getsockname()[1]}",))
        async with client.get(_reports(bff.port)) as response:
            assert response.status == 502
            assert response.headers["X-Request-ID"]
            body = await response.json()
    assert body["error"]["code"] == "PROXY_ERROR"
    assert bff.app.metrics.outcomes.total() == 0


async def test_the_catalog_goes_to_an_api_that_is_up(
    make_upstream: UpstreamFactory, make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    down, up = await make_upstream(listening=False), await make_upstream()
    bff = await make_bff(api_urls=(down.url, up.url), health_interval_s=3600.0)
    async with client.get(_reports(bff.port)) as response:
        assert response.status == 200
        assert await response.json() == CATALOG
    assert [r.path for r in up.requests] == ["/reports"]


async def test_an_api_too_slow_to_answer_is_a_504(
    upstream: Upstream, make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    upstream.catalog_hang_s = 5.0
    bff = await make_bff(upstream_headers_timeout_s=0.3)
    async with client.get(_reports(bff.port)) as response:
        assert response.status == 504
        assert (await response.json())["error"]["code"] == "PROXY_TIMEOUT"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_catalog_over_the_limit_is_refused_with_a_502(
    upstream: Upstream, make_bff: BffFactory, client: aiohttp.ClientSession, chunked: bool
) -> None:
    upstream.catalog_body = b'{"reports": [' + b" " * MAX_CATALOG_BYTES + b"]}"
    upstream.catalog_chunked = chunked
    bff = await make_bff()
    async with client.get(_reports(bff.port)) as response:
        assert response.status == 502
        body = await response.json()
    assert body["error"]["code"] == "PROXY_ERROR"
    assert "larger" in body["error"]["message"]
    # The refused answer's connection was dropped, not reused: the next request is whole.
    upstream.catalog_body = json.dumps(CATALOG).encode()
    async with client.get(_reports(bff.port)) as response:
        assert response.status == 200
        assert await response.json() == CATALOG


async def test_an_announced_length_over_the_limit_is_refused_before_reading_the_body() -> None:
    class Unread:
        content_length = 11

        @property
        def content(self) -> Any:
            raise AssertionError("the body was read")

    with pytest.raises(UpstreamTooLarge):
        await read_bounded(cast(aiohttp.ClientResponse, Unread()), 10)
