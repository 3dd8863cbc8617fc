"""Result sets the fast path declines, decided per result set, so pytds decodes them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sql.devserver import run_in_thread
from sql.devserver.columns import Column, spec_json
from tdsrows import FastRows, UnsupportedLayout
from tests.devclient import dev_connect

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


@pytest.mark.parametrize(("declaration", "value"), DECLINED, ids=[d for d, _ in DECLINED])
def test_a_column_the_fast_path_does_not_decode_is_named_and_pytds_reads_the_rows(
    conn: Any, declaration: str, value: object
) -> None:
    spec = spec_json([Column("id", "int"), Column("odd", declaration)], [[1, value], [2, None]])
    with conn.cursor() as cursor:
        cursor.callproc("dbo.spColumns", (spec,))
        with pytest.raises(UnsupportedLayout, match="column 'odd' is "):
            FastRows.open(cursor)
        rows = cursor.fetchall()  # nothing was read: pytds goes on as if no one had looked
        while cursor.nextset():
            pass
    assert [r[0] for r in rows] == [1, 2]
    assert rows[1][1] is None


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
