"""``dbo.spColumns``: a spec it cannot serve is a SQL error saying where and why; the connection
stays usable.  Also the ways of calling it (RPC, EXEC in a batch, sp_executesql)."""

from __future__ import annotations

import json
from typing import Any

import pytds
import pytest

from sql.devserver import DevServer
from sql.devserver.columns import Column, spec_json
from tests.test_sql.columns_client import PROC, literal, values


def spec(columns: list[dict[str, object]], rows: list[list[object]], **extra: object) -> str:
    return json.dumps({"columns": columns, "rows": rows, **extra})


INT = {"name": "n", "type": "int"}


def one(type_: str, value: object, **column: object) -> str:
    """A spec of one column "v" and one row."""
    return spec([{"name": "v", "type": type_, **column}], [[value]])


CYRILLIC = {"collation": "Cyrillic_General_CI_AS"}
BAD_SPECS: list[tuple[str, str]] = [
    ("{not json", "@Spec is not JSON"),
    ("[1, 2]", "JSON object"),
    (spec([], []), '"columns" is a list of 1 to 4096 columns'),
    (spec([INT], [], colums=1), "unknown keys ['colums']"),
    (spec([{**INT, "nulable": True}], []), "column 1 has unknown keys"),
    (spec([{"name": 5, "type": "int"}], []), 'column 1: "name" is a string'),
    (one("integer", 1), "column 1 ('v'): unknown type 'integer'"),
    (one("decimal(39,0)", 1), "decimal(39,0): the precision must be 1 to 38"),
    (one("decimal(5,6)", 1), "decimal(5,6): the scale must be 0 to 5"),
    (one("varchar(8001)", ""), "varchar(8001): the length must be 1 to 8000"),
    (one("nchar(max)", ""), "nchar(max): the length must be 1 to 4000"),
    (one("time(8)", ""), "time(8): the scale must be 0 to 7"),
    (one("int", 1, collation="Latin1_General_CI_AS"), "int has no collation"),
    (one("varchar(5)", "", collation="Klingon_CI_AS"), "unknown collation 'Klingon_CI_AS'"),
    (spec([INT], [[1, 2]]), "row 1 is a list of 1 values"),
    (spec([INT], [[1], [2**31]]), "row 2, column 'n' (int): 2147483648 is out of range for int"),
    (spec([INT], [["1"]]), "a int value is a JSON integer, not '1'"),
    (one("int", None, nullable=False), "row 1, column 'v': NULL in a NOT NULL column"),
    (one("varchar(3)", "abcd"), "4 bytes do not fit varchar(3)"),
    (one("nvarchar(2)", "🚀🚀"), "8 bytes do not fit nvarchar(2)"),
    (one("varchar(9)", "ab東京", **CYRILLIC),
     "'東京' has no encoding in Cyrillic_General_CI_AS (cp1251)"),
    (one("decimal(5,2)", "1234.5"), "1234.5 is out of range for decimal(5,2)"),
    (one("decimal(5,2)", "1.234"), "1.234 has more than 2 digits after the point"),
    (one("decimal(5,2)", 1.5), 'a string such as "-123.45"'),
    (one("decimal(5,2)", "NaN"), "decimal(5,2) holds no NaN"),
    (one("money", "922337203685477.5808"), "out of range for money"),
    (one("real", 1e39), "out of range for real"),
    (one("float", "abc"), '"nan", "inf", "-inf"'),
    (one("bit", "yes"), "a bit is true or false"),
    (one("date", "2023-02-29"), "'2023-02-29' is not a date date"),
    (one("time(2)", "12:00:00.123"), "more fractional digits than time(2) holds"),
    (one("time", "24:00:00"), "is not a time of day"),
    (one("datetime2", "2024-01-01"), "is not YYYY-MM-DD HH:MM:SS[.fffffff]"),
    (one("datetimeoffset", "2024-01-01 00:00:00+15:00"), "the offset must be -14:00 to +14:00"),
    (one("datetimeoffset", "0001-01-01 00:00:00+01:00"), "out of range in UTC"),
    (one("datetime", "1752-12-31 00:00:00"), "out of range for datetime"),
    (one("datetime", "9999-12-31 23:59:59.999"), "out of range for datetime"),
    (one("datetime", "2024-01-01 00:00:00.1234"), "is not YYYY-MM-DD HH:MM:SS[.fff]"),
    (one("smalldatetime", "2079-06-06 23:59:30"), "out of range for smalldatetime"),
    (one("uniqueidentifier", "not-a-uuid"), "'not-a-uuid' is not a UUID"),
    (one("varbinary(4)", "0g"), "'0g' is not a hex string"),
    (one("sql_variant", 5), 'a sql_variant value is {"type": "<type>"'),
    (one("sql_variant", {"type": "varchar(max)", "value": "x"}),
     "a sql_variant cannot hold varchar(max)"),
    (one("sql_variant", {"type": "int", "value": None}),
     "a sql_variant holding NULL is written as null"),
    (spec([INT], [[1]], repeat=-1), '"repeat" is an integer from 0 to 100,000,000'),
    (spec([INT], [[1], [2]], repeat=60_000_000), "rows x repeat is more than 100,000,000 rows"),
    (spec([INT], [[1]], row_tokens="rows"), '"row_tokens" is one of auto, row, nbcrow'),
    (spec([INT], [[1]], plp_chunk=0), '"plp_chunk" is an integer from 1'),
]  # fmt: skip


