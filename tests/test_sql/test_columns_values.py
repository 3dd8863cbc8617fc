"""``dbo.spColumns``: every type pytds 1.17 decodes, read back by pytds over TCP.

Each expected value is written out by hand from SQL Server's documented semantics (limits,
rounding, padding), never computed with the dev server's own encoder.
"""

from __future__ import annotations

import datetime as dt
import math
import struct
import uuid
from decimal import Decimal
from typing import Any

import pytest

from sql.devserver import DevServer
from sql.devserver.columns import Column
from tests.test_sql import columns_client
from tests.test_sql.columns_client import call, values


def utc_offset(minutes: int) -> dt.timezone:
    return dt.timezone(dt.timedelta(minutes=minutes))


# (type, JSON values, what pytds returns for them); every case also sends a NULL.
CASES: list[tuple[str, list[object], list[object]]] = [
    ("tinyint", [0, 255], [0, 255]),
    ("smallint", [-32768, 32767], [-32768, 32767]),
    ("int", [-(2**31), 2**31 - 1, 0], [-(2**31), 2**31 - 1, 0]),
    ("bigint", [-(2**63), 2**63 - 1, 2**53 + 1], [-(2**63), 2**63 - 1, 2**53 + 1]),
    ("bit", [True, False], [True, False]),
    ("real", [1.5, -0.0, 3.4028234663852886e38], [1.5, -0.0, 3.4028234663852886e38]),
    ("real", [0.1], [struct.unpack("<f", struct.pack("<f", 0.1))[0]]),
    ("float", [1.7976931348623157e308, 5e-324, -2.5], [1.7976931348623157e308, 5e-324, -2.5]),
    ("smallmoney", ["-214748.3648", "214748.3647", "0.0001"],
     [Decimal("-214748.3648"), Decimal("214748.3647"), Decimal("0.0001")]),
    ("money", ["-922337203685477.5808", "922337203685477.5807", "-1.5"],
     [Decimal("-922337203685477.5808"), Decimal("922337203685477.5807"), Decimal("-1.5")]),
    ("date", ["0001-01-01", "9999-12-31", "2024-02-29"],
     [dt.date(1, 1, 1), dt.date(9999, 12, 31), dt.date(2024, 2, 29)]),
    ("time(0)", ["00:00:00", "23:59:59"], [dt.time(0), dt.time(23, 59, 59)]),
    ("time(3)", ["12:34:56.789"], [dt.time(12, 34, 56, 789000)]),
    # Seven digits are 100 ns ticks; pytds keeps microseconds (datetime cannot hold more).
    ("time(7)", ["23:59:59.9999999", "00:00:00.0000001"],
     [dt.time(23, 59, 59, 999999), dt.time(0)]),
    ("datetime2(0)", ["0001-01-01 00:00:00", "9999-12-31 23:59:59"],
     [dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59)]),
    ("datetime2(7)", ["9999-12-31 23:59:59.9999999", "2024-01-02T03:04:05.1234567"],
     [dt.datetime(9999, 12, 31, 23, 59, 59, 999999), dt.datetime(2024, 1, 2, 3, 4, 5, 123456)]),
    ("datetimeoffset(7)",
     ["2024-01-02 03:04:05.1234567+01:30", "0001-01-01 00:00:00+00:00",
      "9999-12-31 23:59:59.9999999+00:00", "2000-01-01 00:00:00-14:00"],
     [dt.datetime(2024, 1, 2, 3, 4, 5, 123456, utc_offset(90)),
      dt.datetime(1, 1, 1, tzinfo=utc_offset(0)),
      dt.datetime(9999, 12, 31, 23, 59, 59, 999999, utc_offset(0)),
      dt.datetime(2000, 1, 1, tzinfo=utc_offset(-14 * 60))]),
    ("datetimeoffset(0)", ["2024-06-30 23:59:59+14:00"],
     [dt.datetime(2024, 6, 30, 23, 59, 59, tzinfo=utc_offset(14 * 60))]),
    # DATETIME counts 1/300 s: milliseconds round to .xx0/.xx3/.xx7, .999 to the next second.
    ("datetime",
     ["1753-01-01 00:00:00", "9999-12-31 23:59:59.997", "2024-01-01 23:59:59.998",
      "2024-01-01 23:59:59.999", "2024-01-01 00:00:00.001", "2024-01-01 00:00:00.002",
      "2024-01-01 00:00:00.005"],
     [dt.datetime(1753, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59, 997000),
      dt.datetime(2024, 1, 1, 23, 59, 59, 997000), dt.datetime(2024, 1, 2),
      dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 1, 0, 0, 0, 3000),
      dt.datetime(2024, 1, 1, 0, 0, 0, 7000)]),
    # SMALLDATETIME counts minutes: 29.998 s rounds down, 29.999 s up.
    ("smalldatetime",
     ["1900-01-01 00:00", "2079-06-06 23:59", "2024-01-01 10:00:29.998",
      "2024-01-01 10:00:29.999"],
     [dt.datetime(1900, 1, 1), dt.datetime(2079, 6, 6, 23, 59), dt.datetime(2024, 1, 1, 10),
      dt.datetime(2024, 1, 1, 10, 1)]),
    ("char(5)", ["ab", "", "abcde"], ["ab   ", "     ", "abcde"]),
    ("varchar(8000)", ["x" * 8000, ""], ["x" * 8000, ""]),
    ("varchar(max)", ["y" * 20_000, ""], ["y" * 20_000, ""]),
    ("nchar(3)", ["é"], ["é  "]),
    ("nvarchar(4000)", ["Zürich", "🚀" * 2000], ["Zürich", "🚀" * 2000]),
    ("nvarchar(max)", ["Москва " * 3000, ""], ["Москва " * 3000, ""]),
    ("binary(4)", ["01", ""], [b"\x01\x00\x00\x00", b"\x00\x00\x00\x00"]),
    ("varbinary(8000)", ["00ff10", "0x0A0b"], [b"\x00\xff\x10", b"\x0a\x0b"]),
    ("varbinary(max)", ["ab" * 20_000, ""], [b"\xab" * 20_000, b""]),
    ("text", ["Zürich café", "z" * 20_000], ["Zürich café", "z" * 20_000]),
    ("ntext", ["Αθήνα 🚀", ""], ["Αθήνα 🚀", ""]),
    ("image", ["deadbeef", ""], [b"\xde\xad\xbe\xef", b""]),
    ("uniqueidentifier", ["6F9619FF-8B86-D011-B42D-00C04FC964FF"],
     [uuid.UUID("6f9619ff-8b86-d011-b42d-00c04fc964ff")]),
    ("xml", ["<a b='1'>é</a>"], ["<a b='1'>é</a>"]),
]  # fmt: skip


