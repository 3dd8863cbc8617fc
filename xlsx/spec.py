"""Small public data types: the optional column spec and the live write statistics."""

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class ScaledDecimal:
    """An int in the column stands for the decimal number ``int / 10**scale``.

    Written exactly as the ``Decimal`` of that value with no trailing fractional zeros would be
    (``123450 / 10**4`` is written like ``Decimal("12.345")``).
    """

    scale: int


@dataclass(frozen=True)
class DayCount:
    """An int in the column stands for the date that many days after ``origin``."""

    origin: dt.date


@dataclass(frozen=True)
class TickCount:
    """An int in the column stands for the datetime that many ``1/per_second`` s after
    midnight of ``origin`` (floored to microseconds, as a ``datetime`` holds them)."""

    per_second: int
    origin: dt.date


# What an int in a column stands for, when a source hands over numbers it has not turned into
# Decimal/date/datetime objects (building those costs more than writing them).
IntMeaning = ScaledDecimal | DayCount | TickCount


@dataclass
class Column:
    """Optional per-column settings; None leaves the writer's default."""

    # Width in Excel's character units (0-255); default: from the header and the first row.
    width: float | None = None
    # Number format for numeric and date cells of the column (e.g. "#,##0.00", "dd/mm/yyyy hh:mm").
    # Datetimes and times are floored to the fraction of a second the format shows ("ss.000").
    number_format: str | None = None
    # What an int in this column stands for; None: an int is a number. Other types (and None)
    # are written as usual, so a source can still hand over objects for unusual values.
    ints: IntMeaning | None = None


@dataclass
class WriteStats:
    """Counters updated while the generator runs, so a caller can log progress and truncations."""

    rows: int = 0  # data rows handed to the compressor (header rows not counted)
    sheets: int = 0  # sheets started
    truncated_cells: int = 0  # texts cut to Excel's 32,767 UTF-16 units
    bytes_out: int = 0  # bytes of .xlsx yielded so far
