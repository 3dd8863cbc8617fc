"""Python values from wire primitives, exactly as pytds builds them, but cheaper.

Each function here takes the integers a struct unpack gives and returns the value pytds'
own decoding returns for the same bytes (the differential tests hold the two equal). Where
pytds fails on data SQL Server can legitimately send, the fast path returns a value instead
(documented in ``docs/row-path.md``): NVARCHAR with lone surrogates (kept as surrogate code
points, which the writer escapes), and single-byte code pages with unassigned bytes (decoded as
the C1 control of the same number, as Windows does).

"Raw" forms are the integers the export's writer accepts in place of objects: a decimal as its
scaled integer, a date as days since 0001-01-01, a datetime2 as ticks since 0001-01-01, a
datetime or smalldatetime as milliseconds since 1900-01-01 (:data:`RAW_KINDS`).
"""

from __future__ import annotations

import codecs
import datetime as dt
import decimal
import functools
import itertools
import uuid
from collections.abc import Callable
from typing import Final

from tdsrows.layout import Kind

# The kinds whose values have a raw form, and what the int is: DECIMAL and MONEY the scaled
# integer (value * 10**scale; money's scale is MONEY_SCALE), DATE the days since DAY_ZERO,
# DATETIME2 the 10**-scale second ticks since DAY_ZERO 00:00 (MS-TDS 2.2.5.5.1.8), DATETIME and
# SMALLDATETIME the milliseconds (DATETIME_TICKS_PER_SECOND) since DATETIME_DAY_ZERO 00:00
# (datetime_raw, smalldatetime_raw). Every decoder takes the subset it is asked for; the
# compiled scanner reads these kinds only in their raw form.
RAW_KINDS: Final = frozenset(
    {Kind.DECIMAL, Kind.MONEY, Kind.DATE, Kind.DATETIME2, Kind.DATETIME, Kind.SMALLDATETIME}
)
# money and smallmoney count ten-thousandths (MS-TDS 2.2.5.5.1.4).
MONEY_SCALE: Final = 4
# Day 0 of DATE and DATETIME2 values (MS-TDS 2.2.5.5.1.8), and of DATETIME and SMALLDATETIME.
DAY_ZERO: Final = dt.date(1, 1, 1)
DATETIME_DAY_ZERO: Final = dt.date(1900, 1, 1)
DATETIME_TICKS_PER_SECOND: Final = 1000

# pytds divides decimals in a 38-digit context (SQL Server's maximum precision), so every
# decimal(p, s) value is exact.
DECIMAL_CONTEXT: Final = decimal.Context(prec=38)
POWERS_OF_TEN: Final = tuple(10**k for k in range(39))
NEGATIVE_ZERO: Final = decimal.Decimal("-0")
_divide = DECIMAL_CONTEXT.divide
_Decimal = decimal.Decimal

_DATETIME_1900: Final = dt.datetime.combine(DATETIME_DAY_ZERO, dt.time())
_MONEY_UNIT: Final = 10**MONEY_SCALE
_timedelta = dt.timedelta
_datetime = dt.datetime
_time = dt.time
_date_fromordinal = dt.date.fromordinal
SECONDS_PER_DAY: Final = 86_400
TICKS_PER_SECOND: Final = tuple(10**s for s in range(8))  # time(s): 10**-s second units

# Days -> (year, month, day) is memoised: a report's dates repeat. Bounded, so a result set
# spanning every day of the calendar (3.65M) cannot grow it past a few MiB.
_MAX_MEMO_DAYS: Final = 65_536
_ymd_memo: dict[int, tuple[int, int, int]] = {}
# Second of the day -> (hour, minute, second), precomputed: 86,400 small tuples (~7 MiB with
# their ints shared; built once per process on first use).
_hms: list[tuple[int, int, int]] = []


