"""A database that sends values its columns' types do not have, over TCP: the dev server streams
a result set of ``dbo.spColumns`` and its fault injection slips one malformed ROW token in (a
date of 9 bytes, a datetime2(3) of 2, an nvarchar of an odd number of bytes, decimals whose
length is not their precision's, text longer than declared). On every row path (compiled,
generated Python, pytds) that is a protocol error, never a plausible wrong cell: before the
first byte a ``502 DATABASE_PROTOCOL_ERROR`` JSON answer, after it a download broken off; the
log names the column and the problem.
"""

from __future__ import annotations

import json
import logging
import struct
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pytds import tds_base

from server import db
from server.app import ExportApi
from server.errors import DatabaseProtocolError, DatabaseUnavailable
from server.metrics import Outcome
from sql.devserver import DevServer
from tdsrows import StreamError
from tests.polling import apoll
from tests.test_server.conftest import StartApi, read_until_aborted, wait_idle
from tests.test_server.readers import is_valid_zip

CATALOG = Path(__file__).parents[1] / "catalogs" / "columns.toml"

ROWS = 2_000
# Where the malformed row goes: first (before the 200), and far enough in that the download
# has started (several packets and chunks out).
FIRST, LATER = 0, 1_500

# name: (the column's declaration, a good value of it, a malformed value as sent (its length
# prefix included), what the log says about it)
CASES: dict[str, tuple[str, object, bytes, str]] = {
    "a date of 9 bytes": (
        "date",
        "2024-01-02",
        b"\x09\x41\x0b\x00\x00\x00\x00\x00\x00\x00",
        "column 'x' (date): a value of 9 bytes, not 3",
    ),
    "a datetime2(3) of 2 bytes": (
        "datetime2(3)",
        "2024-01-02 03:04:05.678",
        b"\x02\x41\x0b",
        "column 'x' (datetime2(3)): a value of 2 bytes, not 7",
    ),
    "an nvarchar of an odd number of bytes": (
        "nvarchar(10)",
        "abc",
        b"\x05\x00" + "ab".encode("utf-16-le") + b"c",
        "column 'x' (nvarchar): a value of 5 bytes, an odd number (UTF-16 has 2 bytes a unit)",
    ),
    "a decimal of 2 bytes": (
        "decimal(18,4)",
        "1.5",
        b"\x02\x01\x05",
        "column 'x' (decimal): a value of 2 bytes, not the 9 of its precision",
    ),
    "a decimal of 200 bytes": (
        "decimal(18,4)",
        "1.5",
        bytes((200, 1)) + b"\xff" * 199,
        "column 'x' (decimal): a value of 200 bytes, not the 9 of its precision",
    ),
    "an nvarchar longer than declared": (
        "nvarchar(10)",
        "abc",
        b"\x16\x00" + "x".encode("utf-16-le") * 11,
        "column 'x' (nvarchar): a value of 22 bytes, more than the 20 it is declared with",
    ),
    "a varchar longer than declared": (
        "varchar(10)",
        "abc",
        b"\x0b\x00" + b"x" * 11,
        "column 'x' (varchar): a value of 11 bytes, more than the 10 it is declared with",
    ),
}


def spec(declaration: str, value: object) -> str:
    columns = [{"name": "id", "type": "int", "nullable": False}, {"name": "x", "type": declaration}]
    return json.dumps({"columns": columns, "rows": [[1, value]], "repeat": ROWS})


def malformed_row(value: bytes) -> bytes:
    """A ROW token: id (INT4, NOT NULL), then x as given."""
    return b"\xd1" + struct.pack("<i", -1) + value


def export(http: aiohttp.ClientSession, api: ExportApi, text: str) -> Any:
    return http.get(f"http://127.0.0.1:{api.port}/export/columns", params={"spec": text})


@pytest.mark.parametrize("case", list(CASES))
async def test_a_malformed_value_is_a_protocol_error_on_every_row_path(
    devserver: DevServer,
    start_api: StartApi,
    http: aiohttp.ClientSession,
    row_path: dict[str, bool],
    case: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="server")
    api = await start_api(catalog=str(CATALOG), **row_path)
    declaration, good, value, detail = CASES[case]
    text = spec(declaration, good)
    # Without the fault the same result set downloads whole.
    async with export(http, api, text) as response:
        assert response.status == 200
        assert is_valid_zip(await response.read())
    devserver.faults.row_bytes = malformed_row(value)
    for after in (FIRST, LATER):
        devserver.faults.row_bytes_after_rows = after
        logged = len(caplog.records)
        async with export(http, api, text) as response:
            if after == FIRST:
                assert response.status == 502
                assert "Retry-After" not in response.headers
                assert await response.json() == {
                    "error": {
                        "code": "DATABASE_PROTOCOL_ERROR",
                        "message": "the database sent data the TDS protocol does not allow",
                    }
                }
            else:
                assert response.status == 200
                body, aborted = await read_until_aborted(response)
                assert aborted
                assert not is_valid_zip(body)
        line = f"protocol error from the database: {detail}"
        await apoll(
            lambda line=line, logged=logged: any(
                r.getMessage().endswith(line) for r in caplog.records[logged:]
            ),
            what=f"the log line after {after} rows",
        )
    await wait_idle(api)
    # Counted under their own outcome, not as database errors.
    await apoll(
        lambda: api.metrics.requests(Outcome.PROTOCOL_ERROR) == 2,
        what="two protocol_error outcomes",
    )
    assert api.metrics.requests(Outcome.DB_ERROR) == 0
    # The connections that carried a malformed row were closed, not pooled: a clean one serves
    # the next download.
    devserver.faults.row_bytes_after_rows = None
    async with export(http, api, text) as response:
        assert response.status == 200
        assert is_valid_zip(await response.read())


def test_only_bytes_that_break_the_protocol_are_protocol_errors() -> None:
    """A row path's StreamError and pytds' own complaint about the bytes (an unknown token)
    are protocol errors; a closed connection, a socket error or the server's ERROR are not."""
    malformed = StreamError("column 'x' (date): a value of 9 bytes, not 3")
    unknown_token = tds_base.InterfaceError("Invalid TDS marker: 7(7)")
    for exc in (malformed, unknown_token):
        error = db.translate(exc)
        assert type(error) is DatabaseProtocolError
        assert (error.status, error.code) == (502, "DATABASE_PROTOCOL_ERROR")
        assert error.detail == str(exc)
        assert str(exc) not in error.message  # the column and the problem are the log's
    closed = [
        tds_base.ClosedConnectionError(),
        tds_base.InterfaceError("Connection closed"),
        tds_base.InterfaceError("Cursor is closed"),
        ConnectionResetError(),
    ]
    for exc in closed:
        assert type(db.translate(exc)) is DatabaseUnavailable, exc
    assert not db.is_protocol_error(tds_base.OperationalError("deadlock"))