@pytest.mark.parametrize(("text", "message"), BAD_SPECS, ids=[m for _, m in BAD_SPECS])
def test_a_bad_spec_is_an_error_naming_where_and_the_connection_survives(
    conn: Any, text: str, message: str
) -> None:
    with conn.cursor() as cur:
        with pytest.raises(pytds.Error) as info:
            cur.callproc(PROC, (text,))
        assert info.value.msg_no == 50000
        assert info.value.text.startswith("@Spec: ")
        assert message in info.value.text
    assert values(conn, Column("n", "int"), [1]) == [1]


def test_a_spec_error_reaches_the_client_before_any_row(server: DevServer, conn: Any) -> None:
    sent = server.stats.rows_sent
    bad = spec([INT], [[1]] * 1000 + [["x"]])
    with pytest.raises(pytds.Error, match="row 1001, column 'n'"), conn.cursor() as cur:
        cur.callproc(PROC, (bad,))
    assert server.stats.rows_sent == sent


@pytest.mark.parametrize(
    ("call", "number"),
    [
        ("EXEC dbo.spColumns", 201),
        ("EXEC dbo.spColumns NULL", 50000),
        ("EXEC dbo.spColumns @Rows = N'{}'", 8145),
        ("EXEC dbo.spColumns N'{}', 2", 8144),
    ],
)
def test_binding_errors_are_sql_servers(conn: Any, call: str, number: int) -> None:
    with conn.cursor() as cur, pytest.raises(pytds.Error) as info:
        cur.execute(call)
    assert info.value.msg_no == number
    assert values(conn, Column("n", "int"), [2]) == [2]


def test_exec_in_a_batch_with_quotes_and_commas_in_the_spec(conn: Any) -> None:
    text = spec_json([Column("a", "nvarchar(20)"), Column("b", "int")], [['it\'s, "q"', 1]])
    with conn.cursor() as cur:
        cur.execute(f"SET NOCOUNT ON; EXEC dbo.spColumns @Spec = {literal(text)}")
        assert [tuple(r) for r in cur.fetchall()] == [('it\'s, "q"', 1)]


def test_execute_with_a_parameter_uses_sp_executesql(conn: Any) -> None:
    text = spec_json([Column("a", "varchar(5)")], [["x"], ["y"]], repeat=2)
    with conn.cursor() as cur:
        cur.execute("EXEC spColumns %s", (text,))
        assert [tuple(r) for r in cur.fetchall()] == [("x",), ("y",), ("x",), ("y",)]
