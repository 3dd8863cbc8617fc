"""Every value type and edge case written, then read back by openpyxl and python-calamine."""

import datetime as dt
import decimal
import math
import random
import uuid

import pytest

from tests.test_xlsx.support import read_calamine, read_openpyxl, write
from xlsx import WriteStats

ERROR = object()  # the #NUM! error cell
UTC_PLUS_2 = dt.timezone(dt.timedelta(hours=2))
UTC_MINUS_5 = dt.timezone(dt.timedelta(hours=-5))
EMOJI_TEXT = "a" + "😀" * 20_000

# (label, value written, value a reader must give back)
CASES: list[tuple[str, object, object]] = [
    ("int", 42, 42),
    ("negative int", -7, -7),
    ("largest exact int", 2**53 - 1, 2**53 - 1),
    ("2**53+1 keeps every digit", 2**53 + 1, "9007199254740993"),
    ("huge negative int", -(10**30), "-" + "1" + "0" * 30),
    ("float", 0.1, 0.1),
    ("float repr round trip", 1 / 3, 1 / 3),
    ("tiny float", 5e-324, 5e-324),
    ("NaN", float("nan"), ERROR),
    ("inf", float("inf"), ERROR),
    ("-inf", float("-inf"), ERROR),
    ("decimal(18,4)", decimal.Decimal("12345678.9012"), 12345678.9012),
    ("decimal many digits", decimal.Decimal("3.14159265358979323846264338327950288"), math.pi),
    ("decimal NaN", decimal.Decimal("NaN"), ERROR),
    ("decimal Infinity", decimal.Decimal("Infinity"), ERROR),
    ("decimal id beyond 2**53", decimal.Decimal("12345678901234567890"), "12345678901234567890"),
    ("true", True, True),
    ("false", False, False),
    ("text", "hello", "hello"),
    ("markup", "<b>&amp;</b>", "<b>&amp;</b>"),
    ("non-ASCII", "Straße Ärger 日本 😀", "Straße Ärger 日本 😀"),
    ("control characters", "a\x00b\x01c\x1fd\re\x0bf", "a\x00b\x01c\x1fd\re\x0bf"),
    ("tab and newline", "line1\nline2\tend", "line1\nline2\tend"),
    ("leading/trailing spaces", "  both  ", "  both  "),
    ("escape lookalike", "_x0041_", "_x0041_"),
    ("escaped escape lookalike", "_x005F_x0041_", "_x005F_x0041_"),
    # Only "_x" + 4 hex digits + "_" is an escape (capital X is not): the rest stays as it is.
    (
        "not escapes",
        "_x_ _xZZZZ_ _x12345_ _X0041_ _x004_ x0041_",
        "_x_ _xZZZZ_ _x12345_ _X0041_ _x004_ x0041_",
    ),
    ("40,000 characters", "x" * 40_000, "x" * 32_767),
    ("emoji near the limit", EMOJI_TEXT, "a" + "😀" * 16_383),
    (
        "uuid",
        uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "12345678-1234-5678-1234-567812345678",
    ),
    ("bytes", b"\x00\x01\xfe\xff", "0x0001feff"),
    ("1899-12-31 has no serial", dt.date(1899, 12, 31), "1899-12-31"),
    ("1900-01-01", dt.date(1900, 1, 1), dt.date(1900, 1, 1)),
    ("1900-02-28", dt.date(1900, 2, 28), dt.date(1900, 2, 28)),
    ("1900-03-01", dt.date(1900, 3, 1), dt.date(1900, 3, 1)),
    ("date", dt.date(2024, 2, 29), dt.date(2024, 2, 29)),
    ("9999-12-31", dt.date(9999, 12, 31), dt.date(9999, 12, 31)),
    ("datetime", dt.datetime(2024, 2, 29, 13, 37, 42), dt.datetime(2024, 2, 29, 13, 37, 42)),
    (
        "datetime with microseconds is floored to the second",
        dt.datetime(2024, 12, 31, 23, 59, 59, 999_999),
        dt.datetime(2024, 12, 31, 23, 59, 59),
    ),
    ("datetime 1900-02-28", dt.datetime(1900, 2, 28, 18), dt.datetime(1900, 2, 28, 18)),
    (
        "datetime before 1900",
        dt.datetime(1899, 12, 31, 23, 59, 59),
        "1899-12-31 23:59:59",
    ),
    (
        "aware datetime -> UTC",
        dt.datetime(2024, 2, 29, 1, 30, tzinfo=UTC_PLUS_2),
        dt.datetime(2024, 2, 28, 23, 30),
    ),
    (
        "aware datetime west of UTC",
        dt.datetime(2024, 12, 31, 20, 0, 0, 500, tzinfo=UTC_MINUS_5),
        dt.datetime(2025, 1, 1, 1, 0),
    ),
    ("aware datetime UTC", dt.datetime(2024, 1, 1, tzinfo=dt.UTC), dt.datetime(2024, 1, 1)),
    ("time", dt.time(13, 37, 42), dt.time(13, 37, 42)),
    ("time with microseconds", dt.time(23, 59, 59, 999_999), dt.time(23, 59, 59)),
    ("midnight", dt.time(0), dt.time(0)),
]


