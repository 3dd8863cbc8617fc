"""The happy path: a real download, read back by openpyxl and python-calamine."""

from __future__ import annotations

import asyncio
import datetime
import io
import logging
import pathlib
import re
import zipfile

import aiohttp
import pytest

from tests.polling import apoll
from tests.test_server.conftest import EXPORT_MODE_IDS, EXPORT_MODES, StartApi, url, wait_idle
from tests.test_server.readers import (
    HEADER,
    calamine_sheets,
    data_rows,
    expected_calamine,
    expected_openpyxl,
    openpyxl_sheets,
)

# Exports in a worker process and on threads of the HTTP process alike.
pytestmark = pytest.mark.parametrize("export_workers", EXPORT_MODES, ids=EXPORT_MODE_IDS)

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


async def test_download_reads_back_in_both_readers(
    start_api: StartApi, http: aiohttp.ClientSession
) -> None:
    api = await start_api()
    rows = 2_345  # more than two fetch batches; includes every NULL slot (period 16)
    async with http.get(url(api, f"/export/report?rowCount={rows}")) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == XLSX_TYPE
        disposition = re.fullmatch(
            r'attachment; filename="report-(\d{4}-\d{2}-\d{2}-\d{6})\.xlsx"',
            response.headers["Content-Disposition"],
        )
        assert disposition, response.headers["Content-Disposition"]
        stamped = datetime.datetime.strptime(disposition[1], "%Y-%m-%d-%H%M%S")
        now = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
        assert abs(now - stamped) < datetime.timedelta(minutes=5), "the server's UTC clock"
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Transfer-Encoding"] == "chunked"
        body = await response.read()

    got_openpyxl = list(data_rows(openpyxl_sheets(body)))
    assert len(got_openpyxl) == rows
    for n, row in enumerate(got_openpyxl, start=1):
        assert row == expected_openpyxl(n), f"openpyxl row {n}"
    got_calamine = list(data_rows(calamine_sheets(body)))
    assert len(got_calamine) == rows
    for n, row in enumerate(got_calamine, start=1):
        assert row == expected_calamine(n), f"calamine row {n}"
    await wait_idle(api)
    assert api.pool.idle == 1  # the connection went back clean


async def test_memory_is_logged_every_n_rows_and_each_export_is_summarised(
    start_api: StartApi, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="server")
    # Batches of 300 do not divide 1,000: the samples still land on exact multiples.
    api = await start_api(memory_log_every_rows=1_000, fetch_batch_rows=300)
    async with http.get(url(api, "/export/report?rowCount=3100")) as response:
        assert response.status == 200
        body = await response.read()
    await wait_idle(api)
    await apoll(
        lambda: any("completed" in r.getMessage() for r in caplog.records if r.name == "server"),
        what="the summary line",
    )
    memory = [
        re.sub(r"RSS [\d.]+ MiB", "RSS n MiB", r.getMessage())
        for r in caplog.records
        if r.name == "server.export" and " memory " in r.getMessage()
    ]
    assert memory == [
        "export 1 memory at start: RSS n MiB",
        "export 1 memory after 1,000 rows: RSS n MiB",
        "export 1 memory after 2,000 rows: RSS n MiB",
        "export 1 memory after 3,000 rows: RSS n MiB",
        "export 1 memory at end: RSS n MiB",
    ]
    (summary,) = [
        r.getMessage()
        for r in caplog.records
        if r.name == "server" and r.getMessage().startswith("export 1 completed")
    ]
    match = re.fullmatch(
        r"export 1 completed: report report, 3100 rows \(1 sheet\(s\)\), (?P<bytes>\d+) bytes "
        r"in [\d.]+ s "
        r"\([\d]+ rows/s\), first byte [\d.]+ s, RSS start [\d.]+ MiB peak [\d.]+ MiB; "
        r"database: completed, connection kept; request [0-9a-f]{32}",
        summary,
    )
    assert match, summary
    assert int(match["bytes"]) == len(body)