def _hms_table() -> list[tuple[int, int, int]]:
    if not _hms:
        _hms.extend((s // 3600, s // 60 % 60, s % 60) for s in range(SECONDS_PER_DAY))
    return _hms


def _ymd(days: int) -> tuple[int, int, int]:
    """(year, month, day) of ``days`` since 0001-01-01."""
    ymd = _ymd_memo.get(days)
    if ymd is None:
        d = _date_fromordinal(days + 1)
        ymd = (d.year, d.month, d.day)
        if len(_ymd_memo) < _MAX_MEMO_DAYS:
            _ymd_memo[days] = ymd
    return ymd


def decimal_value(positive: int, magnitude: int, scale: int) -> decimal.Decimal:
    """pytds: ``Decimal(magnitude)``, negated unless ``positive``, divided by 10**scale."""
    if positive:
        value = _Decimal(magnitude)
    elif magnitude:
        value = _Decimal(-magnitude)
    else:
        value = NEGATIVE_ZERO
    if scale:
        return _divide(value, POWERS_OF_TEN[scale])
    return value


def decimal_raw(positive: int, magnitude: int, scale: int) -> int | decimal.Decimal:
    """The scaled integer (``value * 10**scale``); negative zero stays the Decimal pytds gives."""
    if positive:
        return magnitude
    if magnitude:
        return -magnitude
    return NEGATIVE_ZERO


def money_value(amount: int) -> decimal.Decimal:
    """pytds: ``Decimal(amount) / 10000`` (exact: money has at most 19 digits)."""
    return _divide(_Decimal(amount), _MONEY_UNIT)


def date_value(days: int) -> dt.date:
    return _date_fromordinal(days + 1)


def time_value(ticks: int, scale: int) -> dt.time:
    """pytds: the 10**-scale second count to 100 ns, then truncated to microseconds."""
    micro = ticks * 10 ** (7 - scale) // 10
    seconds, micro = divmod(micro, 1_000_000)
    h, m, s = _hms_table()[seconds]
    return _time(h, m, s, micro)


def datetime2_value(days: int, ticks: int, scale: int) -> dt.datetime:
    micro = ticks * 10 ** (7 - scale) // 10
    seconds, micro = divmod(micro, 1_000_000)
    h, m, s = _hms_table()[seconds]
    y, mo, d = _ymd(days)
    return _datetime(y, mo, d, h, m, s, micro)


def datetime2_raw(days: int, ticks: int, scale: int) -> int:
    """Ticks of 10**-scale second since 0001-01-01 00:00."""
    per_day: int = SECONDS_PER_DAY * TICKS_PER_SECOND[scale]
    return days * per_day + ticks


def datetime_value(days: int, three_hundredths: int) -> dt.datetime:
    """pytds: whole seconds plus milliseconds rounded from 1/300 s (its own formula)."""
    ms = round(three_hundredths % 300 * 10 / 3.0)
    return _DATETIME_1900 + _timedelta(days=days, seconds=three_hundredths // 300, milliseconds=ms)


def smalldatetime_value(days: int, minutes: int) -> dt.datetime:
    return _DATETIME_1900 + _timedelta(days=days, minutes=minutes)


_MS_PER_DAY: Final = 86_400_000
_MS_PER_MINUTE: Final = 60_000


def datetime_raw(days: int, three_hundredths: int) -> int:
    """Milliseconds since 1900-01-01 00:00 of the datetime :func:`datetime_value` builds: the
    1/300 s rounded to ms as pytds rounds them (``x * 10 / 3`` is never halfway, so
    ``round`` is ``(x * 10 + 1) // 3``)."""
    return (
        days * _MS_PER_DAY + three_hundredths // 300 * 1000 + (three_hundredths % 300 * 10 + 1) // 3
    )


def smalldatetime_raw(days: int, minutes: int) -> int:
    """Milliseconds since 1900-01-01 00:00 of the datetime :func:`smalldatetime_value` builds."""
    return days * _MS_PER_DAY + minutes * _MS_PER_MINUTE


def guid_value(data: bytes) -> uuid.UUID:
    return uuid.UUID(bytes_le=data)


def _c1_for_unassigned(error: UnicodeError) -> tuple[str, int]:
    """Decode error handler: an unassigned byte becomes the code point of the same number.

    cp1252 leaves 0x81, 0x8D, 0x8F, 0x90 and 0x9D unassigned in Python's table, while Windows
    (and so SQL Server's clients) map them to U+0081... A VARCHAR holding one must not end the
    export.
    """
    if not isinstance(error, UnicodeDecodeError):
        raise error
    return "".join(map(chr, error.object[error.start : error.end])), error.end


_ERRORS_HANDLER: Final = "tdsrows-c1"
codecs.register_error(_ERRORS_HANDLER, _c1_for_unassigned)


def text_decoder(codec: str) -> Callable[[bytes], str]:
    """bytes -> str for a single- or multi-byte code page: ASCII without a codec lookup."""
    decode = codecs.lookup(codec).decode

    def decode_text(data: bytes) -> str:
        if data.isascii():
            return data.decode("ascii")
        return decode(data, _ERRORS_HANDLER)[0]

    return decode_text


@functools.lru_cache(maxsize=64)
def byte_table(codec: str) -> str | None:
    """The character each byte stands for in ``codec``, as :func:`text_decoder` decodes it (a
    str of 256), when the code page is single-byte: every byte one character, and all 65,536
    pairs of bytes, one after the other, decoded in one call as their two characters each (a
    lead byte of a multi-byte character would make one character of two). None for a code
    page of multi-byte characters (the CJK ones, UTF-8). A few ms, once per code page."""
    decode = text_decoder(codec)
    try:
        chars = [decode(bytes((b,))) for b in range(_BYTE_VALUES)]
        if any(len(c) != 1 for c in chars):
            return None
        table = "".join(chars)
        pairs = _all_pairs()
        expected = pairs.decode("latin-1").translate(str.maketrans(_LATIN_1, table))
        if decode(pairs) != expected:
            return None
    except UnicodeDecodeError:
        return None
    return table


@functools.cache
def _all_pairs() -> bytes:
    """Every pair of bytes, one after the other (128 KiB)."""
    return bytes(itertools.chain.from_iterable(itertools.product(range(_BYTE_VALUES), repeat=2)))


_BYTE_VALUES: Final = 256
_LATIN_1: Final = bytes(range(_BYTE_VALUES)).decode("latin-1")  # byte b as the character b
_utf16_decode = codecs.utf_16_le_decode


def ntext_value(data: bytes) -> str:
    """UTF-16LE of an even number of bytes, lone surrogates kept (pytds raises on them), the
    last unit too (decoded as final: not left out as the start of a pair still to come)."""
    return _utf16_decode(data, "surrogatepass", True)[0]
