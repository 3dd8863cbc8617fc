"""The fast row path against pytds' own decoding, over TCP through the dev server.

Every type the fast path decodes, NULLs in ROW and NBCROW tokens, the types' limits, every
decimal precision class and scale, text in every collation the dev server has, and packet
sizes that split rows at every offset. Equality is strict: same values, same Python types,
same Decimal exponents, NaN equal to NaN. Each comparison fetches both ways: through the
compiled scanner and tuple builder (where they read the layout) and the generated decoder.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sql.devserver import DevServer
from sql.devserver.columns import Column, spec_json
from tdsrows import RAW_KINDS, FastRows
from tests.devclient import dev_connect
from tests.test_tdsrows.support import (
    FETCH_PARAMS,
    assert_same,
    comparable,
    fast_rows,
    pytds_rows,
)

# (declaration, values): limits, zeros, typical values. NULL is added by the tests.
TYPES: list[tuple[str, list[object]]] = [
    ("tinyint", [0, 1, 255]),
    ("smallint", [-32768, 0, 32767]),
    ("int", [-(2**31), -1, 0, 2**31 - 1]),
    ("bigint", [-(2**63), -(2**53) - 1, 0, 2**53 + 1, 2**63 - 1]),
    ("bit", [True, False]),
    ("real", [0.0, -1.5, 3.4028234663852886e38, 1.401298464324817e-45, "nan", "inf", "-inf"]),
    ("float", [0.0, -0.0, 1e308, 5e-324, -2.5, 0.1, "nan", "inf", "-inf"]),
    ("smallmoney", ["-214748.3648", "0", "0.0001", "214748.3647"]),
    ("money", ["-922337203685477.5808", "0", "1.5", "922337203685477.5807"]),
    ("decimal(18,4)", ["-99999999999999.9999", "0", "0.0001", "-0.0001", "12.5", "1000"]),
    ("numeric(5,0)", ["-99999", "0", "99999"]),
    ("date", ["0001-01-01", "1899-12-31", "1900-03-01", "2024-02-29", "9999-12-31"]),
    ("datetime", ["1753-01-01 00:00:00", "1900-01-01 00:00:00", "2024-06-30 23:59:59.997"]),
    ("smalldatetime", ["1900-01-01 00:00", "2024-06-30 12:34", "2079-06-06 23:59"]),
    (
        "uniqueidentifier",
        ["6F9619FF-8B86-D011-B42D-00C04FC964FF", "00000000-0000-0000-0000-000000000000"],
    ),
    ("varchar(20)", ["", "plain", "caf\u00e9 \u20ac \u0161", " padded  "]),
    ("char(5)", ["ab", "abcde", ""]),
    ("nvarchar(40)", ["", "Krak\u00f3w", "\u6771\u4eac", "emoji \U0001f600 \U0001f44d\U0001f3fd"]),
    ("nchar(3)", ["a", "\u00e9\u00e9\u00e9"]),
    ("varbinary(16)", ["", "00", "deadbeef", "ff" * 16]),
    ("binary(4)", ["01", "01020304"]),
    ("varchar(8000)", ["x" * 8000, "y" * 7999]),
    ("nvarchar(4000)", ["\u00e9" * 4000]),
]
TIME_SCALES = range(8)
# The types whose columns the compiled scanner reads (the rest: time, datetime, smalldatetime,
# uniqueidentifier, binary, go through the generated decoder).
_NOT_SCANNED = ("datetime", "smalldatetime", "uniqueidentifier", "varbinary", "binary", "time")
SCANNED_TYPES = [(d, v) for d, v in TYPES if not d.startswith(_NOT_SCANNED)]


def _params() -> Iterator[Any]:
    for declaration, values in TYPES:
        yield pytest.param(declaration, values, id=declaration)


@pytest.fixture(scope="module")
def server() -> Iterator[DevServer]:
    from sql.devserver import run_in_thread

    with run_in_thread(port=0) as srv:
        yield srv


@pytest.fixture(scope="module")
def conn(server: DevServer) -> Iterator[Any]:
    connection = dev_connect(server.port)
    yield connection
    connection.close()


@pytest.mark.parametrize(("declaration", "values"), list(_params()))
@pytest.mark.parametrize("row_tokens", ["auto", "row", "nbcrow"])
def test_every_type_with_nulls(
    conn: Any, declaration: str, values: list[object], row_tokens: str
) -> None:
    """Each value alone, then beside a NULL of the same type and an int, in every token form."""
    columns = [Column("v", declaration), Column("w", declaration), Column("i", "int")]
    rows = [[v, None, n] for n, v in enumerate(values)] + [[None, v, None] for v in values]
    got = assert_same(conn, columns, rows, row_tokens=row_tokens)
    assert len(got) == 2 * len(values)


@pytest.mark.parametrize(
    ("declaration", "values"),
    [p for p in _params() if "(" not in p.id or p.id.startswith(("decimal", "numeric"))],
)
def test_not_null_types_use_fixed_wire_types(
    conn: Any, declaration: str, values: list[object]
) -> None:
    """NOT NULL columns of fixed-size types come as INT4, FLT8, MONEY, DATETIME... (no length)."""
    assert_same(conn, [Column("v", declaration, nullable=False)], [[v] for v in values])


@pytest.mark.parametrize("precision", range(1, 39))
def test_decimals_of_every_precision_and_scale(conn: Any, precision: int) -> None:
    for scale in sorted({0, 1, precision // 2, precision - 1, precision} - {-1}):
        whole = precision - scale
        largest = ("9" * whole or "0") + ("." + "9" * scale if scale else "")
        smallest = "0." + "0" * (scale - 1) + "1" if scale else "1"
        values = [largest, "-" + largest, smallest, "-" + smallest, "0"]
        if scale:
            values.append("1." + "0" * scale if whole else "0." + "5" + "0" * (scale - 1))
        declaration = f"decimal({precision},{scale})"
        assert_same(conn, [Column("d", declaration)], [[v] for v in values] + [[None]])


@pytest.mark.parametrize("scale", TIME_SCALES)
def test_time_and_datetime2_of_every_scale_at_the_edges(conn: Any, scale: int) -> None:
    fraction = "." + "9" * scale if scale else ""
    times = ["00:00:00", "12:34:56", "23:59:59" + fraction]
    if scale:
        times.append("00:00:00." + "0" * (scale - 1) + "1")
    datetimes = [
        "0001-01-01 00:00:00",
        "1899-12-30 00:00:00",
        "1900-02-28 23:59:59" + fraction,
        "2024-02-29 12:00:00",
        "9999-12-31 23:59:59" + fraction,
    ]
    assert_same(conn, [Column("t", f"time({scale})")], [[t] for t in times] + [[None]])
    assert_same(conn, [Column("d", f"datetime2({scale})")], [[d] for d in datetimes] + [[None]])


COLLATIONS = [
    ("SQL_Latin1_General_CP1_CI_AS", "caf\u00e9 \u20ac \u0161 \u00bd"),
    ("Latin1_General_CI_AS", "\u00c6\u00d8\u00c5 \u201cquoted\u201d"),
    ("Cyrillic_General_CI_AS", "\u041c\u043e\u0441\u043a\u0432\u0430"),
    ("Greek_CI_AS", "\u0391\u03b8\u03ae\u03bd\u03b1"),
    ("Japanese_CI_AS", "\u6771\u4eac \uff76\uff85"),
    ("Chinese_PRC_CI_AS", "\u5317\u4eac"),
    ("Latin1_General_100_CI_AS_SC_UTF8", "plain ascii"),
]


@pytest.mark.parametrize(("collation", "text"), COLLATIONS, ids=[c for c, _ in COLLATIONS])
def test_varchar_in_every_collation(conn: Any, collation: str, text: str) -> None:
    columns = [
        Column("v", "varchar(60)", collation=collation),
        Column("c", "char(12)", collation=collation),
    ]
    assert_same(conn, columns, [[text, "ab"], ["", None], [None, "x"]])


@pytest.mark.parametrize("compiled", FETCH_PARAMS)
def test_report_rows_split_at_every_packet_offset(server: DevServer, compiled: bool) -> None:
    """spGenerateData's rows (~75 bytes) through packets of 512 to 600 bytes: every row
    straddles a packet boundary at some packet size, at every offset within the row."""
    for packet_size in range(512, 601):
        connection = dev_connect(server.port, blocksize=packet_size)
        try:
            with connection.cursor() as cursor:
                cursor.callproc("dbo.spGenerateData", (120,))
                expected = [tuple(r) for r in cursor.fetchall()]
                while cursor.nextset():
                    pass
            with connection.cursor() as cursor:
                cursor.callproc("dbo.spGenerateData", (120,))
                fast = FastRows.open(cursor, compiled=compiled)
                assert fast.compiled_fetch == compiled
                got = []
                while batch := fast.fetch():
                    got.extend(batch)
                while cursor.nextset():
                    pass
        finally:
            connection.close()
        assert got == expected, f"packet size {packet_size}"


@pytest.mark.parametrize("compiled", FETCH_PARAMS)
@pytest.mark.parametrize("types", [TYPES, SCANNED_TYPES], ids=["all-types", "scanned-types"])
def test_mixed_layout_at_many_packet_sizes(
    server: DevServer, types: list[tuple[str, list[object]]], compiled: bool
) -> None:
    """A wide row of many types, NULL patterns varying by row, at packet sizes 512..4096."""
    columns = [Column(f"c{i}", d) for i, (d, _) in enumerate(types)]
    rows = []
    for n in range(40):
        rows.append(
            [
                values[(n + i) % len(values)] if (n + i) % 5 else None
                for i, (_, values) in enumerate(types)
            ]
        )
    spec = spec_json(columns, rows)
    for packet_size in (512, 513, 517, 1000, 4096, 32767):
        connection = dev_connect(server.port, blocksize=packet_size)
        try:
            expected = pytds_rows(connection, spec)
            got, fast = fast_rows(connection, spec, compiled=compiled)
        finally:
            connection.close()
        assert comparable(got) == comparable(expected), f"packet size {packet_size}"
        assert fast.compiled_fetch == (compiled and types is SCANNED_TYPES)


@pytest.mark.compiled
def test_fetch_is_compiled_where_the_scanner_reads_every_column(conn: Any) -> None:
    """compiled_fetch says which way fetch() goes: compiled unless asked not to or a column
    has no cell (time here)."""
    scanned = [Column(f"c{i}", d) for i, (d, _) in enumerate(SCANNED_TYPES)]
    rows: list[list[object]] = [[values[0] for _, values in SCANNED_TYPES]]
    spec = spec_json(scanned, rows)
    assert fast_rows(conn, spec)[1].compiled_fetch
    assert not fast_rows(conn, spec, compiled=False)[1].compiled_fetch
    with_time = spec_json([*scanned, Column("t", "time(3)")], [[*rows[0], "12:00:00"]])
    assert not fast_rows(conn, with_time)[1].compiled_fetch


@pytest.mark.compiled
def test_raw_kinds_give_the_same_ints_both_ways(conn: Any) -> None:
    """Opened with raw kinds (as the export opens it), fetch gives ints for those columns,
    the same both ways (a negative zero, which the dev server never sends, is in
    test_rowscan)."""
    columns = [
        Column("d", "decimal(18,4)"),
        Column("m", "money"),
        Column("dt", "date"),
        Column("t", "datetime2(7)"),
        Column("n", "nvarchar(10)"),
    ]
    rows: list[list[object]] = [
        ["-12.5", "-922337203685477.5808", "0001-01-01", "9999-12-31 23:59:59.9999999", "é"],
        ["0", "0", "2024-02-29", "0001-01-01 00:00:00", None],
        [None, None, None, None, ""],
    ]
    spec = spec_json(columns, rows)
    compiled, fast = fast_rows(conn, spec, raw_kinds=RAW_KINDS)
    generated, _ = fast_rows(conn, spec, raw_kinds=RAW_KINDS, compiled=False)
    assert fast.compiled_fetch
    assert comparable(compiled) == comparable(generated)
    assert compiled[0][:4] == (-125_000, -(2**63), 0, 3_652_059 * 864_000_000_000 - 1)
    assert all(type(v) is int for v in compiled[0][:4])
