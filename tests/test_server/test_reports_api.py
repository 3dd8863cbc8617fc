"""The catalog through the export API over HTTP: /reports, /export/{id} with a catalog file,
its sheets and column overrides, the errors before the first byte, the row limit after it,
per-report metrics, and reloading (the method and SIGHUP to a real process)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import signal
import sys
import textwrap
from pathlib import Path

import aiohttp
import openpyxl
import pytest

from server.catalog import builtin_catalog
from sql.devserver import DevServer
from tests.polling import apoll
from tests.test_server.conftest import RunApi, StartApi, read_until_aborted
from tests.test_server.readers import is_valid_zip

CATALOG = """
[[reports]]
id = "numbers"
title = "Numbers: a test / report"
description = "The dev server's generated rows under another name."
procedure = "dbo.spGenerateData"
filename = "numbers"
row_limit = {row_limit}

[[reports.parameters]]
name = "n"
sql_name = "@RowCount"
type = "int"
label = "How many"
min = 1
max = 5000
required = true

[[reports.sheets]]
columns.Id.label = "Row"
columns.ColFloat.number_format = "0.000"
columns.ColInt.width = 33
"""


def write_catalog(path: Path, row_limit: int = 5000) -> Path:
    path.write_text(textwrap.dedent(CATALOG.format(row_limit=row_limit)), encoding="utf-8")
    return path


def url(port: int, path: str) -> str:
    return f"http://127.0.0.1:{port}{path}"


async def test_reports_lists_the_catalog_for_get_and_head(
    start_api: StartApi, http: aiohttp.ClientSession
) -> None:
    api = await start_api()
    async with http.get(url(api.port, "/reports")) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("application/json")
        body = await response.json()
    expected = builtin_catalog().to_json()
    assert body == json.loads(json.dumps(expected))
    assert [r["id"] for r in body["reports"]] == ["report", "sales"]
    async with http.head(url(api.port, "/reports")) as response:
        assert response.status == 200
        assert await response.read() == b""


async def test_a_catalog_file_names_the_sheet_labels_and_formats_and_the_file(
    tmp_path: Path, devserver: DevServer, start_api: StartApi, http: aiohttp.ClientSession
) -> None:
    api = await start_api(catalog=str(write_catalog(tmp_path / "c.toml")))
    async with http.get(url(api.port, "/export/report?rowCount=5")) as response:
        assert response.status == 404  # only the file's reports exist now
        assert (await response.json())["error"]["code"] == "UNKNOWN_REPORT"
    async with http.get(url(api.port, "/export/numbers?n=7")) as response:
        assert response.status == 200
        assert "numbers-" in response.headers["Content-Disposition"]
        body = await response.read()
    book = openpyxl.load_workbook(io.BytesIO(body))
    (sheet,) = book.worksheets
    assert sheet.title == "Numbers  a test   report"  # the title, as a sheet name may hold it
    header = [c.value for c in sheet[1]]
    assert header[:3] == ["Row", "ColInt", "ColBigInt"]  # unlabelled columns keep their names
    assert sheet.max_row == 8
    float_column = header.index("ColFloat") + 1
    assert sheet.cell(2, float_column).number_format == "0.000"
    assert sheet.column_dimensions["B"].width == 33
    assert devserver.stats.requests >= 1


@pytest.mark.parametrize(
    ("query", "status", "code", "message"),
    [
        ("", 400, "MISSING_PARAMETER", "n is required"),
        ("?n=0", 400, "INVALID_PARAMETER", "n must be a whole number from 1 to 5,000"),
        ("?n=5&m=1", 400, "UNKNOWN_PARAMETER", "the accepted parameters are: n"),
    ],
)
async def test_bad_parameters_are_json_errors_with_no_database_work(
    tmp_path: Path,
    devserver: DevServer,
    start_api: StartApi,
    http: aiohttp.ClientSession,
    query: str,
    status: int,
    code: str,
    message: str,
) -> None:
    api = await start_api(catalog=str(write_catalog(tmp_path / "c.toml")))
    for method in (http.get, http.head):
        async with method(url(api.port, f"/export/numbers{query}")) as response:
            assert response.status == status
            if method is http.get:
                error = (await response.json())["error"]
                assert error["code"] == code
                assert message in error["message"]
    assert devserver.stats.connections_total == 0
    text = api.metrics.render(pool_idle=0, pool_in_use=0, resident_memory_bytes=0)
    assert 'export_report_requests_total{report="numbers",outcome="invalid"} 1\n' in text


async def test_more_rows_than_the_row_limit_break_the_download_off(
    tmp_path: Path,
    start_api: StartApi,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="server")
    api = await start_api(catalog=str(write_catalog(tmp_path / "c.toml", row_limit=2500)))
    async with http.get(url(api.port, "/export/numbers?n=2500")) as response:
        assert response.status == 200
        assert is_valid_zip(await response.read())  # exactly the limit is fine
    async with http.get(url(api.port, "/export/numbers?n=2501")) as response:
        assert response.status == 200
        body, aborted = await read_until_aborted(response)
    assert aborted
    assert not is_valid_zip(body)
    await apoll(lambda: "more than 2,500 rows, its row limit" in caplog.text, what="the log")


async def test_per_report_metrics_count_outcomes_and_rows(
    start_api: StartApi, http: aiohttp.ClientSession
) -> None:
    api = await start_api()
    for _ in range(2):
        async with http.get(url(api.port, "/export/report?rowCount=10")) as response:
            await response.read()
    async with http.get(url(api.port, "/export/sales")) as response:
        assert response.status == 400
    await apoll(lambda: api.active_exports == 0, what="the exports to end")
    async with http.get(url(api.port, "/metrics")) as response:
        text = await response.text()
    assert 'export_report_requests_total{report="report",outcome="completed"} 2\n' in text
    assert 'export_report_rows_total{report="report"} 20\n' in text
    assert 'export_report_requests_total{report="sales",outcome="invalid"} 1\n' in text
    assert 'export_requests_total{outcome="completed"} 2\n' in text


async def test_a_reload_takes_a_good_file_and_keeps_the_catalog_for_a_bad_one(
    tmp_path: Path,
    devserver: DevServer,
    start_api: StartApi,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = write_catalog(tmp_path / "c.toml")
    api = await start_api(catalog=str(path))
    # A running export is not affected by a reload that removes its report.
    devserver.faults.row_delay = 0.5
    devserver.faults.row_delay_every = 1000
    async with http.get(url(api.port, "/export/numbers?n=3000")) as running:
        assert running.status == 200
        path.write_text(textwrap.dedent(CATALOG.format(row_limit=10)).replace("numbers", "other"))
        assert api.reload_catalog()
        async with http.get(url(api.port, "/export/numbers?n=5")) as response:
            assert response.status == 404
        body = await running.read()
    assert is_valid_zip(body)
    devserver.faults.row_delay = 0
    path.write_text("[[reports]]\nid = 'broken'\n")
    caplog.set_level(logging.ERROR, logger="server")
    assert not api.reload_catalog()
    assert "catalog not reloaded, keeping the 1 report(s) in use" in caplog.text
    assert "report 'broken'.title: is required" in caplog.text
    async with http.get(url(api.port, "/reports")) as response:
        assert [r["id"] for r in (await response.json())["reports"]] == ["other"]


async def test_sighup_reloads_the_catalog_of_a_running_process(
    tmp_path: Path, run_api: RunApi, http: aiohttp.ClientSession
) -> None:
    path = write_catalog(tmp_path / "c.toml")
    api = await run_api("--catalog", str(path))
    path.write_text(textwrap.dedent(CATALOG.format(row_limit=10)).replace("numbers", "renamed"))
    api.process.send_signal(signal.SIGHUP)
    await apoll(lambda: b"catalog reloaded from" in api.log, what="the reload")
    async with http.get(api.url("/export/renamed?n=3")) as response:
        assert response.status == 200
        assert is_valid_zip(await response.read())
    path.write_text("not toml [")
    api.process.send_signal(signal.SIGHUP)
    await apoll(lambda: b"catalog not reloaded" in api.log, what="the refused reload")
    assert api.process.returncode is None
    async with http.get(api.url("/export/renamed?n=3")) as response:
        assert response.status == 200
        await response.read()


async def test_a_bad_catalog_file_stops_the_start_with_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(textwrap.dedent(CATALOG.format(row_limit=0)))
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server",
        "--catalog",
        str(path),
        env={"MSSQL_PASSWORD": "x", "PATH": "/usr/bin:/bin"},
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert f"{path}: report 'numbers'.row_limit: must be a whole number".encode() in stderr
    assert b"Traceback" not in stderr
