"""Bearer auth, the CORS allowlist and the per-client download limit, each on and off."""

from __future__ import annotations

import logging

import aiohttp
import pytest

from tests.polling import apoll
from tests.test_bff.conftest import CHUNK, BffFactory, Upstream

TOKEN = "t0ken-Very-Secret"


def _report(port: int, query: str = "chunks=2") -> str:
    return f"http://127.0.0.1:{port}/exports/report?{query}"


async def test_auth_off_by_default_lets_anyone_download(
    upstream: Upstream, make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    bff = await make_bff()
    async with client.get(_report(bff.port)) as response:
        assert response.status == 200
        assert "WWW-Authenticate" not in response.headers
        await response.read()


@pytest.mark.parametrize(
    ("authorization", "challenge"),
    [
        (None, 'Bearer realm="xlsx-export"'),
        ("Basic dXNlcjpwdw==", 'Bearer realm="xlsx-export"'),
        ("Bearer wrong", 'Bearer realm="xlsx-export", error="invalid_token"'),
        (f"Bearer {TOKEN}x", 'Bearer realm="xlsx-export", error="invalid_token"'),
    ],
)
async def test_auth_on_refuses_missing_or_wrong_tokens_before_the_api(
    upstream: Upstream,
    make_bff: BffFactory,
    client: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
    authorization: str | None,
    challenge: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    bff = await make_bff(tokens=("other-token", TOKEN))
    headers = {} if authorization is None else {"Authorization": authorization}
    async with client.get(_report(bff.port), headers=headers) as response:
        assert response.status == 401
        assert response.headers["WWW-Authenticate"] == challenge
        body = await response.json()
    assert body["error"]["code"] == "UNAUTHORIZED"
    assert upstream.requests == []
    async with client.get(f"http://127.0.0.1:{bff.port}/metrics", headers=headers) as response:
        assert response.status == 401
    assert TOKEN not in caplog.text
    assert "wrong" not in caplog.text


async def test_auth_on_accepts_any_configured_token_and_never_logs_it(
    upstream: Upstream,
    make_bff: BffFactory,
    client: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    bff = await make_bff(tokens=("other-token", TOKEN))
    for token in (TOKEN, "other-token"):
        headers = {"Authorization": f"Bearer {token}"}
        async with client.get(_report(bff.port), headers=headers) as response:
            assert response.status == 200
            assert len(await response.read()) == 2 * len(CHUNK)
    # The token is ours to check, not the API's: it is not passed upstream.
    assert all("Authorization" not in h for h in upstream.headers)
    assert TOKEN not in caplog.text
    assert TOKEN not in repr(bff.app.config)


async def test_cors_off_adds_no_headers_and_refuses_nothing(
    upstream: Upstream, make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    bff = await make_bff()
    headers = {"Origin": "http://elsewhere.example"}
    async with client.get(_report(bff.port), headers=headers) as response:
        assert response.status == 200
        assert "Access-Control-Allow-Origin" not in response.headers
        await response.read()


async def test_cors_on_allows_listed_origins_and_refuses_others_before_the_api(
    upstream: Upstream, make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    bff = await make_bff(cors_origins=("http://app.example",))
    async with client.get(_report(bff.port), headers={"Origin": "http://app.example"}) as r:
        assert r.status == 200
        assert r.headers["Access-Control-Allow-Origin"] == "http://app.example"
        assert r.headers["Vary"] == "Origin"
        assert "Content-Disposition" in r.headers["Access-Control-Expose-Headers"]
        await r.read()
    async with client.get(_report(bff.port), headers={"Origin": "http://evil.example"}) as r:
        assert r.status == 403
        assert "Access-Control-Allow-Origin" not in r.headers
        assert (await r.json())["error"]["code"] == "ORIGIN_NOT_ALLOWED"
    # The BFF's own page (same origin) is never refused.
    own = f"http://127.0.0.1:{bff.port}"
    async with client.get(_report(bff.port), headers={"Origin": own}) as r:
        assert r.status == 200
        await r.read()
    assert len(upstream.requests) == 2


async def test_cors_on_answers_preflights_for_listed_origins_only(
    upstream: Upstream, make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    bff = await make_bff(cors_origins=("http://app.example",))
    preflight = {
        "Origin": "http://app.example",
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization",
    }
    async with client.options(_report(bff.port), headers=preflight) as r:
        assert r.status == 204
        assert r.headers["Access-Control-Allow-Origin"] == "http://app.example"
        assert r.headers["Access-Control-Allow-Methods"] == "GET"
        assert "Authorization" in r.headers["Access-Control-Allow-Headers"]
    async with client.options(
        _report(bff.port), headers={**preflight, "Origin": "http://evil.example"}
    ) as r:
        assert r.status == 403
        assert "Access-Control-Allow-Origin" not in r.headers
    assert upstream.requests == []


async def test_per_client_limit_on_refuses_with_429_and_retry_after(
    upstream: Upstream, make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    bff = await make_bff(max_downloads_per_client=1, retry_after_s=7)
    async with client.get(_report(bff.port, "gate=1&chunks=2")) as first:
        await first.content.readexactly(len(CHUNK))
        async with client.get(_report(bff.port)) as second:
            assert second.status == 429
            assert second.headers["Retry-After"] == "7"
            body = await second.json()
        assert body["error"]["code"] == "TOO_MANY_DOWNLOADS"
        upstream.release.set()
        await first.read()
    # The slot is free again once the first download is over.
    await apoll(lambda: bff.app.metrics.relays_active == 0, what="no relay left active")
    async with client.get(_report(bff.port)) as third:
        assert third.status == 200
        await third.read()
    assert 'bff_downloads_total{outcome="rate_limited"} 1' in bff.app.metrics.render()


async def test_per_client_limit_off_lets_downloads_run_side_by_side(
    upstream: Upstream, make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    bff = await make_bff(max_downloads_per_client=0)
    async with client.get(_report(bff.port, "gate=1&chunks=2")) as first:
        await first.content.readexactly(len(CHUNK))
        async with client.get(_report(bff.port, "gate=1&chunks=2")) as second:
            await second.content.readexactly(len(CHUNK))
            assert second.status == 200
            upstream.release.set()
            await second.read()
        await first.read()


async def test_limit_slot_is_freed_when_the_client_drops(
    upstream: Upstream, make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    bff = await make_bff(max_downloads_per_client=1)
    response = await client.get(_report(bff.port, "chunks=100000&delay=0.01"))
    await response.content.readexactly(len(CHUNK))
    response.close()  # drop the connection mid-body
    await apoll(lambda: upstream.disconnects == 1, what="the upstream request to be closed")
    await apoll(lambda: bff.app.metrics.relays_active == 0, what="no relay left active")
    async with client.get(_report(bff.port)) as again:
        assert again.status == 200
        await again.read()
