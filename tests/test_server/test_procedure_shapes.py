"""Procedures as real servers run them, over TCP against the dev server's ``dbo.spScript``: row
counts before the first result set (SET NOCOUNT OFF), PRINT and RAISERROR WITH NOWAIT messages
before, between and after result sets, a warning right after the last row, a return status and
OUTPUT parameters after the rows, several result sets (one empty), an error in the second result
set, no result set at all, and "first result set only".

Each shape is exported through the API with each row path (compiled, generated Python, pytds),
and every sheet is compared with what the writer makes of pytds' own tuples of the same call.
"""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import aiohttp
import openpyxl

import xlsx
from server import report
from server.app import ExportApi
from server.catalog import ReportCall, load_catalog
from server.db import rpc_parameters
from sql.devserver import DevServer
from tdsrows.pytds_link import next_result_set
from tests.devclient import dev_connect
from tests.test_server.conftest import StartApi, read_until_aborted
from tests.test_server.readers import is_valid_zip

CATALOG = Path(__file__).parents[1] / "catalogs" / "procedure-shapes.toml"

# A result set of every common type with NULLs, repeated past several TDS packets.
MIXED = {
    "columns": [
        {"name": "id", "type": "int"},
        {"name": "big", "type": "bigint"},
        {"name": "amount", "type": "decimal(18,4)"},
        {"name": "name", "type": "nvarchar(40)"},
        {"name": "code", "type": "varchar(10)"},
        {"name": "day", "type": "date"},
        {"name": "at", "type": "datetime2(3)"},
        {"name": "old", "type": "datetime"},
        {"name": "flag", "type": "bit"},
        {"name": "ratio", "type": "float"},
    ],
    "rows": [
        [
            1,
            9007199254740993,
            "12.3400",
            "Zoë 😀",
            "A-1",
            "2024-02-29",
            "2024-02-29 13:37:42.123",
            "2001-02-03 04:05:06.007",
            True,
            0.1,
        ],
        [2, None, "-0.0001", None, "", "0001-01-01", None, None, False, -1e300],
        [
            3,
            -5,
            None,
            "<&>\"'",
            None,
            None,
            "9999-12-31 23:59:59.999",
            "1900-01-01 00:00:00",
            None,
            None,
        ],
    ],
    "repeat": 700,
}
OTHER = {
    "columns": [{"name": "region", "type": "nvarchar(20)"}, {"name": "total", "type": "money"}],
    "rows": [["East", "1.5000"], ["West", "-2.2500"]],
    "repeat": 250,
}
EMPTY = {"columns": [{"name": "nothing", "type": "int"}], "rows": [[1]], "repeat": 0}


def script(*steps: dict[str, Any]) -> str:
    return json.dumps({"steps": list(steps)}, separators=(",", ":"))


def info(text: str, number: int = 50001) -> dict[str, Any]:
    return {"number": number, "class": 10, "text": text}


SHAPES = {
    "counts and messages around one result": script(
        {"count": 5},
        {"print": "filling #work"},
        {"count": 3},
        {"info": info("RAISERROR WITH NOWAIT before the rows")},
        {"result": MIXED, "info_after_rows": info("Null value is eliminated", 8153)},
        {"print": "after the rows"},
        {"return": 3},
        {"output": {"name": "@Total", "type": "int", "value": 5}},
    ),
    "several result sets, one empty": script(
        {"result": MIXED},
        {"print": "between"},
        {"count": 2},
        {"result": EMPTY},
        {"info": info("between again")},
        {"result": OTHER},
        {"print": "after the last"},
    ),
}


def expected_sheets(db_port: int, call: ReportCall) -> list[xlsx.Sheet]:
    """The sheets the writer makes of pytds' own tuples of the call (no fast path). Blocking:
    run it on a thread while the dev server serves on the test's event loop."""
    conn = dev_connect(db_port)
    sheets = []
    try:
        cursor = conn.cursor()
        cursor.callproc(call.procedure, rpc_parameters(call.bound_values()))
        index = 0
        while True:
            spec = call.sheet(index)
            headers, specs = report.layout(cursor.description, None, spec.columns)
            sheets.append(xlsx.Sheet(call.sheet_name(index), headers, cursor.fetchall(), specs))
            index += 1
            if call.first_result_only or not next_result_set(cursor):
                break
    finally:
        conn.close()
    return sheets


