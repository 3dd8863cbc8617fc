"""Result sets the fast path declines, decided per result set, so pytds decodes them; and
result sets whose rows the compiled fetch does not read, so the generated decoder does."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from server.rowsource import row_path
from sql.devserver import run_in_thread
from sql.devserver.columns import Column, spec_json
from tdsrows import FastRows, UnsupportedLayout, scan
from tests.devclient import dev_connect
from tests.extensions import switched_off
from tests.test_tdsrows.support import FETCH_PARAMS, fast_rows, pytds_rows
from xlsx import native

DECLINED = [
    ("varchar(max)", "long text"),
    ("nvarchar(max)", "long text"),
    ("varbinary(max)", "00ff"),
    ("xml", "<a/>"),
    ("text", "old text"),
    ("ntext", "old text"),
    ("image", "00ff"),
    ("sql_variant", {"type": "int", "value": 5}),
    ("datetimeoffset(7)", "2024-01-02 03:04:05.1234567+02:00"),
]


@pytest.fixture(scope="module")
def conn() -> Iterator[Any]:
    with run_in_thread(port=0) as srv:
        connection = dev_connect(srv.port)
        yield connection
        connection.close()


# Decoded by the fast path, but no cell of the compiled scanner holds them.
NOT_SCANNED = [
    ("time(3)", "12:34:56.789"),
    ("datetime", "2024-06-30 23:59:59.997"),
    ("smalldatetime", "2024-06-30 12:34"),
    ("uniqueidentifier", "6F9619FF-8B86-D011-B42D-00C04FC964FF"),
    ("varbinary(10)", "00ff"),
    ("binary(4)", "01020304"),
]


@pytest.mark.parametrize("compiled", FETCH_PARAMS)
@pytest.mark.parametrize(("declaration", "value"), DECLINED, ids=[d for d, _ in DECLINED])
def test_a_column_the_fast_path_does_not_decode_is_named_and_pytds_reads_the_rows(
    conn: Any, declaration: str, value: object, compiled: bool
) -> None:
    spec = spec_json([Column("id", "int"), Column("odd", declaration)], [[1, value], [2, None]])
    with conn.cursor() as cursor:
        cursor.callproc("dbo.spColumns", (spec,))
        with pytest.raises(UnsupportedLayout, match="column 'odd' is "):
            FastRows.open(cursor, compiled=compiled)
        rows = cursor.fetchall()  # nothing was read: pytds goes on as if no one had looked
        while cursor.nextset():
            pass
    assert [r[0] for r in rows] == [1, 2]
    assert rows[1][1] is None


@pytest.mark.parametrize(("declaration", "value"), NOT_SCANNED, ids=[d for d, _ in NOT_SCANNED])
def test_a_column_the_scanner_does_not_read_leaves_fetch_to_the_generated_decoder(
    conn: Any, declaration: str, value: object
) -> None:
    columns = [Column("id", "int"), Column("name", "nvarchar(10)"), Column("odd", declaration)]
    spec = spec_json(columns, [[1, "é", value], [2, None, None]])
    rows, fast = fast_rows(conn, spec, compiled=True)
    assert not fast.compiled_fetch
    assert rows == pytds_rows(conn, spec)
    assert rows[1] == (2, None, None)


def test_a_session_with_another_row_strategy_is_declined(server_port: int) -> None:
    import pytds

    connection = dev_connect(server_port, row_strategy=pytds.dict_row_strategy)
    try:
        with connection.cursor() as cursor:
            cursor.callproc("dbo.spGenerateData", (3,))
            with pytest.raises(UnsupportedLayout, match="row strategy"):
                FastRows.open(cursor)
            assert len(cursor.fetchall()) == 3
    finally:
        connection.close()


@pytest.fixture
def server_port() -> Iterator[int]:
    with run_in_thread(port=0) as srv:
        yield srv.port


def test_a_closed_cursor_is_declined(conn: Any) -> None:
    cursor = conn.cursor()
    cursor.close()
    with pytest.raises(UnsupportedLayout, match="closed"):
        FastRows.open(cursor)


def test_the_compiled_row_code_is_built_unless_switched_off() -> None:
    """In every run but the one without extensions (make test-no-extensions), both modules are
    there; in that one neither is, and the export says its rows take the Python code."""
    off = switched_off()
    assert scan.AVAILABLE is native.AVAILABLE is (not off)
    path = row_path(fast=True, compiled=True)
    assert path.endswith("(the compiled row code is not built)") is off
