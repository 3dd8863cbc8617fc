"""The export's query string, validated: pure, no HTTP.

``rowCount`` is its only parameter. Any other name (``rowcount``, ``rowCount[]``, ``rows``) is
refused with ``UNKNOWN_PARAMETER`` rather than ignored: a misspelt parameter would otherwise
give the default 30,000 rows without a word.

``rowCount`` accepted: absent (-> the default), or present exactly once as ASCII digits
``0-9`` only, whose value is between 1 and the maximum. Rejected: an empty value, signs
(``+5``, ``-5``), spaces, decimals, exponents, hex, non-ASCII digits (``١٢``, ``１２``),
numbers above the maximum however long, and the parameter given twice (which of the two a
proxy or a cache would have looked at is anyone's guess).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from server.errors import InvalidRowCount, UnknownParameter

PARAMETER = "rowCount"
ACCEPTED = (PARAMETER,)
_ASCII_DIGITS = frozenset("0123456789")


def reject_unknown(names: Iterable[str]) -> None:
    """Raise :class:`UnknownParameter` unless every name is one the export accepts. The
    message lists what is accepted and does not repeat the client's name back."""
    if any(name not in ACCEPTED for name in names):
        raise UnknownParameter(
            "unknown query parameter; the accepted parameters are: "
            + ", ".join(ACCEPTED)
            + " (names are case-sensitive)"
        )


def parse_row_count(values: Sequence[str], *, default: int, maximum: int) -> int:
    """The row count asked for by a query string's ``rowCount`` values (in order of appearance)."""
    if not values:
        return default
    if len(values) > 1:
        raise InvalidRowCount(f"{PARAMETER} must be given at most once")
    text = values[0]
    expected = f"{PARAMETER} must be a whole number from 1 to {maximum:,}"
    # str.isdigit() is True for Arabic-Indic, full-width and superscript digits; a set of the
    # ten ASCII digits is not.
    if not text or not _ASCII_DIGITS.issuperset(text):
        raise InvalidRowCount(expected)
    # Compare lengths before converting: "9" * 100_000 is rejected without building the integer
    # (and without hitting Python's int-from-str digit limit).
    significant = text.lstrip("0")
    if len(significant) > len(str(maximum)):
        raise InvalidRowCount(expected)
    value = int(significant or "0")
    if not 1 <= value <= maximum:
        raise InvalidRowCount(expected)
    return value
