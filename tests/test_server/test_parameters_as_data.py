"""Parameters reach the procedure as typed RPC parameters, never as SQL text: hostile values sent
through the API to the dev server's ``dbo.spEcho`` (which returns its arguments as a result set)
come back in the workbook's cells unchanged, each with the SQL type the catalog declares."""

from __future__ import annotations

import datetime as dt
import io
from pathlib import Path

import aiohttp
import openpyxl
import pytest
from openpyxl.utils.escape import unescape

from server.catalog import load_catalog
from server.db import rpc_parameters
from server.report import sql_type
from sql.devserver import DevServer
from tests.devclient import dev_connect
from tests.test_server.conftest import StartApi

CATALOG = Path(__file__).parents[1] / "catalogs" / "echo.toml"

HOSTILE_TEXTS = [
    "O'Brien",
    "'; DROP TABLE dbo.Orders; --",
    "x' OR '1'='1",
    "/* comment */ -- and more",
    "a\x00b\x00",  # NUL characters
    "😀 non-BMP 𝄞",
    "\u200fright-to-left\u202e mark",
    "]; EXEC xp_cmdshell 'dir'; --",
    "N'unicode' + CHAR(0)",
    "x" * 3_990 + "'; --'",  # near the 4,000-character limit
    "",
]


@pytest.fixture
async def echo_url(start_api: StartApi) -> str:
    api = await start_api(catalog=str(CATALOG))
    return f"http://127.0.0.1:{api.port}/export/echo"


async def echoed(
    http: aiohttp.ClientSession, url: str, params: dict[str, str]
) -> dict[str, object]:
    """The procedure's one row, by column name, as the workbook holds it."""
    async with http.get(url, params=params) as response:
        assert response.status == 200, await response.text()
        body = await response.read()
    sheet = openpyxl.load_workbook(io.BytesIO(body)).worksheets[0]
    header, row = list(sheet.iter_rows(values_only=True))
    # The writer escapes control characters as Excel does (_x0000_); openpyxl leaves them.
    return {
        str(name): unescape(value) if isinstance(value, str) else value
        for name, value in zip(header, row, strict=True)
    }


@pytest.mark.parametrize("text", HOSTILE_TEXTS, ids=range(len(HOSTILE_TEXTS)))
async def test_hostile_text_arrives_as_data(
    http: aiohttp.ClientSession, echo_url: str, text: str
) -> None:
    got = await echoed(http, echo_url, {"text": text})
    assert got == {"text": text}


async def test_every_type_arrives_typed(
    devserver: DevServer, http: aiohttp.ClientSession, echo_url: str
) -> None:
    got = await echoed(
        http,
        echo_url,
        {
            "count": "-2147483648",
            "big": "9007199254740993",
            "amount": "-12345678901234.5678",
            "flag": "true",
            "day": "2024-02-29",
            "at": "2024-02-29T13:37:42.123456",
            "choice": "; DROP TABLE x --",
        },
    )
    assert got == {
        "count": -2147483648,
        "big": "9007199254740993",  # beyond a double's exact integers: written as text
        "amount": -12345678901234.5678,
        "flag": True,
        "day": dt.datetime(2024, 2, 29),
        "at": dt.datetime(2024, 2, 29, 13, 37, 42, 123000),  # Excel keeps milliseconds
        "choice": "; DROP TABLE x --",
    }


def test_each_parameter_is_sent_as_the_type_the_catalog_declares(
    devserver_thread: DevServer,
) -> None:
    call = (
        load_catalog(CATALOG)
        .reports["echo"]
        .bind({"count": ["1"], "big": ["2"], "amount": ["3"], "text": ["x"], "choice": ["😀"]})
    )
    conn = dev_connect(devserver_thread.port)
    try:
        cursor = conn.cursor()
        cursor.callproc(call.procedure, rpc_parameters(call.bound_values()))
        types = {column[0]: sql_type(column) for column in cursor.description}
        sizes = {column[0]: column[3] for column in cursor.description}
        cursor.fetchall()
    finally:
        conn.close()
    # Small values, yet BIGINT and DECIMAL(18,4) as declared, not what the value would suggest.
    assert types == {
        "text": "NVARCHAR",
        "count": "INT",
        "big": "BIGINT",
        "amount": "DECIMAL(18,4)",
        "choice": "NVARCHAR",
    }
    assert sizes["text"] == 4000  # NVARCHAR(4000): pytds gives sizes in characters
    assert sizes["choice"] == len("; DROP TABLE x --")  # NVARCHAR(the longest enum value)