async def test_rows_roll_over_to_more_sheets_with_the_header_on_each(
    start_api: StartApi, http: aiohttp.ClientSession
) -> None:
    api = await start_api(max_rows_per_sheet=1_000)  # 999 data rows + header per sheet
    async with http.get(url(api, "/export/report?rowCount=2500")) as response:
        assert response.status == 200
        body = await response.read()
    sheets = calamine_sheets(body)
    assert [name for name, _ in sheets] == ["Report", "Report (2)", "Report (3)"]
    assert [len(rows) for _, rows in sheets] == [1_000, 1_000, 503]
    got = list(data_rows(sheets))
    assert got == [expected_calamine(n) for n in range(1, 2_501)]
    assert list(data_rows(openpyxl_sheets(body))) == [expected_openpyxl(n) for n in range(1, 2_501)]


async def test_default_row_count_applies_without_the_parameter(
    start_api: StartApi, http: aiohttp.ClientSession
) -> None:
    api = await start_api(default_row_count=37)
    async with http.get(url(api, "/export/report")) as response:
        assert response.status == 200
        body = await response.read()
    assert len(list(data_rows(calamine_sheets(body)))) == 37


async def test_curl_downloads_a_complete_file(start_api: StartApi, tmp_path: pathlib.Path) -> None:
    """An independent HTTP client: ``curl -f`` exits 0 and the file opens."""
    api = await start_api()
    target = tmp_path / "report.xlsx"
    process = await asyncio.create_subprocess_exec(
        "curl", "-sSfo", target, url(api, "/export/report?rowCount=1500")
    )
    assert await process.wait() == 0
    body = target.read_bytes()
    assert len(list(data_rows(calamine_sheets(body)))) == 1_500


async def test_concurrent_exports_share_the_pool(
    start_api: StartApi, http: aiohttp.ClientSession
) -> None:
    api = await start_api(pool_max=3)

    async def fetch(rows: int) -> int:
        async with http.get(url(api, f"/export/report?rowCount={rows}")) as response:
            assert response.status == 200
            return len(list(data_rows(calamine_sheets(await response.read()))))

    assert await asyncio.gather(fetch(800), fetch(1200), fetch(1600)) == [800, 1200, 1600]
    await wait_idle(api)
    assert api.pool.idle <= 3


@pytest.mark.slow
async def test_full_sheet_boundary_1048576_rows(
    start_api: StartApi, http: aiohttp.ClientSession
) -> None:
    """The maximum rowCount: 1,048,575 data rows fill sheet one, the last row goes to sheet two."""
    api = await start_api(first_row_timeout_s=60.0, row_timeout_s=60.0)
    async with http.get(
        url(api, "/export/report?rowCount=1048576"), timeout=aiohttp.ClientTimeout(total=900)
    ) as response:
        assert response.status == 200
        body = await response.read()
    sheets = calamine_sheets(body)
    assert [name for name, _ in sheets] == ["Report", "Report (2)"]
    assert [len(rows) for _, rows in sheets] == [1_048_576, 2]
    assert sheets[0][1][0] == HEADER
    assert sheets[1][1][0] == HEADER
    assert sheets[0][1][1] == expected_calamine(1)
    assert sheets[0][1][-1] == expected_calamine(1_048_575)
    assert sheets[1][1][1] == expected_calamine(1_048_576)


async def test_every_row_path_writes_the_same_sheets(
    start_api: StartApi, http: aiohttp.ClientSession
) -> None:
    """The compiled row code, the generated Python code and pytds' own rows: one workbook."""
    sheets = []
    for overrides in ({}, {"compiled_rows": False}, {"fast_rows": False}):
        api = await start_api(max_rows_per_sheet=1_000, **overrides)
        async with http.get(url(api, "/export/report?rowCount=2345")) as response:
            assert response.status == 200
            body = await response.read()
        with zipfile.ZipFile(io.BytesIO(body)) as archive:
            names = sorted(n for n in archive.namelist() if n.startswith("xl/worksheets/"))
            assert len(names) == 3
            sheets.append([archive.read(n) for n in names])
        await api.close()
    assert sheets[0] == sheets[1] == sheets[2]