def _matches(actual: object, expected: object, reader: str) -> bool:
    if expected is ERROR:
        # openpyxl gives the error code; calamine has no error value and gives "" - either way,
        # not a number.
        return actual == "#NUM!" if reader == "openpyxl" else actual == ""
    if isinstance(expected, bool):
        return actual is expected
    if isinstance(expected, int | float):
        return (
            isinstance(actual, int | float) and not isinstance(actual, bool) and actual == expected
        )
    if isinstance(expected, dt.datetime):
        if not isinstance(actual, dt.datetime) and expected.time() == dt.time(0):
            return actual == expected.date()  # calamine gives a midnight datetime as a date
        return isinstance(actual, dt.datetime) and actual == expected
    if isinstance(expected, dt.date):  # openpyxl gives dates as midnight datetimes
        if isinstance(actual, dt.datetime):
            return actual == dt.datetime.combine(expected, dt.time())
        return actual == expected
    return actual == expected


@pytest.fixture(scope="module")
def workbook() -> tuple[bytes, WriteStats]:
    stats = WriteStats()
    rows = [(label, value, None, "after") for label, value, _ in CASES]
    return write(["case", "value", "empty", "next"], rows, stats=stats), stats


@pytest.mark.parametrize("reader", ["openpyxl", "calamine"])
def test_every_type_round_trips(workbook: tuple[bytes, WriteStats], reader: str) -> None:
    data, _ = workbook
    sheets = read_openpyxl(data) if reader == "openpyxl" else read_calamine(data)
    rows = sheets["Report"]
    assert list(rows[0]) == ["case", "value", "empty", "next"]
    assert len(rows) == len(CASES) + 1
    wrong = []
    for (label, _, expected), row in zip(CASES, rows[1:], strict=True):
        assert row[0] == label
        if not _matches(row[1], expected, reader):
            wrong.append((label, row[1] if len(repr(row[1])) < 200 else repr(row[1])[:200]))
        assert row[2] in (None, ""), label  # None wrote no cell
        assert row[3] == "after"
    assert wrong == []


def test_lone_surrogates_round_trip_as_excel_escapes() -> None:
    # openpyxl (with Excel's unescaping) gives the very code points back; calamine cannot hold a
    # lone surrogate in a Rust string and leaves the escape text, as the file holds it.
    data = write(["text"], [["\ud800x\udfff"], ["\ud83d\ude00"]])
    assert read_openpyxl(data)["Report"][1:] == [("\ud800x\udfff",), ("\ud83d\ude00",)]
    assert read_calamine(data)["Report"][1:] == [["_xD800_x_xDFFF_"], ["_xD83D__xDE00_"]]


def test_truncations_are_counted(workbook: tuple[bytes, WriteStats]) -> None:
    _, stats = workbook
    assert stats.truncated_cells == 2  # the 40,000-character text and the emoji text
    assert stats.rows == len(CASES)
    assert stats.sheets == 1


def test_typed_rows_in_bulk_round_trip() -> None:
    """Many rows of the benchmark's kind, mostly through the compiled fast path."""
    start = dt.datetime(2023, 1, 1, 8, 0, 0)

    def row(i: int) -> tuple[object, ...]:
        return (
            i,
            -i * 3,
            2**53 + i if i % 7 == 0 else i * 1_000_003,
            decimal.Decimal(i * 98_765).scaleb(-4),
            f"customer {i}",
            f"Ärger {i} 😀" if i % 3 else f"a_b {i} <&>",
            (start + dt.timedelta(days=i)).date(),
            start + dt.timedelta(seconds=i * 3_607),
            i % 2 == 0,
            i / 8 if i % 5 else None,
        )

    n = 3_000
    data = write([f"c{i}" for i in range(10)], (row(i) for i in range(n)))
    for reader, sheets in (("openpyxl", read_openpyxl(data)), ("calamine", read_calamine(data))):
        rows = sheets["Report"]
        assert len(rows) == n + 1
        for i in range(n):
            expected = list(row(i))
            expected[2] = str(expected[2]) if i % 7 == 0 else expected[2]
            expected[3] = float(expected[3])  # type: ignore[arg-type]
            for got, want in zip(rows[i + 1], expected, strict=True):
                if want is None:
                    assert got in (None, "")
                else:
                    assert _matches(got, want, reader), (reader, i, got, want)


def test_random_nasty_text_round_trips() -> None:
    rnd = random.Random(1900)
    alphabet = "ab _x0041F<>&;\"'\t\n\r\x00\x01\x0b\x1f\x7f\x85\xa0é€😀\ufffe\uffff\u2028 "
    texts = ["".join(rnd.choice(alphabet) for _ in range(rnd.randrange(0, 30))) for _ in range(500)]
    data = write(["text"], [[t] for t in texts])
    assert [row[0] for row in read_openpyxl(data)["Report"][1:]] == [t or "" for t in texts]
    # calamine decodes the escapes too, except those of the noncharacters U+FFFE and U+FFFF
    keep_escaped = str.maketrans({"\ufffe": "_xFFFE_", "\uffff": "_xFFFF_"})
    expected = [t.translate(keep_escaped) for t in texts]
    assert [row[0] for row in read_calamine(data)["Report"][1:]] == expected
