"""Exact XML of single cells and rows, and the compiled fast path against the reference encoder."""

import datetime as dt
import decimal
import random
import uuid

import pytest

from tests.test_xlsx.support import UTC_PLUS_2, Color, random_value
from xlsx import dates, escape
from xlsx import rows as row_module
from xlsx.cells import CellEncoder
from xlsx.errors import UnsupportedValueError
from xlsx.names import column_letter
from xlsx.rows import MAX_COMPILED_SHAPES, RowEncoder
from xlsx.spec import WriteStats


def encoder(
    width: int = 3, styles: list[int] | None = None, decimals: list[int] | None = None
) -> CellEncoder:
    letters = [column_letter(i) for i in range(width)]
    return CellEncoder(letters, styles or [0] * width, WriteStats(), decimals)


class Text(str):
    def __str__(self) -> str:  # a subclass's own __str__ must not leak into the cell
        return "not me"


@pytest.mark.parametrize(
    ("value", "xml"),
    [
        (None, ""),
        (True, '<c r="B7" t="b"><v>1</v></c>'),
        (False, '<c r="B7" t="b"><v>0</v></c>'),
        (0, '<c r="B7"><v>0</v></c>'),
        (-(2**53) + 1, '<c r="B7"><v>-9007199254740991</v></c>'),
        (2**53 - 1, '<c r="B7"><v>9007199254740991</v></c>'),
        (2**53 + 1, '<c r="B7" t="inlineStr"><is><t>9007199254740993</t></is></c>'),
        (-(2**63), '<c r="B7" t="inlineStr"><is><t>-9223372036854775808</t></is></c>'),
        (Color.RED, '<c r="B7"><v>7</v></c>'),
        (0.1, '<c r="B7"><v>0.1</v></c>'),
        (1e300, '<c r="B7"><v>1e+300</v></c>'),
        (-0.0, '<c r="B7"><v>-0.0</v></c>'),
        (float("nan"), '<c r="B7" t="e"><v>#NUM!</v></c>'),
        (float("inf"), '<c r="B7" t="e"><v>#NUM!</v></c>'),
        (float("-inf"), '<c r="B7" t="e"><v>#NUM!</v></c>'),
        (decimal.Decimal("1234.5600"), '<c r="B7"><v>1234.5600</v></c>'),
        (decimal.Decimal("-0.0001"), '<c r="B7"><v>-0.0001</v></c>'),
        (decimal.Decimal("1E-7"), '<c r="B7"><v>1e-07</v></c>'),
        (
            decimal.Decimal("3.14159265358979323846264338327950288"),
            '<c r="B7"><v>3.141592653589793</v></c>',
        ),
        (decimal.Decimal("NaN"), '<c r="B7" t="e"><v>#NUM!</v></c>'),
        (decimal.Decimal("-Infinity"), '<c r="B7" t="e"><v>#NUM!</v></c>'),
        (
            decimal.Decimal("12345678901234567890"),
            '<c r="B7" t="inlineStr"><is><t>12345678901234567890</t></is></c>',
        ),
        (
            decimal.Decimal("1E+20"),
            '<c r="B7" t="inlineStr"><is><t>100000000000000000000</t></is></c>',
        ),
        (decimal.Decimal("12345678901234567.5"), '<c r="B7"><v>1.2345678901234568e+16</v></c>'),
        ("plain", '<c r="B7" t="inlineStr"><is><t>plain</t></is></c>'),
        ("", '<c r="B7" t="inlineStr"><is><t></t></is></c>'),
        ("a<b>&c", '<c r="B7" t="inlineStr"><is><t>a&lt;b&gt;&amp;c</t></is></c>'),
        (" lead", '<c r="B7" t="inlineStr"><is><t xml:space="preserve"> lead</t></is></c>'),
        ("trail\n", '<c r="B7" t="inlineStr"><is><t xml:space="preserve">trail\n</t></is></c>'),
        ("tab\tnew\nline", '<c r="B7" t="inlineStr"><is><t>tab\tnew\nline</t></is></c>'),
        ("a\x00b\x1fc\rd", '<c r="B7" t="inlineStr"><is><t>a_x0000_b_x001F_c_x000D_d</t></is></c>'),
        ("\ud800x\udfff", '<c r="B7" t="inlineStr"><is><t>_xD800_x_xDFFF_</t></is></c>'),
        ("\ufffe\uffff", '<c r="B7" t="inlineStr"><is><t>_xFFFE__xFFFF_</t></is></c>'),
        ("_x0041_", '<c r="B7" t="inlineStr"><is><t>_x005F_x0041_</t></is></c>'),
        ("_x00e9_ _xZZZZ_", '<c r="B7" t="inlineStr"><is><t>_x005F_x00e9_ _xZZZZ_</t></is></c>'),
        ("_X0041_ _x004_", '<c r="B7" t="inlineStr"><is><t>_X0041_ _x004_</t></is></c>'),
        ("snake_case", '<c r="B7" t="inlineStr"><is><t>snake_case</t></is></c>'),
        ("Ärger 😀", '<c r="B7" t="inlineStr"><is><t>Ärger 😀</t></is></c>'),
        (Text("mine"), '<c r="B7" t="inlineStr"><is><t>mine</t></is></c>'),
        (
            uuid.UUID(int=1),
            '<c r="B7" t="inlineStr"><is><t>00000000-0000-0000-0000-000000000001</t></is></c>',
        ),
        (b"\x00\xffA", '<c r="B7" t="inlineStr"><is><t>0x00ff41</t></is></c>'),
        (b"", '<c r="B7" t="inlineStr"><is><t>0x</t></is></c>'),
        (dt.date(2024, 1, 2), '<c r="B7" s="2"><v>45293</v></c>'),
        (dt.date(1900, 3, 1), '<c r="B7" s="2"><v>61</v></c>'),
        (dt.date(1900, 2, 28), '<c r="B7" s="2"><v>59</v></c>'),
        (dt.date(1900, 1, 1), '<c r="B7" s="2"><v>1</v></c>'),
        (dt.date(1899, 12, 31), '<c r="B7" t="inlineStr"><is><t>1899-12-31</t></is></c>'),
        (dt.date(9999, 12, 31), '<c r="B7" s="2"><v>2958465</v></c>'),
        (dt.datetime(2024, 1, 2, 12), '<c r="B7" s="3"><v>45293.5</v></c>'),
        (
            dt.datetime(2024, 1, 2, 0, 0, 1, 999_999),
            f'<c r="B7" s="3"><v>{45293 + 1 / 86400!r}</v></c>',
        ),
        (dt.datetime(2024, 1, 2, 14, tzinfo=UTC_PLUS_2), '<c r="B7" s="3"><v>45293.5</v></c>'),
        (dt.datetime(1900, 2, 28, 6), '<c r="B7" s="3"><v>59.25</v></c>'),
        (
            dt.datetime(1899, 12, 31, 23, 59, 59, 900),
            '<c r="B7" t="inlineStr"><is><t>1899-12-31 23:59:59</t></is></c>',
        ),
        (dt.time(12), '<c r="B7" s="4"><v>0.5</v></c>'),
        (dt.time(6, 0, 0, 999_999), '<c r="B7" s="4"><v>0.25</v></c>'),
        (dt.time(1, tzinfo=UTC_PLUS_2), '<c r="B7" s="4"><v>0.9583333333333334</v></c>'),
    ],
)
def test_cell_xml(value: object, xml: str) -> None:
    assert encoder().cell(value, 1, "7") == xml
    # The compiled row path gives exactly the same cell.
    row = RowEncoder(encoder()).encode([None, value], "7")
    assert row == f'<row r="7">{xml}</row>'


