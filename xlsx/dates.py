"""Dates and times as Excel serial numbers (1900 date system).

Excel counts days from 1899-12-31 = day 0 and believes 1900 was a leap year, so its fictitious
1900-02-29 is serial 60. From 1900-03-01 on, serial = days since 1899-12-30; from 1900-01-01 to
1900-02-28 it is days since 1899-12-31; earlier dates have no serial and are written as text.

Rules this writer follows (callers and tests rely on them):
- datetimes and times are written to the whole second, sub-second parts dropped (floor, as
  `isoformat(timespec="seconds")` does). The default formats show seconds and Excel *rounds* when it
  displays, so a serial holding 23:59:59.6 would show the next day; floored, it shows what the
  database holds. A column given its own number format keeps microseconds (its format decides).
- timezone-aware datetimes (SQL Server datetimeoffset) are converted to UTC and written as naive
  UTC; a serial has no timezone, and UTC keeps a column of mixed offsets sortable.
- aware times are shifted to UTC by their fixed offset (modulo one day); a tzinfo without a
  fixed offset is ignored.
"""

import datetime as dt
from typing import Final

# 1899-12-30 as a proleptic ordinal: serial = toordinal() - this, from 1900-03-01 on.
EPOCH_ORDINAL: Final = dt.date(1899, 12, 30).toordinal()
EPOCH: Final = dt.datetime(1899, 12, 30)
# Serial of 1900-03-01, the first day on which the simple rule above is right.
FIRST_EXACT_SERIAL: Final = 61
SECONDS_PER_DAY: Final = 86_400
ONE_SECOND: Final = dt.timedelta(seconds=1)
ONE_MICROSECOND: Final = dt.timedelta(microseconds=1)
# 1900-01-01 counted from 1899-12-30.
_FIRST_DAY: Final = 2


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


def datetime_serial(value: dt.datetime, *, keep_microseconds: bool = False) -> float | None:
    """Excel serial of a naive datetime, or None before 1900-01-01 (write it as text).

    The division is one correctly rounded int/int (or timedelta/timedelta) division, so the
    result is the double nearest the exact instant and readers recover the exact second.
    """
    day = date_serial(value)
    if day is None:
        return None
    midnight = dt.datetime.combine(value.date(), dt.time())
    of_day = value - midnight
    if keep_microseconds:
        micros = day * SECONDS_PER_DAY * 1_000_000 + of_day // ONE_MICROSECOND
        return micros / (SECONDS_PER_DAY * 1_000_000)
    return (day * SECONDS_PER_DAY + of_day // ONE_SECOND) / SECONDS_PER_DAY


def datetime_text(value: dt.datetime, *, keep_microseconds: bool = False) -> str:
    """How a naive datetime with no serial (before 1900) is written: ISO, like its format."""
    return value.isoformat(sep=" ", timespec="microseconds" if keep_microseconds else "seconds")


def time_serial(value: dt.time, *, keep_microseconds: bool = False) -> float:
    """Fraction of the day for `value` (aware times shifted to UTC, see the module notes)."""
    seconds = value.hour * 3600 + value.minute * 60 + value.second
    offset = value.utcoffset()
    if offset is not None:
        seconds = (seconds - offset // ONE_SECOND) % SECONDS_PER_DAY
    if keep_microseconds:
        return (seconds * 1_000_000 + value.microsecond) / (SECONDS_PER_DAY * 1_000_000)
    return seconds / SECONDS_PER_DAY
