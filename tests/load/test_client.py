"""The clients against a small HTTP server of the test's own that serves good, damaged and
refused bodies: every behaviour is read as it should be, and a damaged body is never counted
as a completed download."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.load.client import AbortPhase, ClientSettings, Live, Outcome, Result, run_load
from tests.load.expect import Expectation
from tests.load.plan import Behaviour, Request
from tests.load.reports import INVALID_ROW_COUNT, ReportQuery, expectation
from tests.load.test_verify import (
    SALES_FROM,
    SALES_TO,
    break_a_tag,
    rezip,
    sales_workbook,
    without_row,
    workbook,
)

ROWS = 300
QUERY = ReportQuery("report", (("rowCount", str(ROWS)),))
ASKED = QUERY.query_string()
BOOK = workbook(ROWS)
SHORT_BOOK = workbook(ROWS - 1)
FLIPPED = bytearray(BOOK)
FLIPPED[len(BOOK) // 3] ^= 0x10
SALES = ReportQuery("sales", (("from", SALES_FROM.isoformat()), ("to", SALES_TO.isoformat())))
SALES_BOOK = sales_workbook(SALES_FROM, SALES_TO, max_rows_per_sheet=150)
# The summary sheet without its last region: every sheet valid, one short of its rows.
SALES_SHORT = rezip(SALES_BOOK, "xl/worksheets/sheet4.xml", without_row(6))
# The first sheet with one cell's end tag misspelt: rows, counts and zip all as they should be.
SALES_BROKEN_XML = rezip(SALES_BOOK, "xl/worksheets/sheet1.xml", break_a_tag)


async def send(
    request: web.Request, body: bytes, *, abort_at: int | None = None
) -> web.StreamResponse:
    response = web.StreamResponse(headers={"Content-Type": "application/octet-stream"})
    await response.prepare(request)
    for start in range(0, len(body), 4096):
        if abort_at is not None and start >= abort_at:
            assert request.transport is not None
            request.transport.abort()  # no final chunk: a transfer broken off
            return response
        await response.write(body[start : start + 4096])
    await response.write_eof()
    return response


def serving(
    body: bytes, *, abort_at: int | None = None
) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    async def handler(request: web.Request) -> web.StreamResponse:
        return await send(request, body, abort_at=abort_at)

    return handler


async def late_headers(request: web.Request) -> web.StreamResponse:
    await asyncio.sleep(5)
    return await send(request, BOOK)


async def refused(request: web.Request) -> web.Response:
    return web.json_response({"error": {"message": "busy", "code": "TOO_MANY_EXPORTS"}}, status=503)


async def bad_row_count(request: web.Request) -> web.Response:
    return web.json_response(
        {"error": {"message": "rowCount must be digits", "code": "INVALID_ROW_COUNT"}},
        status=400,
    )


ROUTES: dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]] = {
    "/good": serving(BOOK),
    "/truncated": serving(BOOK[:-100]),
    "/flipped": serving(bytes(FLIPPED)),
    "/short": serving(SHORT_BOOK),
    "/broken": serving(BOOK, abort_at=len(BOOK) // 2),
    "/late": late_headers,
    "/refused": refused,
    "/bad": bad_row_count,
    "/sales": serving(SALES_BOOK),
    "/sales-short": serving(SALES_SHORT),
    "/sales-broken-xml": serving(SALES_BROKEN_XML),
}


@pytest.fixture
async def server() -> AsyncIterator[TestServer]:
    app = web.Application()
    for path, handler in ROUTES.items():
        app.router.add_get(path, handler)
    test_server = TestServer(app, host="127.0.0.1")
    await test_server.start_server()
    yield test_server
    await test_server.close()


async def one(
    server: TestServer,
    path: str,
    request: Request | None = None,
    *,
    slow_rate_bps: int = 64 * 1024,
    timeout_s: float = 30.0,
    expected: Expectation | None = None,
    xml_check: bool = True,
) -> Result:
    settings = ClientSettings(
        base_url=str(server.make_url("")),
        path=path,
        slow_rate_bps=slow_rate_bps,
        request_timeout_s=timeout_s,
        xml_check=xml_check,
        expected=expected or expectation(QUERY),
    )
    plan = [request or Request(0, Behaviour.NORMAL, ASKED)]
    results, _ = await run_load(plan, settings, concurrency=1, duration_s=None, live=Live())
    assert len(results) == 1
    return results[0]


async def test_a_good_workbook_is_completed_with_its_rows(server: TestServer) -> None:
    result = await one(server, "/good")
    assert result.outcome is Outcome.COMPLETED, result.detail
    assert (result.rows, result.bytes) == (ROWS, len(BOOK))
    assert result.first_byte_s is not None
    assert result.first_byte_s <= result.duration_s


@pytest.mark.parametrize(
    ("path", "detail"),
    [
        ("/truncated", "truncated"),
        ("/flipped", ""),
        ("/short", f"sheet 'Report': {ROWS - 1} data rows, {ROWS} expected"),
    ],
)
async def test_a_damaged_body_that_ended_normally_is_invalid(
    server: TestServer, path: str, detail: str
) -> None:
    result = await one(server, path)
    assert result.outcome is Outcome.INVALID
    assert detail in result.detail
    assert result.rows == 0


async def test_a_workbook_of_several_sheets_is_checked_sheet_by_sheet(server: TestServer) -> None:
    sales = expectation(SALES)
    request = Request(0, Behaviour.NORMAL, SALES.query_string())
    result = await one(server, "/sales", request, expected=sales)
    assert result.outcome is Outcome.COMPLETED, result.detail
    assert result.rows == sales.data_rows == 400 + 5  # the orders' and the summary's
    short = await one(server, "/sales-short", request, expected=sales)
    assert short.outcome is Outcome.INVALID
    assert short.detail == "sheet 'Summary by region': 4 data rows, 5 expected"
    # The report's workbook is not the sales report's, though both are valid workbooks.
    other = await one(server, "/good", request, expected=sales)
    assert other.outcome is Outcome.INVALID
    assert "expected 'Orders' as sheet 1" in other.detail
    broken = await one(server, "/sales-broken-xml", request, expected=sales)
    assert broken.outcome is Outcome.INVALID
    assert "sheet1.xml is not well-formed XML: mismatched tag" in broken.detail
    unparsed = await one(server, "/sales-broken-xml", request, expected=sales, xml_check=False)
    assert unparsed.outcome is Outcome.COMPLETED


async def test_a_transfer_broken_off_by_the_server_is_broken_not_completed(
    server: TestServer,
) -> None:
    result = await one(server, "/broken")
    assert result.outcome is Outcome.BROKEN
    assert 0 < result.bytes < len(BOOK)


async def test_error_answers_are_grouped_by_status_and_code(server: TestServer) -> None:
    refused_result = await one(server, "/refused")
    assert refused_result.outcome is Outcome.ERROR
    assert refused_result.error_key == "503 TOO_MANY_EXPORTS"
    bad = await one(
        server, "/bad", Request(0, Behaviour.BAD, "rowCount=abc", refusal=INVALID_ROW_COUNT)
    )
    assert bad.outcome is Outcome.REFUSED_AS_EXPECTED
    # A normal download refused as a bad request is an error, not an expected refusal.
    assert (await one(server, "/bad")).outcome is Outcome.ERROR
    # So is a bad request refused with another code than its own.
    other = Request(0, Behaviour.BAD, "from=abc", refusal="INVALID_PARAMETER")
    assert (await one(server, "/bad", other)).outcome is Outcome.ERROR
    # A bad request that is answered with a workbook is an error too.
    accepted = await one(
        server, "/good", Request(0, Behaviour.BAD, "rowCount=abc", refusal=INVALID_ROW_COUNT)
    )
    assert accepted.outcome is Outcome.ERROR
    assert "answered with a body" in accepted.detail


async def test_an_abort_after_bytes_closes_at_that_byte(server: TestServer) -> None:
    result = await one(server, "/good", Request(0, Behaviour.ABORT, ASKED, abort_after_bytes=5000))
    assert result.outcome is Outcome.ABORTED
    assert result.abort_phase is AbortPhase.IN_BODY
    assert result.bytes == 5000


async def test_an_abort_point_past_the_end_is_a_completed_download(server: TestServer) -> None:
    request = Request(0, Behaviour.ABORT, ASKED, abort_after_bytes=len(BOOK) + 1)
    result = await one(server, "/good", request)
    assert result.outcome is Outcome.COMPLETED
    assert result.abort_not_reached


async def test_an_abort_before_the_response_and_a_timeout_are_told_apart(
    server: TestServer,
) -> None:
    early = await one(server, "/late", Request(0, Behaviour.ABORT, ASKED, abort_after_seconds=0.2))
    assert (early.outcome, early.abort_phase) == (Outcome.ABORTED, AbortPhase.BEFORE_HEADERS)
    assert early.duration_s < 4
    timed_out = await one(server, "/late", timeout_s=0.3)
    assert (timed_out.outcome, timed_out.abort_phase) == (
        Outcome.TIMEOUT,
        AbortPhase.BEFORE_HEADERS,
    )


async def test_a_slow_reader_keeps_to_its_rate(server: TestServer) -> None:
    rate = 40 * 1024
    result = await one(server, "/good", Request(0, Behaviour.SLOW, ASKED), slow_rate_bps=rate)
    assert result.outcome is Outcome.COMPLETED
    assert result.first_byte_s is not None
    # It cannot be faster than its rate allows (slower is possible on a loaded machine).
    assert result.duration_s - result.first_byte_s >= (len(BOOK) - rate * 0.1) / rate


async def test_no_request_starts_after_the_duration(server: TestServer) -> None:
    settings = ClientSettings(str(server.make_url("")), "/late", 64 * 1024, 30.0)
    plan = [Request(i, Behaviour.ABORT, ASKED, abort_after_seconds=0.3) for i in range(50)]
    results, wall = await run_load(plan, settings, concurrency=2, duration_s=0.5, live=Live())
    assert 2 <= len(results) <= 6  # two at a time, 0.3 s each, none started after 0.5 s
    assert wall < 2