def test_column_number_format_applies_to_numbers() -> None:
    cells = encoder(3, [0, 5, 0])
    assert cells.cell(1.5, 1, "2") == '<c r="B2" s="5"><v>1.5</v></c>'
    assert cells.cell(7, 1, "2") == '<c r="B2" s="5"><v>7</v></c>'
    assert cells.cell(2**60, 1, "2") == (
        '<c r="B2" t="inlineStr"><is><t>1152921504606846976</t></is></c>'
    )
    assert cells.cell(dt.date(2024, 1, 2), 1, "2") == '<c r="B2" s="5"><v>45293</v></c>'
    assert cells.cell("text", 1, "2") == '<c r="B2" t="inlineStr"><is><t>text</t></is></c>'
    assert cells.cell(True, 1, "2") == '<c r="B2" t="b"><v>1</v></c>'
    # A format without a fraction of a second: floored to the second like the default.
    stamp = dt.datetime(2024, 1, 2, 0, 0, 0, 999_999)
    assert cells.cell(stamp, 1, "2") == '<c r="B2" s="5"><v>45293.0</v></c>'


@pytest.mark.parametrize(
    ("decimals", "stamp", "ticks"),
    [
        (3, dt.datetime(2024, 1, 2, 0, 0, 0, 500_000), 500),
        (3, dt.datetime(2024, 1, 2, 23, 59, 59, 999_600), 86_399_999),  # never the next day
        (1, dt.datetime(2024, 1, 2, 0, 0, 1, 99_999), 10),
        (6, dt.datetime(2024, 1, 2, 0, 0, 0, 1), 1),
    ],
)
def test_formats_with_fractions_keep_what_they_show(
    decimals: int, stamp: dt.datetime, ticks: int
) -> None:
    per_day = 86_400 * 10**decimals
    xml = f'<c r="B2" s="5"><v>{(45293 * per_day + ticks) / per_day!r}</v></c>'
    assert encoder(3, [0, 5, 0], [0, decimals, 0]).cell(stamp, 1, "2") == xml
    row = RowEncoder(encoder(3, [0, 5, 0], [0, decimals, 0])).encode([None, stamp], "2")
    assert row == f'<row r="2">{xml}</row>'


def test_second_decimals_of_formats() -> None:
    assert dates.second_decimals("yyyy-mm-dd hh:mm:ss.000") == 3
    assert dates.second_decimals("[h]:mm:ss.0") == 1
    assert dates.second_decimals("yyyy-mm-dd hh:mm:ss") == 0
    assert dates.second_decimals("0.0000") == 0


