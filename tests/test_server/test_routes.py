"""404/405, HEAD, request ids, health, readiness, metrics text, and the 503 of an exhausted
pool."""

from __future__ import annotations

import asyncio
import json
import logging
import re

import aiohttp
import pytest

from httpedge.forwarded import parse_networks
from server.app import ExportApi, security_warnings
from server.metrics import Outcome
from server.responses import XLSX_CONTENT_TYPE
from sql.devserver import DevServer
from tests import rawhttp
from tests.polling import apoll
from tests.rawhttp import RawClients
from tests.test_server.conftest import (
    StartApi,
    api_config,
    download,
    held_port,
    parse_metrics,
    port_held,
    url,
    wait_idle,
)


async def test_unknown_path_is_404_json(start_api: StartApi, http: aiohttp.ClientSession) -> None:
    api = await start_api()
    async with http.get(url(api, "/exports/nothing")) as response:
        assert response.status == 404
        body = await response.json()
    assert body == {"error": {"message": "no such resource", "code": "NOT_FOUND"}}


@pytest.mark.parametrize(
    "path", ["/export/nothing", "/export/", "/export/report/x", "/export/Report"]
)
async def test_an_unknown_report_is_404_unknown_report(
    start_api: StartApi, http: aiohttp.ClientSession, path: str
) -> None:
    api = await start_api()
    async with http.get(url(api, path)) as response:
        assert response.status == 404
        body = await response.json()
    assert body["error"]["code"] == "UNKNOWN_REPORT"
    assert "/reports" in body["error"]["message"]


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH"])
@pytest.mark.parametrize("path", ["/export/report", "/healthz", "/readyz", "/metrics"])
async def test_wrong_method_is_405_with_allow(
    start_api: StartApi, http: aiohttp.ClientSession, method: str, path: str
) -> None:
    api = await start_api()
    async with http.request(method, url(api, path)) as response:
        assert response.status == 405
        assert response.headers["Allow"] == "GET, HEAD"
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


# The families the README's /metrics row lists, with their types, and every outcome label.
DOCUMENTED_FAMILIES = {
    "export_requests_total": "counter",
    "export_rows_total": "counter",
    "export_bytes_total": "counter",
    "exports_active": "gauge",
    "export_duration_seconds": "histogram",
    "db_pool_connections": "gauge",
    "process_resident_memory_bytes": "gauge",
    "export_workers": "gauge",
    "export_worker_restarts_total": "counter",
    "export_worker_exports_active": "gauge",
    "export_channel_bytes": "gauge",
}
DOCUMENTED_OUTCOMES = (
    "completed",
    "client_disconnected",
    "db_error",
    "protocol_error",
    "rejected",
    "invalid",
)


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
    assert samples['process_resident_memory_bytes{worker="0"}'] > 10_000_000
    assert samples["export_workers"] == 1
    assert samples["export_worker_restarts_total"] == 0
    assert samples['export_worker_exports_active{worker="0"}'] == 0
    assert samples["export_channel_bytes"] == 0
    buckets = [v for k, v in samples.items() if k.startswith("export_duration_seconds_bucket")]
    assert buckets == sorted(buckets), "histogram buckets are cumulative"


