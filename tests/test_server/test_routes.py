"""404/405, health, readiness, metrics text, and the 503 of an exhausted pool."""

from __future__ import annotations

import asyncio
import re

import aiohttp
import pytest

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


async def test_unknown_path_is_404_json(start_api: StartApi, http: aiohttp.ClientSession) -> None:
    api = await start_api()
    async with http.get(url(api, "/export/nothing")) as response:
        assert response.status == 404
        body = await response.json()
    assert body == {"error": {"message": "no such resource", "code": "NOT_FOUND"}}


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("path", ["/export/report", "/healthz", "/readyz", "/metrics"])
async def test_wrong_method_is_405_with_allow(
    start_api: StartApi, http: aiohttp.ClientSession, method: str, path: str
) -> None:
    api = await start_api()
    async with http.request(method, url(api, path)) as response:
        assert response.status == 405
        assert response.headers["Allow"] == "GET"
        body = await response.json()
    assert body["error"]["code"] == "METHOD_NOT_ALLOWED"


async def test_healthz_needs_no_database(start_api: StartApi, http: aiohttp.ClientSession) -> None:
    with port_held() as holder:  # bound, never listening: connections are refused
        api = await start_api(db_port=held_port(holder))
        async with http.get(url(api, "/healthz")) as response:
            assert response.status == 200
            assert await response.json() == {"status": "ok"}


async def test_readyz_logs_in_and_keeps_the_connection(
    devserver: DevServer, start_api: StartApi, http: aiohttp.ClientSession
) -> None:
    api = await start_api()
    async with http.get(url(api, "/readyz")) as response:
        assert response.status == 200
    async with http.get(url(api, "/readyz")) as response:
        assert response.status == 200
    assert devserver.stats.connections_total == 1  # the second check reused the first login
    assert api.pool.idle == 1


async def test_idle_connections_above_the_minimum_close_without_traffic(
    devserver: DevServer, start_api: StartApi, http: aiohttp.ClientSession
) -> None:
    devserver.faults.first_row_delay = 60.0  # the three exports overlap: three connections
    api = await start_api(pool_min=1, pool_max=3, pool_idle_timeout_s=0.3)
    exports = [asyncio.create_task(download(http, api, 100)) for _ in range(3)]
    await apoll(lambda: devserver.stats.requests == 3, what="three exports' RPCs")
    for export in exports:
        export.cancel()  # the clients go: the queries are cancelled, the connections kept
    await asyncio.gather(*exports, return_exceptions=True)
    await wait_idle(api)
    assert devserver.stats.connections_total == 3
    await apoll(lambda: devserver.stats.attentions == 3, what="three attentions")
    # Nothing else happens: the periodic expiry alone closes the two above the minimum.
    await apoll(lambda: devserver.stats.connections_open == 1, what="two connections closed")
    assert api.pool.idle == 1


# One sample line of the text format: name, optional {labels}, value.
SAMPLE = re.compile(
    r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[a-z_]+="[^"]*"(?:,[a-z_]+="[^"]*")*)\})?'
    r" (?P<value>[-+]?(?:\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\+Inf))$"
)


def parse_metrics(text: str) -> tuple[dict[str, float], dict[str, str]]:
    """Strict parse of the exposition format: every line is HELP, TYPE or a valid sample.
    Returns the samples and each family's type."""
    assert text.endswith("\n")
    samples: dict[str, float] = {}
    typed: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge", "histogram")
            assert name not in typed, f"two TYPE lines for {name}"
            typed[name] = kind
            continue
        match = SAMPLE.match(line)
        assert match, f"not a valid sample line: {line!r}"
        name = match["name"]
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in typed or family in typed, f"{name} has no TYPE line before it"
        key = f"{name}{{{match['labels']}}}" if match["labels"] else name
        assert key not in samples, f"duplicate sample {key}"
        samples[key] = float(match["value"])
    return samples, typed


# The families the README's /metrics row lists, with their types, and every outcome label.
DOCUMENTED_FAMILIES = {
    "export_requests_total": "counter",
    "export_rows_total": "counter",
    "export_bytes_total": "counter",
    "exports_active": "gauge",
    "export_duration_seconds": "histogram",
    "db_pool_connections": "gauge",
    "process_resident_memory_bytes": "gauge",
}
DOCUMENTED_OUTCOMES = ("completed", "client_disconnected", "db_error", "rejected", "invalid")


async def test_metrics_text_parses_and_counts_exports(
    devserver: DevServer, start_api: StartApi, http: aiohttp.ClientSession
) -> None:
    api = await start_api()
    async with http.get(url(api, "/export/report?rowCount=1200")) as response:
        body = await response.read()
    async with http.get(url(api, "/export/report?rowCount=nope")) as response:
        assert response.status == 400
    await wait_idle(api)
    async with http.get(url(api, "/metrics")) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        samples, types = parse_metrics(await response.text())
    assert {name: types.get(name) for name in DOCUMENTED_FAMILIES} == DOCUMENTED_FAMILIES
    for outcome in DOCUMENTED_OUTCOMES:
        assert f'export_requests_total{{outcome="{outcome}"}}' in samples, outcome
    assert samples['export_requests_total{outcome="completed"}'] == 1
    assert samples['export_requests_total{outcome="invalid"}'] == 1
    assert samples['export_requests_total{outcome="client_disconnected"}'] == 0
    assert samples["export_rows_total"] == 1200
    assert samples["export_bytes_total"] == len(body)
    assert samples["exports_active"] == 0
    assert samples["export_duration_seconds_count"] == 1
    assert samples['export_duration_seconds_bucket{le="+Inf"}'] == 1
    assert samples['db_pool_connections{state="idle"}'] == 1
    assert samples['db_pool_connections{state="in_use"}'] == 0
    assert samples["process_resident_memory_bytes"] > 10_000_000
    buckets = [v for k, v in samples.items() if k.startswith("export_duration_seconds_bucket")]
    assert buckets == sorted(buckets), "histogram buckets are cumulative"


async def test_pool_exhaustion_is_503_with_retry_after(
    devserver: DevServer, start_api: StartApi, http: aiohttp.ClientSession
) -> None:
    devserver.faults.first_row_delay = 60.0  # the first export holds the only connection
    api = await start_api(pool_max=1, retry_after_s=3)
    first = asyncio.create_task(http.get(url(api, "/export/report?rowCount=10")))
    await apoll(lambda: devserver.stats.requests == 1, what="the first export's RPC")
    async with http.get(url(api, "/export/report?rowCount=10")) as response:
        assert response.status == 503
        assert response.headers["Retry-After"] == "3"
        body = await response.json()
    assert body["error"]["code"] == "TOO_MANY_EXPORTS"
    assert api.metrics.requests(Outcome.REJECTED) == 1
    first.cancel()  # the first client gives up: its export is cancelled, the slot comes back
    await wait_idle(api)
    devserver.faults.first_row_delay = 0.0
    async with http.get(url(api, "/export/report?rowCount=10")) as response:
        assert response.status == 200
        await response.read()