def cells(data: bytes) -> dict[str, list[list[tuple[object, str]]]]:
    """Every sheet's cells: (value, number format), by sheet name, in workbook order."""
    book = openpyxl.load_workbook(io.BytesIO(data))
    return {
        sheet.title: [[(c.value, c.number_format) for c in row] for row in sheet.iter_rows()]
        for sheet in book.worksheets
    }


def export(http: aiohttp.ClientSession, api: ExportApi, text: str, report_id: str = "shape") -> Any:
    """``GET /export/{report_id}?script=...`` (an aiohttp request context)."""
    return http.get(f"http://127.0.0.1:{api.port}/export/{report_id}", params={"script": text})


async def exports_cleanly(http: aiohttp.ClientSession, api: ExportApi) -> bool:
    """The connection an export left behind is usable: another export completes."""
    async with export(http, api, SHAPES["several result sets, one empty"]) as response:
        return is_valid_zip(await response.read())


def bind(path: Path, report_id: str, text: str) -> ReportCall:
    return load_catalog(path).reports[report_id].bind({"script": [text]})


async def test_each_shape_gives_the_sheets_of_pytds_tuples_on_every_row_path(
    devserver: DevServer,
    start_api: StartApi,
    http: aiohttp.ClientSession,
    row_path: dict[str, bool],
) -> None:
    api = await start_api(catalog=str(CATALOG), **row_path)
    for name, text in SHAPES.items():
        async with export(http, api, text) as response:
            assert response.status == 200, name
            body = await response.read()
        call = bind(CATALOG, "shape", text)
        expected = b"".join(
            xlsx.stream_workbook(await asyncio.to_thread(expected_sheets, devserver.port, call))
        )
        got, want = cells(body), cells(expected)
        assert list(got) == list(want), name
        for sheet in want:
            assert got[sheet] == want[sheet], f"{name}: sheet {sheet}"
    first, second, third = cells(body)
    assert (first, second, third) == ("First", "Second", "Shape")  # the title names the third
    assert len(cells(body)["Second"]) == 1  # the empty result set: its header alone
    assert cells(body)["First"][1][2] == (12.34, "#,##0.0000")  # the catalog's label and format
    assert cells(body)["First"][0][2][0] == "Amount"


async def test_an_error_in_the_second_result_set_breaks_the_download_off(
    start_api: StartApi,
    http: aiohttp.ClientSession,
    row_path: dict[str, bool],
) -> None:
    api = await start_api(catalog=str(CATALOG), **row_path)
    failing = script(
        {"result": MIXED},
        {"print": "between"},
        {"result": OTHER, "error_after_rows": {"rows": 120, "number": 50000, "text": "boom"}},
        {"result": EMPTY},
    )
    async with export(http, api, failing) as response:
        assert response.status == 200
        body, aborted = await read_until_aborted(response)
    assert aborted
    assert not is_valid_zip(body)
    # The connection was settled: the next export on it works.
    assert await exports_cleanly(http, api)


async def test_no_result_set_at_all_is_a_json_error_before_the_first_byte(
    devserver: DevServer, start_api: StartApi, http: aiohttp.ClientSession
) -> None:
    api = await start_api(catalog=str(CATALOG))
    nothing = script({"count": 2}, {"print": "no rows today"}, {"return": 0})
    async with export(http, api, nothing) as response:
        assert response.status == 500
        error = (await response.json())["error"]
    assert error == {
        "code": "NO_RESULT_SET",
        "message": "the report's procedure returned no result set",
    }
    # The connection went back to the pool clean: the next export reuses it.
    assert await exports_cleanly(http, api)
    assert devserver.stats.connections_total == 1


async def test_first_result_only_writes_one_sheet_and_cancels_the_rest(
    devserver: DevServer,
    start_api: StartApi,
    http: aiohttp.ClientSession,
    row_path: dict[str, bool],
) -> None:
    api = await start_api(catalog=str(CATALOG), **row_path)
    text = SHAPES["several result sets, one empty"]
    async with export(http, api, text, "shape-first") as response:
        assert response.status == 200
        body = await response.read()
    sheets = cells(body)
    assert list(sheets) == ["Shape, first result only"]
    assert len(sheets["Shape, first result only"]) == 1 + 3 * 700
    call = bind(CATALOG, "shape-first", text)
    (expected,) = await asyncio.to_thread(expected_sheets, devserver.port, call)
    want = cells(b"".join(xlsx.stream_workbook([expected])))
    assert sheets == want
