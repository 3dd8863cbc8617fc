"""The report, defined once: the columns of ``dbo.spGenerateData`` and the value of every cell.

``sql/schema.sql`` computes the same values in T-SQL for a real SQL Server; the dev server
(``sql.devserver``) encodes them on the wire; tests compare what a client fetched with
:func:`row_values`.  Every formula is integer arithmetic on the 1-based row number ``n`` (modulo,
multiplication, a day or millisecond offset from a fixed date, a pick from a short list), so the
T-SQL can say exactly the same thing and floats are exact (an integer divided by 64).

Each column's value is first computed as a *raw integer* by :func:`raw_row` (the one place the
formulas live in Python); ``Column.to_python`` turns the raw integer into what pytds returns, and
the dev server's encoder turns it into wire bytes without building Python objects per cell.
NULLs depend only on ``n % NULL_PERIOD``: a column is NULL when that slot is in its
``null_slots`` (slot 0 makes every column but Id NULL, so one row in 16 is almost empty).
"""

from __future__ import annotations

import datetime
import decimal
from collections.abc import Callable
from dataclasses import dataclass

# @RowCount's upper bound.  Comfortably above Excel's 1,048,576 rows per sheet so that exports
# that must split into several sheets (or hit the API's own row limit) can be produced, yet
# bounded so a typo cannot start a billion-row stream.  ColVarchar zero-pads n to 8 digits,
# which holds every n up to this value, and n * 12345679 (ColDecimal) stays far inside BIGINT.
MAX_ROW_COUNT = 10_000_000

# NULL pattern period; the dev server precomputes one row encoder per slot.
NULL_PERIOD = 16

DATE_BASE = datetime.date(2020, 1, 1)
DATE_SPAN_DAYS = 3653  # ten years of dates, 2020-01-01 .. 2029-12-31
DATETIME_BASE = datetime.datetime(2024, 1, 1)
DATETIME_SPAN_DAYS = 1000
MS_PER_DAY = 86_400_000
FLOAT_DIVISOR = 64  # a power of two: raw / 64 is exact in binary floating point
DECIMAL_SCALE = 4
BIGINT_STEP = 9_007_199_254_740_993  # 2**53 + 1: the first integer a double cannot hold

# Non-ASCII text for ColNVarchar, picked by n % 8: accents, Greek, Cyrillic, CJK, symbols and
# a character outside the BMP (a UTF-16 surrogate pair on the wire).
NVARCHAR_VALUES: tuple[str, ...] = (
    "Zürich",
    "Kraków",
    "São Paulo",
    "Αθήνα",
    "Москва",
    "東京",
    "Straße ½ €",
    "Rakete 🚀",
)


# ColVarchar: ``Item-`` and n zero-padded to 8 digits (fixed width: 13 characters). A %-format
# so that the dev server can apply it to bytes (the wire's ASCII) without an encode per row.
VARCHAR_FORMAT = "Item-%08d"


def varchar_text(raw: int) -> str:
    """ColVarchar's text for raw value n (see VARCHAR_FORMAT)."""
    return VARCHAR_FORMAT % raw


def _decimal(raw: int) -> decimal.Decimal:
    return decimal.Decimal(raw).scaleb(-DECIMAL_SCALE)


def _date(raw: int) -> datetime.date:
    return DATE_BASE + datetime.timedelta(days=raw)


def _datetime(raw: int) -> datetime.datetime:
    return DATETIME_BASE + datetime.timedelta(milliseconds=raw)


def _float(raw: int) -> float:
    return raw / FLOAT_DIVISOR


@dataclass(frozen=True, slots=True)
class Column:
    """One result column: its name, its SQL Server type and how its raw integer reads back."""

    name: str
    sql_type: str
    null_slots: frozenset[int]
    to_python: Callable[[int], object]

    @property
    def nullable(self) -> bool:
        return bool(self.null_slots)


COLUMNS: tuple[Column, ...] = (
    Column("Id", "INT", frozenset(), int),
    Column("ColInt", "INT", frozenset({0, 3}), int),
    Column("ColBigInt", "BIGINT", frozenset({0, 5}), int),
    Column("ColDecimal", "DECIMAL(18,4)", frozenset({0, 7}), _decimal),
    Column("ColVarchar", "VARCHAR(100)", frozenset({0, 9}), varchar_text),
    Column("ColNVarchar", "NVARCHAR(100)", frozenset({0, 11}), NVARCHAR_VALUES.__getitem__),
    Column("ColDate", "DATE", frozenset({0, 12}), _date),
    Column("ColDateTime", "DATETIME2(3)", frozenset({0, 13}), _datetime),
    Column("ColBit", "BIT", frozenset({0, 14}), bool),
    Column("ColFloat", "FLOAT", frozenset({0, 15}), _float),
)

COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in COLUMNS)


def raw_row(n: int) -> tuple[int, ...]:
    """The raw integer of every column of row ``n``, NULLs ignored (see :func:`null_columns`).

    The T-SQL in schema.sql spells out the same formulas, column by column:
    Id, ColInt, ColBigInt (x 1e-4 for ColDecimal follows), ...
    """
    return (
        n,  # Id
        (n * 7919) % 100_000 - 50_000,  # ColInt
        BIGINT_STEP * (n % 3 - 1) + n,  # ColBigInt: around -2**53, 0 and +2**53
        (n * 12_345_679) % 1_000_000_000_000 - 500_000_000_000,  # ColDecimal x 10**4
        n,  # ColVarchar: Item-<n as 8 digits>
        n % 8,  # ColNVarchar: index into NVARCHAR_VALUES
        n % DATE_SPAN_DAYS,  # ColDate: days after DATE_BASE
        (n % DATETIME_SPAN_DAYS) * MS_PER_DAY + (n * 7777) % MS_PER_DAY,  # ColDateTime: ms
        n % 2,  # ColBit
        (n * 37) % 100_003 - 50_000,  # ColFloat x 64
    )


# For each slot of n % NULL_PERIOD, which column indexes are NULL.
NULL_COLUMNS: tuple[frozenset[int], ...] = tuple(
    frozenset(i for i, c in enumerate(COLUMNS) if slot in c.null_slots)
    for slot in range(NULL_PERIOD)
)


def null_columns(n: int) -> frozenset[int]:
    """Indexes of the columns that are NULL in row ``n``."""
    return NULL_COLUMNS[n % NULL_PERIOD]


def row_values(n: int) -> tuple[object, ...]:
    """The values pytds returns for row ``n`` (1-based), NULLs as None."""
    if n < 1:
        raise ValueError(f"row numbers start at 1, got {n}")
    nulls = null_columns(n)
    return tuple(
        None if i in nulls else col.to_python(raw)
        for i, (col, raw) in enumerate(zip(COLUMNS, raw_row(n), strict=True))
    )
