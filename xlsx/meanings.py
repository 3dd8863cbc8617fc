"""Ints that stand for other values (``Column.ints``): their values, and their cells' text.

The reference encoder turns such an int into the value it stands for and writes that
(:func:`value_of`); the row compiler writes the common cases straight from the int
(:func:`scaled_text` here, day and tick arithmetic in rows.py), and tests hold the two equal.
"""

import datetime as dt
import decimal
from typing import Final

from xlsx.spec import DayCount, IntMeaning, ScaledDecimal, TickCount

_MICROSECONDS_PER_SECOND: Final = 1_000_000
# Decimal's str() switches to exponent notation below 1E-6 (adjusted exponent < -6).
_MAX_PLAIN_LEADING_ZEROS: Final = 5
# The Decimal encoder writes its str() when it has fewer than 16 characters (cells.py).
_MAX_PLAIN_LENGTH: Final = 15


def value_of(meaning: IntMeaning, n: int) -> object:
    """The value ``n`` stands for."""
    if isinstance(meaning, ScaledDecimal):
        # Exact: a context with room for every digit (SQL Server's decimals have up to 38).
        context = decimal.Context(prec=max(38, len(str(abs(n))) + 1))
        return context.divide(decimal.Decimal(n), 10**meaning.scale)
    if isinstance(meaning, DayCount):
        return dt.date.fromordinal(meaning.origin.toordinal() + n)
    if isinstance(meaning, TickCount):
        micro = n * _MICROSECONDS_PER_SECOND // meaning.per_second
        return dt.datetime.combine(meaning.origin, dt.time()) + dt.timedelta(microseconds=micro)
    raise TypeError(f"not an int meaning: {meaning!r}")


def scaled_text(n: int, scale: int) -> str | None:
    """What the Decimal encoder writes for ``n / 10**scale`` if it is plain text, else None.

    That text is the Decimal's str() without trailing fractional zeros (``value_of`` gives such
    Decimals), used when it is plain notation of fewer than 16 characters.
    """
    magnitude = -n if n < 0 else n
    whole, fraction = divmod(magnitude, 10**scale)
    if fraction:
        digits = str(fraction)
        leading = scale - len(digits)
        if not whole and leading > _MAX_PLAIN_LEADING_ZEROS:
            return None
        text = f"{whole}.{'0' * leading}{digits.rstrip('0')}"
    else:
        text = str(whole)
    if n < 0:
        text = "-" + text
    return text if len(text) <= _MAX_PLAIN_LENGTH else None
