"""Every report of the API's catalog at ``/exports/<id>``: relayed to ``/export/<id>`` like the
demo report always was (query, HEAD, preflight, tickets, metrics), and ids that cannot be a
report's answered by the BFF alone."""

from __future__ import annotations

import contextlib

import aiohttp
import pytest
from yarl import URL

from bff.metrics import MAX_REPORT_SERIES, OTHER_REPORTS, Metrics
from tests import rawhttp
from tests.rawhttp import RawClients
from tests.test_bff.conftest import CHUNK, XLSX_TYPE, BffFactory, Upstream

SECOND = "sales-by-region"  # a report of the fake API's catalog other than the demo's


def _url(port: int, target: str) -> URL:
    """``target`` (path and query) on the BFF, sent byte for byte as written."""
    return URL(f"http://127.0.0.1:{port}{target}", encoded=True)


async def test_a_second_report_goes_to_its_api_path_with_the_query_untouched(
    upstream: Upstream, make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    bff = await make_bff()
    query = "region=north%20east&from=2024-01-01&from=%2B1&chunks=2"
    async with client.get(_url(bff.port, f"/exports/{SECOND}?{query}")) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == XLSX_TYPE
        assert await response.read() == 2 * CHUNK
    [seen] = upstream.requests
    assert seen.method == "GET"
    assert seen.raw_path == f"/export/{SECOND}?{query}"
    assert bff.app.metrics.outcomes["completed"] == 1


async def test_an_id_the_api_does_not_have_gets_the_apis_own_404(
    upstream: Upstream, make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    """The BFF does not know the catalog: a well-formed id is the API's to judge."""
    bff = await make_bff()
    async with client.get(_url(bff.port, "/exports/no-such-report?x=1")) as response:
        assert response.status == 404
        body = await response.json()
    assert body == {"error": {"message": "No such report.", "code": "UNKNOWN_REPORT"}}
    assert [r.raw_path for r in upstream.requests] == ["/export/no-such-report?x=1"]


async def test_the_longest_id_is_relayed(
    upstream: Upstream, make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    bff = await make_bff()
    longest = "a" + "-" * 62  # 63 characters: the most an id has
    async with client.get(_url(bff.port, f"/exports/{longest}")) as response:
        await response.read()
    assert [r.path for r in upstream.requests] == [f"/export/{longest}"]


@pytest.mark.parametrize(
    "target",
    [
        "/exports/",
        "/exports/Report",
        "/exports/REPORT",
        "/exports/-report",
        "/exports/report_1",
        "/exports/re%20port",
        "/exports/..",
        "/exports/%2e%2e",
        "/exports/../report",
        "/exports/a%2Freport",
        "/exports/report/",
        "/exports/report/extra",
        "/exports//report",
        "/exports/" + "a" * 64,
        "/exports/status",  # the BFF's own words, never a report's id
        "/exports/%73tatus",
    ],
)
@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
async def test_an_id_that_is_not_a_slug_is_a_404_without_asking_the_api(
    upstream: Upstream, make_bff: BffFactory, raw: RawClients, target: str, method: str
) -> None:
    bff = await make_bff(cors_origins=("http://app.example",))
    request = rawhttp.request(
        method,
        target + "?rowCount=5",
        "Connection: close",
        "Origin: http://app.example",
        "Access-Control-Request-Method: GET",
    )
    status_line, headers, body = rawhttp.split_answer(await raw.exchange(bff.port, request))
    assert status_line.split(" ")[1] == "404", status_line
    assert headers["content-type"] == "application/json"
    if method != "HEAD":
        assert b'"code":"UNKNOWN_REPORT"' in body
    assert upstream.requests == []


async def test_head_of_a_second_report_is_relayed_as_a_head(
    upstream: Upstream, make_bff: BffFactory, raw: RawClients
) -> None:
    bff = await make_bff()
    request = rawhttp.request("HEAD", f"/exports/{SECOND}?region=x", "Connection: close")
    status, headers = rawhttp.head_answer(await raw.exchange(bff.port, request))
    assert status == 200
    assert headers["content-type"] == XLSX_TYPE
    assert [(r.method, r.raw_path) for r in upstream.requests] == [
        ("HEAD", f"/export/{SECOND}?region=x")
    ]


async def test_a_preflight_for_a_second_report_is_answered_for_listed_origins_only(
    upstream: Upstream, make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    bff = await make_bff(cors_origins=("http://app.example",))
    preflight = {"Origin": "http://app.example", "Access-Control-Request-Method": "GET"}
    url = _url(bff.port, f"/exports/{SECOND}?region=x")
    async with client.options(url, headers=preflight) as response:
        assert response.status == 204
        assert response.headers["Access-Control-Allow-Origin"] == "http://app.example"
        assert response.headers["Access-Control-Allow-Methods"] == "GET"
    async with client.options(url, headers={**preflight, "Origin": "http://evil.example"}) as r:
        assert r.status == 403
    async with client.get(url, headers={"Origin": "http://evil.example"}) as response:
        assert response.status == 403
    assert upstream.requests == []


async def test_a_ticket_tracks_a_download_of_a_second_report(
    upstream: Upstream, make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    bff = await make_bff()
    base = f"http://127.0.0.1:{bff.port}"
    async with client.post(f"{base}/exports/ticket") as response:
        ticket = (await response.json())["id"]
        assert "Path=/exports/;" in response.headers["Set-Cookie"]
    cookie = {"Cookie": f"bff_download={ticket}"}
    async with client.get(f"{base}/exports/{SECOND}?chunks=3", headers=cookie) as response:
        assert response.headers["X-Request-ID"] == ticket
        assert "bff_download=;" in response.headers["Set-Cookie"]
        await response.read()
    assert upstream.headers[-1]["X-Request-ID"] == ticket
    assert upstream.requests[-1].path == f"/export/{SECOND}"
    async with client.get(f"{base}/exports/status/{ticket}") as response:
        status = await response.json()
    assert (status["state"], status["status"], status["bytes"]) == ("completed", 200, 3 * 1024)


async def _report_samples(client: aiohttp.ClientSession, port: int) -> dict[str, str]:
    async with client.get(f"http://127.0.0.1:{port}/metrics") as response:
        text = await response.text()
    return {
        series: value
        for series, _, value in (line.rpartition(" ") for line in text.splitlines())
        if series.startswith("bff_report_downloads_total{")
    }


async def test_downloads_are_counted_per_report_the_api_answered(
    upstream: Upstream, make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    bff = await make_bff()
    for target in (
        f"/exports/{SECOND}?chunks=1",
        f"/exports/{SECOND}?chunks=1",
        "/exports/report?chunks=8&abort=1",
        "/exports/report?status=400",  # the API's error: no file, not a report's download
        "/exports/made-up-1",  # not in the catalog: the API's 404, and no series
        "/exports/made-up-2",
    ):
        async with client.get(_url(bff.port, target)) as response:
            with contextlib.suppress(aiohttp.ClientPayloadError):  # the aborted one
                await response.read()
    samples = await _report_samples(client, bff.port)
    assert samples[f'bff_report_downloads_total{{report="{SECOND}",outcome="completed"}}'] == "2"
    assert samples['bff_report_downloads_total{report="report",outcome="upstream_aborted"}'] == "1"
    assert samples['bff_report_downloads_total{report="report",outcome="completed"}'] == "0"
    assert not [series for series in samples if "made-up" in series]
    # The existing series go on as before.
    assert bff.app.metrics.outcomes["completed"] == 5


def test_report_series_are_bounded_however_many_ids_the_api_answers() -> None:
    metrics = Metrics()
    for n in range(MAX_REPORT_SERIES + 10):
        metrics.report_outcome(f"report-{n}", "completed")
    metrics.report_outcome("report-0", "completed")  # a report kept apart stays apart
    assert len(metrics.reports) == MAX_REPORT_SERIES + 1
    assert metrics.reports[OTHER_REPORTS]["completed"] == 10
    assert metrics.reports["report-0"]["completed"] == 2
    assert f'report="{OTHER_REPORTS}",outcome="completed"}} 10\n' in metrics.render()