def test_unsupported_type_names_type_row_and_column() -> None:
    with pytest.raises(UnsupportedValueError, match=r"builtins\.complex.*row 9, column C"):
        encoder().cell(1j, 2, "9")
    with pytest.raises(TypeError):  # also a TypeError and a ValueError
        RowEncoder(encoder()).encode([1, 2, object()], "9")


def test_long_text_is_truncated_and_counted() -> None:
    cells = encoder()
    xml = cells.cell("x" * 40_000, 0, "2")
    assert xml == '<c r="A2" t="inlineStr"><is><t>' + "x" * 32_767 + "</t></is></c>"
    assert cells.stats.truncated_cells == 1
    cells.cell("x" * 32_767, 0, "3")
    assert cells.stats.truncated_cells == 1


@pytest.mark.parametrize(
    ("text", "kept_units"),
    [
        ("a" + "😀" * 20_000, 32_767),  # cut between two emoji: 1 + 2 * 16_383
        ("😀" * 20_000, 32_766),  # the 16,384th emoji would need units 32,767 and 32,768
        ("a" * 32_766 + "😀", 32_766),
        ("a" * 32_765 + "😀b", 32_767),
        ("a" * 32_766 + "\ud83d\ude00", 32_766),  # a pair as two code points stays whole
        ("😀" * 16_383 + "ab", 32_767),
    ],
)
def test_truncation_never_splits_a_character(text: str, kept_units: int) -> None:
    cut = escape.truncate_utf16(text)
    assert cut is not None
    assert text.startswith(cut)
    assert escape.utf16_units(cut) == kept_units
    assert not ("\ud800" <= cut[-1] <= "\udbff")


def test_text_within_limit_is_not_truncated() -> None:
    assert escape.truncate_utf16("😀" * 16_383 + "a") is None
    assert escape.truncate_utf16("a" * 32_767) is None
    assert escape.truncate_utf16("a" * 32_765 + "😀") is None


def test_serials_follow_excels_1900_calendar() -> None:
    assert dates.date_serial(dt.date(1899, 12, 30)) is None
    assert dates.date_serial(dt.date(1900, 1, 1)) == 1
    assert dates.date_serial(dt.date(1900, 2, 28)) == 59
    assert dates.date_serial(dt.date(1900, 3, 1)) == 61  # 60 is Excel's 1900-02-29
    # Every second of a day maps to a serial that reads back as exactly that second.
    for second in range(0, 86_400, 7):
        stamp = dt.datetime(2024, 1, 1) + dt.timedelta(seconds=second, microseconds=999_999)
        serial = dates.datetime_serial(stamp)
        assert serial is not None
        assert round((serial - 45292) * 86_400) == second
        assert int((serial - 45292) * 86_400 + 1e-6) == second


@pytest.mark.parametrize(
    ("styles", "decimals"), [([0, 0, 0, 0], None), ([5, 0, 6, 0], [3, 0, 0, 0])]
)
def test_compiled_rows_equal_reference_rows(styles: list[int], decimals: list[int] | None) -> None:
    rnd = random.Random(20240229)
    fast = RowEncoder(encoder(4, styles, decimals))
    slow = RowEncoder(encoder(4, styles, decimals))
    for r in range(3000):
        row = [random_value(rnd) for _ in range(rnd.randrange(0, 5))]
        assert fast.encode(row, str(r)) == slow.reference(row, str(r)), row


def test_escape_lookalike_round_trip_rules() -> None:
    assert escape.escape_text("_x005F_") == "_x005F_x005F_"
    assert escape.escape_text("__x0041__") == "__x005F_x0041__"
    # The underscore closing one lookalike opens the next: both are escaped.
    assert escape.escape_text("_x005F_x0041_") == "_x005F_x005F_x005F_x0041_"
    assert escape.is_plain("abc")
    assert escape.is_plain("a_b")
    assert not escape.is_plain("a_x0041_")
    assert not escape.is_plain(" a")


def test_past_the_shape_limit_rows_still_encode_the_same() -> None:
    rnd = random.Random(7)
    fast = RowEncoder(encoder(10))
    slow = RowEncoder(encoder(10))
    for r in range(2_000):  # 2**10 possible NULL patterns: far more than MAX_COMPILED_SHAPES
        row = [None if rnd.random() < 0.5 else i for i in range(10)]
        assert fast.encode(row, str(r)) == slow.reference(row, str(r))
    assert len(fast.compiled) == MAX_COMPILED_SHAPES


def test_past_the_compiled_column_budget_rows_still_encode_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(row_module, "MAX_COMPILED_COLUMNS", 25)  # two 10-column shapes
    fast = RowEncoder(encoder(10))
    slow = RowEncoder(encoder(10))
    for r, row in enumerate([[1] * 10, ["a"] * 10, [1.5] * 10, [None] + [2] * 9, [1] * 10]):
        assert fast.encode(row, str(r)) == slow.reference(row, str(r))
    assert len(fast.compiled) == 2