async def test_pool_exhaustion_is_503_with_retry_after(
    devserver: DevServer, start_api: StartApi, raw: RawClients, http: aiohttp.ClientSession
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
    status, headers = await _raw_head(raw, api, "/export/report?rowCount=10")  # the same
    assert (status, headers["retry-after"]) == (503, "3")
    first.cancel()  # the first client gives up: its export is cancelled, the slot comes back
    await wait_idle(api)
    devserver.faults.first_row_delay = 0.0
    async with http.get(url(api, "/export/report?rowCount=10")) as response:
        assert response.status == 200
        await response.read()


async def _raw_head(raw: RawClients, api: ExportApi, target: str) -> tuple[int, dict[str, str]]:
    """HEAD over a raw socket: status and headers, and proof that no body follows them."""
    answer = await raw.exchange(api.port, rawhttp.request("HEAD", target, "Connection: close"))
    return rawhttp.head_answer(answer)


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
async def test_head_answers_wherever_get_does(
    devserver: DevServer,
    start_api: StartApi,
    raw: RawClients,
    http: aiohttp.ClientSession,
    path: str,
) -> None:
    api = await start_api()
    async with http.get(url(api, path)) as response:
        assert response.status == 200
        get_type = response.headers["Content-Type"]
    status, headers = await _raw_head(raw, api, path)
    assert status == 200
    assert headers["content-type"] == get_type
    assert int(headers["content-length"]) > 0  # the length the GET's body would have


async def test_head_on_the_export_answers_its_headers_without_database_work(
    devserver: DevServer, start_api: StartApi, raw: RawClients
) -> None:
    api = await start_api()
    status, headers = await _raw_head(raw, api, "/export/report?rowCount=100")
    assert status == 200
    assert headers["content-type"] == XLSX_CONTENT_TYPE
    assert re.fullmatch(
        r'attachment; filename="report-\d{4}-\d{2}-\d{2}-\d{6}\.xlsx"',
        headers["content-disposition"],
    )
    assert headers["cache-control"] == "no-store"
    assert "content-length" not in headers  # the GET's length is not known before it runs
    assert devserver.stats.connections_total == 0, "no login, no procedure"
    assert api.metrics.active == 0


@pytest.mark.parametrize(
    ("query", "code"),
    [("rowCount=0", "INVALID_ROW_COUNT"), ("rowcount=5", "UNKNOWN_PARAMETER")],
)
async def test_head_on_the_export_answers_the_get_validation_errors(
    devserver: DevServer,
    start_api: StartApi,
    raw: RawClients,
    http: aiohttp.ClientSession,
    query: str,
    code: str,
) -> None:
    api = await start_api()
    async with http.get(url(api, f"/export/report?{query}")) as response:
        assert response.status == 400
        get_body = await response.read()
    assert json.loads(get_body)["error"]["code"] == code
    status, headers = await _raw_head(raw, api, f"/export/report?{query}")
    assert status == 400
    assert headers["content-type"] == "application/json"
    assert int(headers["content-length"]) == len(get_body)
    assert devserver.stats.connections_total == 0


@pytest.mark.parametrize(
    ("given", "kept"),
    [("bff-7f3a.1_x", True), ("has space", False), ("x" * 65, False), ("", False), (None, False)],
)
async def test_a_well_formed_request_id_is_echoed_and_logged_else_one_is_made(
    devserver: DevServer,
    start_api: StartApi,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
    given: str | None,
    kept: bool,
) -> None:
    caplog.set_level(logging.INFO, logger="server")
    api = await start_api()
    headers = {} if given is None else {"X-Request-ID": given}
    async with http.get(url(api, "/export/report?rowCount=10"), headers=headers) as response:
        assert response.status == 200
        await response.read()
        request_id = response.headers["X-Request-ID"]
    if kept:
        assert request_id == given
    else:
        assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    await wait_idle(api)
    await apoll(
        lambda: any(f"request {request_id}" in r.getMessage() for r in _summaries(caplog)),
        what="the summary line",
    )
    started = [r.getMessage() for r in caplog.records if "requested by" in r.getMessage()]
    assert started == [
        f"export 1 (request {request_id}): report report (rowCount) requested by 127.0.0.1"
    ]
    # Every answer carries it, errors included.
    async with http.get(url(api, "/export/report?rowCount=x"), headers=headers) as response:
        assert response.status == 400
        assert (response.headers["X-Request-ID"] == given) is kept


def _summaries(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "server" and " completed: " in r.getMessage()]


@pytest.mark.parametrize(
    ("trusted", "forwarded_for", "logged"),
    [
        ((), "203.0.113.9", "127.0.0.1"),  # no trusted proxy: the header means nothing
        (("127.0.0.1/32",), "203.0.113.9", "203.0.113.9 via 127.0.0.1"),
        # Our proxy appended the address it saw; what the client claimed further left is not
        # believed past the first address that is not a trusted proxy.
        (
            ("127.0.0.0/8", "10.0.0.0/8"),
            "198.51.100.1, 203.0.113.9, 10.1.2.3",
            "203.0.113.9 via 127.0.0.1",
        ),
        (("127.0.0.1",), "not-an-address", "127.0.0.1"),
        (("10.0.0.0/8",), "203.0.113.9", "127.0.0.1"),  # the peer is not a trusted proxy
    ],
)
async def test_the_forwarded_client_is_logged_only_from_a_trusted_proxy(
    devserver: DevServer,
    start_api: StartApi,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
    trusted: tuple[str, ...],
    forwarded_for: str,
    logged: str,
) -> None:
    caplog.set_level(logging.INFO, logger="server")
    api = await start_api(trusted_proxies=parse_networks(",".join(trusted)))
    headers = {"X-Forwarded-For": forwarded_for, "X-Request-ID": "fwd"}
    async with http.get(url(api, "/export/report?rowCount=10"), headers=headers) as response:
        await response.read()
    await wait_idle(api)
    started = [r.getMessage() for r in caplog.records if "requested by" in r.getMessage()]
    assert started == [f"export 1 (request fwd): report report (rowCount) requested by {logged}"]


@pytest.mark.parametrize(
    ("db", "warning"),
    [
        ({"encrypt": "off"}, "not encrypted"),
        ({"encrypt": "on", "trust_server_certificate": True}, "certificate is not verified"),
    ],
)
def test_a_weaker_connection_to_the_database_is_a_warning(
    db: dict[str, object], warning: str
) -> None:
    config = api_config(0, db=db)
    (text,) = security_warnings(config)
    assert warning in text
    assert security_warnings(api_config(0, db={"encrypt": "on"})) == ()
    assert security_warnings(api_config(0, db={"encrypt": "strict"})) == ()


async def test_readyz_shows_the_warnings(start_api: StartApi, http: aiohttp.ClientSession) -> None:
    api = await start_api()  # the tests' dev server has no certificate: encryption off
    async with http.get(url(api, "/readyz")) as response:
        assert response.status == 200
        body = await response.json()
    assert body["status"] == "ready"
    assert body["warnings"] == [
        "the connection to the database is not encrypted (--mssql-encrypt off)"
    ]
