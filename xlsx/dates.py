"""Dates and times as Excel serial numbers (1900 date system).

Excel counts days from 1899-12-31 = day 0 and believes 1900 was a leap year, so its fictitious
1900-02-29 is serial 60. From 1900-03-01 on, serial = days since 1899-12-30; from 1900-01-01 to
1900-02-28 it is days since 1899-12-31; earlier dates have no serial and are written as text.

Rules this writer follows (callers and tests rely on them):
- datetimes and times are floored to the precision their format shows: whole seconds for the
  default formats (as `isoformat(timespec="seconds")` does), or the decimals of a column's own
  format (`ss.000` keeps milliseconds). Excel *rounds* when it displays, so a serial holding
  23:59:59.6 shown as hh:mm:ss would read as the next day; floored, it shows what the database
  holds, truncated the way SQL Server and Python truncate.
- timezone-aware datetimes (SQL Server datetimeoffset) are converted to UTC and written as naive
  UTC; a serial has no timezone, and UTC keeps a column of mixed offsets sortable.
- aware times are shifted to UTC by their fixed offset (modulo one day); a tzinfo without a
  fixed offset is ignored.
"""

import datetime as dt
import re
from typing import Final

# 1899-12-30 as a proleptic ordinal: serial = toordinal() - this, from 1900-03-01 on.
EPOCH_ORDINAL: Final = dt.date(1899, 12, 30).toordinal()
EPOCH: Final = dt.datetime(1899, 12, 30)
# Serial of 1900-03-01, the first day on which the simple rule above is right.
FIRST_EXACT_SERIAL: Final = 61
# Serial of 9999-12-31, the last day Excel (and Python's date) can hold.
LAST_SERIAL: Final = dt.date.max.toordinal() - EPOCH_ORDINAL
SECONDS_PER_DAY: Final = 86_400
ONE_SECOND: Final = dt.timedelta(seconds=1)
# 1900-01-01 counted from 1899-12-30.
_FIRST_DAY: Final = 2
# The fraction of a second in a number format: the zeros after "s." (ss.000, s.00).
_SECOND_FRACTION: Final = re.compile(r"[sS]\.(0+)")


def date_serial(value: dt.date) -> int | None:
    """Excel serial day of `value`, or None before 1900-01-01 (write it as text)."""
    serial = value.toordinal() - EPOCH_ORDINAL
    if serial >= FIRST_EXACT_SERIAL:
        return serial
    if serial >= _FIRST_DAY:
        return serial - 1  # Excel's phantom 1900-02-29 is not before these dates
    return None


def to_naive_utc(value: dt.datetime) -> dt.datetime:
    """`value` itself if naive, else the same instant as naive UTC."""
    offset = value.utcoffset()
    if offset is None:
        return value.replace(tzinfo=None) if value.tzinfo is not None else value
    return value.replace(tzinfo=None) - offset


def second_decimals(number_format: str) -> int:
    """Decimals of a second a format shows: "hh:mm:ss.000" -> 3; none -> 0 (at most 6)."""
    match = _SECOND_FRACTION.search(number_format)
    return min(len(match[1]), 6) if match else 0


def datetime_serial(value: dt.datetime, *, decimals: int = 0) -> float | None:
    """Excel serial of a naive datetime floored to `decimals` of a second, or None before 1900.

    The division is one correctly rounded int/int division, so the result is the double nearest
    the floored instant and readers recover it exactly.
    """
    day = date_serial(value)
    if day is None:
        return None
    midnight = dt.datetime.combine(value.date(), dt.time())
    per_second: int = 10**decimals
    ticks = (value - midnight) // dt.timedelta(microseconds=1_000_000 // per_second)
    return (day * SECONDS_PER_DAY * per_second + ticks) / (SECONDS_PER_DAY * per_second)


def datetime_text(value: dt.datetime, *, decimals: int = 0) -> str:
    """How a naive datetime with no serial (before 1900) is written: ISO, like its format."""
    text = value.isoformat(sep=" ", timespec="seconds" if not decimals else "microseconds")
    return text[: len(text) - 6 + decimals] if decimals else text


def time_serial(value: dt.time, *, decimals: int = 0) -> float:
    """Fraction of the day for `value` floored to `decimals` of a second (aware: see above)."""
    seconds = value.hour * 3600 + value.minute * 60 + value.second
    offset = value.utcoffset()
    if offset is not None:
        seconds = (seconds - offset // ONE_SECOND) % SECONDS_PER_DAY
    per_second: int = 10**decimals
    ticks = seconds * per_second + value.microsecond * per_second // 1_000_000
    return ticks / (SECONDS_PER_DAY * per_second)
