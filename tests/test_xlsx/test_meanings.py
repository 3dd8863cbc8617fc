"""Ints that stand for other values (Column.ints): each cell is exactly the one written for
the value the int stands for, through the compiled row code and through the reference encoder.
"""

from __future__ import annotations

import datetime as dt
import decimal
import random

import pytest

import xlsx
from xlsx import meanings
from xlsx.cells import CellEncoder
from xlsx.rows import RowEncoder
from xlsx.spec import WriteStats

ORIGIN = dt.date(1, 1, 1)  # TDS's day 0


def encoders(
    meaning: xlsx.IntMeaning, number_format: str | None = None
) -> tuple[RowEncoder, RowEncoder]:
    """(encoder told what the ints mean, encoder of plain values), same style and format."""
    style = [5 if number_format else 0]
    from xlsx.dates import second_decimals

    decimals = [second_decimals(number_format) if number_format else 0]
    told = RowEncoder(CellEncoder(["A"], style, WriteStats(), decimals, [meaning]))
    plain = RowEncoder(CellEncoder(["A"], style, WriteStats(), decimals, [None]))
    return told, plain


def assert_same_cells(
    meaning: xlsx.IntMeaning, ints: list[int], number_format: str | None = None
) -> None:
    told, plain = encoders(meaning, number_format)
    for n in ints:
        expected = plain.encode((meanings.value_of(meaning, n),), "7")
        assert told.encode((n,), "7") == expected, n  # compiled row code
        assert told.reference((n,), "7") == expected, n  # per-cell reference encoder


def scaled_samples(scale: int) -> list[int]:
    rng = random.Random(scale)
    edges = [
        0,
        1,
        -1,
        10**scale,
        -(10**scale),
        2**53 - 1,
        -(2**53 - 1),
        2**53,
        -(2**53),
        10**38 - 1,
    ]
    edges += [10**k * 10**scale for k in range(14, 17)] + [
        -(10**k) * 10**scale for k in range(13, 17)
    ]
    return edges + [
        rng.randint(-(10**digits), 10**digits) for digits in range(1, 20) for _ in range(60)
    ]


@pytest.mark.parametrize("scale", range(11))
def test_scaled_decimals_are_written_as_the_decimal_they_stand_for(scale: int) -> None:
    assert meanings.value_of(xlsx.ScaledDecimal(2), 12345) == decimal.Decimal("123.45")
    assert str(meanings.value_of(xlsx.ScaledDecimal(4), 50000)) == "5"  # no trailing zeros
    assert_same_cells(xlsx.ScaledDecimal(scale), scaled_samples(scale))
    assert_same_cells(xlsx.ScaledDecimal(scale), scaled_samples(scale), "0.0000")


def test_day_counts_are_written_as_dates() -> None:
    first = dt.date(1900, 3, 1).toordinal() - 1
    days = [
        0,
        693594,
        693595,
        693652,
        first - 1,
        first,
        first + 1,
        738000,
        dt.date.max.toordinal() - 1,
    ]
    assert_same_cells(xlsx.DayCount(ORIGIN), days)
    assert_same_cells(xlsx.DayCount(dt.date(1900, 1, 1)), [0, 59, 60, 61, 45000])


@pytest.mark.parametrize("per_second", [1, 10, 1000, 10**6, 10**7])
@pytest.mark.parametrize("number_format", [None, "yyyy-mm-dd hh:mm:ss.000", "hh:mm:ss.0"])
def test_tick_counts_are_written_as_datetimes(per_second: int, number_format: str | None) -> None:
    rng = random.Random(per_second)
    day = 86_400 * per_second
    start_1900 = (dt.date(1900, 3, 1).toordinal() - 1) * day
    ticks = [0, start_1900 - 1, start_1900, start_1900 + 1, 3_652_058 * day + day - 1]
    ticks += [rng.randrange(0, 3_652_059 * day) for _ in range(400)]
    assert_same_cells(xlsx.TickCount(per_second, ORIGIN), ticks, number_format)


def test_other_values_in_a_column_of_meaning_are_written_as_themselves() -> None:
    told, plain = encoders(xlsx.DayCount(ORIGIN))
    for value in (dt.date(2024, 1, 2), "text", 1.5, None, decimal.Decimal("-0")):
        assert told.encode((value,), "3") == plain.encode((value,), "3")


def test_a_workbook_of_ints_is_the_workbook_of_the_values() -> None:
    rows = [(n * 125, 738000 + n, (738000 + n) * 86_400_000 + n * 7777) for n in range(500)]
    spec = [
        xlsx.Column(width=12, ints=xlsx.ScaledDecimal(4)),
        xlsx.Column(width=12, ints=xlsx.DayCount(ORIGIN)),
        xlsx.Column(
            width=20, number_format="yyyy-mm-dd hh:mm:ss.000", ints=xlsx.TickCount(1000, ORIGIN)
        ),
    ]
    plain_spec = [xlsx.Column(width=c.width, number_format=c.number_format) for c in spec]
    values = [
        tuple(meanings.value_of(m.ints, v) for m, v in zip(spec, row, strict=True))  # type: ignore[arg-type]
        for row in rows
    ]
    moment = dt.datetime(2024, 1, 1)
    got = b"".join(xlsx.stream_xlsx(["a", "b", "c"], rows, columns=spec, modified_at=moment))
    expected = b"".join(
        xlsx.stream_xlsx(["a", "b", "c"], values, columns=plain_spec, modified_at=moment)
    )
    assert got == expected