# NOT NULL columns of these types travel as fixed-length types; pytds reports the type id.
FIXED_TYPES = {
    "tinyint": 0x30,  # INT1
    "smallint": 0x34,  # INT2
    "int": 0x38,  # INT4
    "bigint": 0x7F,  # INT8
    "bit": 0x32,  # BIT
    "real": 0x3B,  # FLT4
    "float": 0x3E,  # FLT8
    "smallmoney": 0x7A,  # MONEY4
    "money": 0x3C,  # MONEY
    "smalldatetime": 0x3A,  # DATETIM4
    "datetime": 0x3D,  # DATETIME
}


@pytest.mark.parametrize(("type_", "cells", "expected"), CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("row_tokens", ["row", "nbcrow", "auto"])
def test_each_type_decodes_to_the_expected_value(
    conn: Any, type_: str, cells: list[object], expected: list[object], row_tokens: str
) -> None:
    got = values(conn, Column("v", type_), [*cells, None], row_tokens=row_tokens)
    assert got == [*expected, None]
    assert [type(v) for v in got] == [*(type(e) for e in expected), type(None)]
    for value, want in zip(got, expected, strict=False):
        if isinstance(want, dt.datetime) and want.tzinfo is not None:
            assert isinstance(value, dt.datetime)
            assert value.utcoffset() == want.utcoffset()  # the offset, not only the instant


FIXED_CASES = [c for c in CASES if c[0] in FIXED_TYPES]


@pytest.mark.parametrize(
    ("type_", "cells", "expected"),
    FIXED_CASES,
    ids=[c[0] for c in FIXED_CASES],
)
def test_not_null_columns_use_the_fixed_length_types(
    conn: Any, type_: str, cells: list[object], expected: list[object]
) -> None:
    description, rows = call(conn, [Column("v", type_, nullable=False)], [[c] for c in cells])
    assert [r[0] for r in rows] == expected
    assert description[0][1] == FIXED_TYPES[type_]
    assert description[0][6] == 0  # not nullable


def test_floats_carry_nan_and_infinities(conn: Any) -> None:
    for type_ in ("real", "float"):
        got = values(conn, Column("v", type_), ["nan", "inf", "-inf", "NaN"])
        assert math.isnan(got[0]) and math.isnan(got[3])  # noqa: PT018 - one fact: NaN
        assert got[1:3] == [math.inf, -math.inf]


def decimal_max(precision: int, scale: int) -> str:
    whole = "9" * (precision - scale) or "0"
    return whole + ("." + "9" * scale if scale else "")


def test_every_decimal_precision_and_scale_class(conn: Any) -> None:
    """Precisions 1..38 (the four storage sizes 5/9/13/17 bytes) at scales 0, p/2 and p."""
    columns = []
    big, small, zero = [], [], []
    for precision in range(1, 39):
        for scale in sorted({0, precision // 2, precision}):
            kind = "numeric" if precision % 2 else "decimal"
            columns.append(Column(f"d{precision}_{scale}", f"{kind}({precision},{scale})"))
            big.append(decimal_max(precision, scale))
            small.append("-" + decimal_max(precision, scale))
            zero.append("0")
    _description, rows = call(conn, columns, [big, small, zero, [None] * len(columns)])
    assert rows[0] == tuple(Decimal(v) for v in big)
    assert rows[1] == tuple(Decimal(v) for v in small)
    assert rows[2] == tuple(Decimal(0) for _ in zero)
    assert rows[3] == (None,) * len(columns)
    assert rows[0][-1] == Decimal("0." + "9" * 38)  # decimal(38,38)


def test_decimal_38_0_limits_and_precision_and_scale_in_the_description(conn: Any) -> None:
    description, rows = call(
        conn,
        [Column("a", "decimal(38,0)"), Column("b", "decimal(18,4)", nullable=False)],
        [[str(10**38 - 1), "12.5"], [str(-(10**38 - 1)), "-0.0001"]],
    )
    assert [r[0] for r in rows] == [10**38 - 1, -(10**38 - 1)]
    assert [r[1] for r in rows] == [Decimal("12.5"), Decimal("-0.0001")]
    assert [(d[4], d[5]) for d in description] == [(38, 0), (18, 4)]


# Each collation's native text; pytds decodes with the code page it derives from the 5 bytes.
COLLATION_TEXT = [
    ("SQL_Latin1_General_CP1_CI_AS", "Zürich café €"),
    ("Latin1_General_CI_AS", "Straße ½ œ"),
    ("Cyrillic_General_CI_AS", "Москва ёЁ"),
    ("Greek_CI_AS", "Αθήνα ΩΣ"),
    ("Japanese_CI_AS", "東京 ｶﾀｶﾅ ひらがな"),
    ("Chinese_PRC_CI_AS", "北京 上海"),
]


@pytest.mark.parametrize(("collation", "text"), COLLATION_TEXT, ids=[c for c, _ in COLLATION_TEXT])
@pytest.mark.parametrize("type_", ["char(40)", "varchar(40)", "varchar(max)", "text"])
def test_non_ascii_text_in_each_collation(conn: Any, collation: str, text: str, type_: str) -> None:
    got = values(conn, Column("v", type_, collation=collation), [text, "plain ASCII"])
    if type_ == "char(40)":
        # Padded to 40 bytes in the code page (a double-byte character is 2 of them).
        assert [g.rstrip(" ") for g in got] == [text, "plain ASCII"]  # type: ignore[union-attr]
    else:
        assert got == [text, "plain ASCII"]


def test_the_utf8_collation_sends_utf8_which_pytds_reads_as_its_lcids_code_page(
    conn: Any,
) -> None:
    """Latin1_General_100_CI_AS_SC_UTF8 sets fUTF8 (MS-TDS 2.2.5.1.2); pytds 1.17 ignores the
    flag and decodes with the LCID's code page (1252), so non-ASCII arrives as mojibake."""
    got = values(
        conn,
        Column("v", "varchar(40)", collation="Latin1_General_100_CI_AS_SC_UTF8"),
        ["plain", "é€"],
    )
    assert got == ["plain", "é€".encode().decode("cp1252")]


def test_nvarchar_astral_characters_and_lone_surrogates_on_the_wire(
    devserver_thread: DevServer,
) -> None:
    """NVARCHAR is UTF-16LE code units: astral characters as surrogate pairs, and lone
    surrogates (which SQL Server stores) sent as they are."""
    from sql.devserver.columns import spec_json

    text = "a\ud800b🚀\udfff"
    reply = columns_client.raw_reply(
        devserver_thread, spec_json([Column("v", "nvarchar(20)")], [[text]], row_tokens="row")
    )
    units = "a\ud800b🚀\udfff".encode("utf-16-le", "surrogatepass")
    assert units == bytes.fromhex("6100 00d8 6200 3dd8 80de ffdf".replace(" ", ""))
    assert bytes((0xD1, len(units), 0)) + units in reply.payload


def test_pytds_decodes_astral_characters_but_refuses_lone_surrogates(conn: Any) -> None:
    assert values(conn, Column("v", "nvarchar(max)"), ["🚀x🚀"], plp_chunk=3) == ["🚀x🚀"]
    # pytds decodes UTF-16 strictly: a lone surrogate is its UnicodeDecodeError, not a value.
    with pytest.raises(UnicodeDecodeError):
        values(conn, Column("v", "nvarchar(10)"), ["a\ud800b"])


@pytest.mark.parametrize(
    ("type_", "value", "expected"),
    [
        ("nvarchar(max)", "Zürich 🚀 " * 3000, "Zürich 🚀 " * 3000),
        ("varchar(max)", "abc" * 9000, "abc" * 9000),
        ("varbinary(max)", "0102" * 9000, b"\x01\x02" * 9000),
        ("xml", "<r>" + "é" * 9000 + "</r>", "<r>" + "é" * 9000 + "</r>"),
    ],
)
@pytest.mark.parametrize("plp_chunk", [1, 3, 8000])
@pytest.mark.parametrize("plp_unknown_length", [False, True])
def test_multi_chunk_plp_values(
    conn: Any, type_: str, value: str, expected: object, plp_chunk: int, plp_unknown_length: bool
) -> None:
    got = values(
        conn,
        Column("v", type_),
        [value, None],
        plp_chunk=plp_chunk,
        plp_unknown_length=plp_unknown_length,
    )
    assert got == [expected, None]


def test_multibyte_code_page_characters_split_across_plp_chunks(conn: Any) -> None:
    text = "東京タワー" * 100  # two bytes per character in code page 932
    got = values(conn, Column("v", "varchar(max)", collation="Japanese_CI_AS"), [text], plp_chunk=3)
    assert got == [text]


VARIANTS: list[tuple[dict[str, object], object]] = [
    ({"type": "int", "value": 5}, 5),
    ({"type": "tinyint", "value": 255}, 255),
    ({"type": "smallint", "value": -2}, -2),
    ({"type": "bigint", "value": -(2**63)}, -(2**63)),
    ({"type": "bit", "value": True}, True),
    ({"type": "real", "value": 0.5}, 0.5),
    ({"type": "float", "value": -1e300}, -1e300),
    ({"type": "money", "value": "-12.3456"}, Decimal("-12.3456")),
    ({"type": "smallmoney", "value": "1.5"}, Decimal("1.5")),
    ({"type": "decimal(10,2)", "value": "3.14"}, Decimal("3.14")),
    ({"type": "numeric(38,0)", "value": str(10**38 - 1)}, Decimal(10**38 - 1)),
    ({"type": "date", "value": "9999-12-31"}, dt.date(9999, 12, 31)),
    ({"type": "time(7)", "value": "01:02:03.4567891"}, dt.time(1, 2, 3, 456789)),
    ({"type": "datetime2(3)", "value": "2024-01-02 03:04:05.678"},
     dt.datetime(2024, 1, 2, 3, 4, 5, 678000)),
    ({"type": "datetimeoffset(2)", "value": "2024-01-02 03:04:05.67-05:00"},
     dt.datetime(2024, 1, 2, 3, 4, 5, 670000, utc_offset(-300))),
    ({"type": "datetime", "value": "2024-01-02 03:04:05.997"},
     dt.datetime(2024, 1, 2, 3, 4, 5, 997000)),
    ({"type": "smalldatetime", "value": "2024-01-02 03:04"}, dt.datetime(2024, 1, 2, 3, 4)),
    ({"type": "uniqueidentifier", "value": "00000000-0000-0000-0000-000000000001"},
     uuid.UUID(int=1)),
    ({"type": "varchar(10)", "value": "abc"}, "abc"),
    ({"type": "varchar(10)", "value": "Москва", "collation": "Cyrillic_General_CI_AS"}, "Москва"),
    ({"type": "char(4)", "value": "ab"}, "ab  "),
    ({"type": "nvarchar(10)", "value": "東京 🚀"}, "東京 🚀"),
    ({"type": "nchar(2)", "value": "é"}, "é "),
    ({"type": "varbinary(4)", "value": "0102"}, b"\x01\x02"),
    ({"type": "binary(3)", "value": "01"}, b"\x01\x00\x00"),
]  # fmt: skip


def test_sql_variant_holds_each_base_type(conn: Any) -> None:
    got = values(conn, Column("v", "sql_variant"), [v for v, _ in VARIANTS] + [None])
    assert got == [e for _, e in VARIANTS] + [None]
    assert [type(g) for g in got[:-1]] == [type(e) for _, e in VARIANTS]


def test_a_wide_row_of_every_type_with_nulls_everywhere(conn: Any) -> None:
    """All types side by side, then the same row with every other column NULL: NBCROW (auto)."""
    columns = [Column(f"c{i}", t) for i, (t, _c, _e) in enumerate(CASES)]
    full = [c[0] for _t, c, _e in CASES]
    holes = [None if i % 2 else v for i, v in enumerate(full)]
    _description, rows = call(conn, columns, [full, holes, [None] * len(columns)])
    want = tuple(e[0] for _t, _c, e in CASES)
    assert rows[0] == want
    assert rows[1] == tuple(None if i % 2 else v for i, v in enumerate(want))
    assert rows[2] == (None,) * len(columns)


def test_the_description_names_the_columns_and_their_nullability(conn: Any) -> None:
    description, _rows = call(
        conn,
        [Column("Ünïcode name", "int"), Column("", "nvarchar(7)", nullable=False)],
        [[1, "x"]],
    )
    assert [(d[0], d[6]) for d in description] == [("Ünïcode name", 1), ("", 0)]
    assert description[1][3] == 7  # pytds reports nvarchar(n)'s n
