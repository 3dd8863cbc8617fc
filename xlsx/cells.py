"""Cell encoding: a table from value type to encoder, each returning one `<c>` element.

This is the reference encoder: every value goes through here unless the row compiler
(rows.py) has a fast path that produces the very same XML (tests compare the two).

Typing rules (see also dates.py):
- bool -> boolean cell; checked before int (bool is an int subclass).
- int -> number; beyond +/-(2**53 - 1) a double loses digits, so it becomes text with every digit.
- float -> number written with repr(), which round-trips exactly; NaN and +/-inf are not valid
  numbers in a cell, so they become the error cell #NUM! (visibly not a number, and what Excel
  itself shows for a numeric overflow).
- Decimal -> number, the double nearest its value: digits beyond what a double holds (about
  15-17 significant) are rounded, as Excel itself would. Exception, mirroring int: a Decimal with
  no fractional digits (numeric(p, 0), typical for identifiers) beyond +/-(2**53 - 1) becomes text
  with every digit. NaN and infinities -> #NUM!.
- str -> inline string (escape.py); UUID -> text; bytes/bytearray -> "0x" + hex text.
- date / datetime / time -> serial number with a date, datetime or time format.
- None -> no cell at all. Anything else -> UnsupportedValueError.
"""

import datetime as dt
import decimal
import math
import uuid
from collections.abc import Callable, Sequence
from typing import Final

from xlsx import dates, escape, meanings, styles
from xlsx.errors import UnsupportedValueError
from xlsx.spec import IntMeaning, WriteStats

# Largest integer a double holds exactly (IEEE 754 binary64: 53-bit significand).
MAX_EXACT_INT: Final = 2**53 - 1
NUM_ERROR: Final = "#NUM!"

Encoder = Callable[["CellEncoder", object, int, str], str]


# A cell's markup: ``CELL_OPEN``, the reference (``A2``), the markup that opens the value (its
# type and style), the value, the markup that closes it. Written here, spelled into the
# generated row code (rows.py) and given to the compiled writer's plan (native.py): one
# definition for the three.
CELL_OPEN: Final = '<c r="'
BOOL_OPEN: Final = '" t="b"><v>'
ERROR_OPEN: Final = '" t="e"><v>'
NUMBER_CLOSE: Final = "</v></c>"  # also of bool and error cells
TEXT_CLOSE: Final = "</t></is></c>"


def number_open(style: int) -> str:
    """The markup between a number cell's reference and its value (style 0: none)."""
    return f'" s="{style}"><v>' if style else '"><v>'


def text_open(style: int = 0, *, preserve: bool = False) -> str:
    """The markup between an inline text cell's reference and its text."""
    s = f' s="{style}"' if style else ""
    space = ' xml:space="preserve"' if preserve else ""
    return f'"{s} t="inlineStr"><is><t{space}>'


TEXT_OPEN: Final = text_open()  # no style, no whitespace to keep


def number_xml(ref: str, text: str, style: int) -> str:
    return f"{CELL_OPEN}{ref}{number_open(style)}{text}{NUMBER_CLOSE}"


def error_xml(ref: str, code: str = NUM_ERROR) -> str:
    return f"{CELL_OPEN}{ref}{ERROR_OPEN}{code}{NUMBER_CLOSE}"


def bool_xml(ref: str, value: bool) -> str:
    return f"{CELL_OPEN}{ref}{BOOL_OPEN}{1 if value else 0}{NUMBER_CLOSE}"


def plain_text_xml(ref: str, text: str, style: int = 0) -> str:
    """A text cell whose text needs no escaping (see escape.is_plain)."""
    return f"{CELL_OPEN}{ref}{text_open(style)}{text}{TEXT_CLOSE}"


class CellEncoder:
    """Encodes single cells; counts truncated texts. One per stream (not thread-safe)."""

    def __init__(
        self,
        letters: Sequence[str],
        column_styles: Sequence[int],
        stats: WriteStats,
        column_decimals: Sequence[int] | None = None,
        column_ints: Sequence[IntMeaning | None] | None = None,
    ) -> None:
        self.letters = letters
        # Style per column for numeric cells; 0 = none given (dates then get their default).
        self.column_styles = column_styles
        # Decimals of a second kept in datetime/time serials per column (see dates.py).
        self.column_decimals = column_decimals or [0] * len(letters)
        # What an int stands for per column (Column.ints); None: a number.
        self.column_ints = column_ints or [None] * len(letters)
        self.stats = stats  # truncated_cells is counted here, live
        self._resolved: dict[type, Encoder | None] = dict(_ENCODERS)

    def cell(self, value: object, col: int, rs: str) -> str:
        """The `<c>` element for `value` in column `col` (0-based) of row `rs`; "" for None."""
        kind = type(value)
        encoder = self._resolved.get(kind)
        if encoder is None and kind not in self._resolved:
            encoder = self._resolved[kind] = _lookup(kind)  # a subclass, or unsupported (None)
        if encoder is None:
            raise UnsupportedValueError(
                f"cannot write a value of type {kind.__module__}.{kind.__qualname__} "
                f"(row {rs}, column {self.letters[col]}); convert it to a supported type first"
            )
        return encoder(self, value, col, self.letters[col] + rs)

    def text(self, ref: str, value: str, style: int = 0) -> str:
        """Any text cell: truncated to Excel's limit (counted), escaped, preserved."""
        cut = escape.truncate_utf16(value)
        if cut is not None:
            self.stats.truncated_cells += 1
            value = cut
        opening = text_open(style, preserve=escape.needs_preserve(value))
        return f"{CELL_OPEN}{ref}{opening}{escape.escape_text(value)}{TEXT_CLOSE}"


def _none(self: CellEncoder, value: object, col: int, ref: str) -> str:
    return ""


def _bool(self: CellEncoder, value: object, col: int, ref: str) -> str:
    return bool_xml(ref, bool(value))


def _int(self: CellEncoder, value: object, col: int, ref: str) -> str:
    assert isinstance(value, int)
    meaning = self.column_ints[col]
    if meaning is not None:
        stands_for = meanings.value_of(meaning, value)
        return _ENCODERS[type(stands_for)](self, stands_for, col, ref)  # type: ignore[misc]
    text = int.__repr__(value)
    if -MAX_EXACT_INT <= value <= MAX_EXACT_INT:
        return number_xml(ref, text, self.column_styles[col])
    return self.text(ref, text)


def _float(self: CellEncoder, value: object, col: int, ref: str) -> str:
    assert isinstance(value, float)
    if math.isfinite(value):
        return number_xml(ref, float.__repr__(value), self.column_styles[col])
    return error_xml(ref)


def _decimal(self: CellEncoder, value: object, col: int, ref: str) -> str:
    assert isinstance(value, decimal.Decimal)
    style = self.column_styles[col]
    if not value.is_finite():
        return error_xml(ref)
    exponent = value.as_tuple().exponent
    assert isinstance(exponent, int)  # finite Decimals have an int exponent
    if exponent >= 0 and not -MAX_EXACT_INT <= value <= MAX_EXACT_INT:
        return self.text(ref, format(value, "f"))
    text = decimal.Decimal.__str__(value)
    if len(text) < 16 and "E" not in text:
        # At most 15 significant digits in plain notation: every reader's correctly rounded
        # parse gives float(value), so write it as it is (faster, and how a person reads it).
        return number_xml(ref, text, style)
    number = float(value)
    if not math.isfinite(number):
        return error_xml(ref)
    return number_xml(ref, repr(number), style)


def _datetime(self: CellEncoder, value: object, col: int, ref: str) -> str:
    assert isinstance(value, dt.datetime)
    style, decimals = self.column_styles[col], self.column_decimals[col]
    try:
        naive = dates.to_naive_utc(value)
    except OverflowError:  # an aware instant at the very ends of the calendar: keep it as text
        return self.text(ref, value.isoformat(sep=" "))
    serial = dates.datetime_serial(naive, decimals=decimals)
    if serial is None:
        return self.text(ref, dates.datetime_text(naive, decimals=decimals))
    return number_xml(ref, repr(serial), style or styles.STYLE_DATETIME)


def _date(self: CellEncoder, value: object, col: int, ref: str) -> str:
    assert isinstance(value, dt.date)
    serial = dates.date_serial(value)
    if serial is None:
        return self.text(ref, value.isoformat())
    return number_xml(ref, str(serial), self.column_styles[col] or styles.STYLE_DATE)


def _time(self: CellEncoder, value: object, col: int, ref: str) -> str:
    assert isinstance(value, dt.time)
    serial = dates.time_serial(value, decimals=self.column_decimals[col])
    return number_xml(ref, repr(serial), self.column_styles[col] or styles.STYLE_TIME)


def _str(self: CellEncoder, value: object, col: int, ref: str) -> str:
    assert isinstance(value, str)
    return self.text(ref, str.__str__(value))


def _uuid(self: CellEncoder, value: object, col: int, ref: str) -> str:
    assert isinstance(value, uuid.UUID)
    return plain_text_xml(ref, uuid.UUID.__str__(value))


def _bytes(self: CellEncoder, value: object, col: int, ref: str) -> str:
    assert isinstance(value, bytes | bytearray)
    return self.text(ref, "0x" + value.hex())


# The type table. Subclasses (IntEnum, numpy.float64, pandas.Timestamp...) resolve through their
# MRO to the nearest entry; datetime precedes date because datetime subclasses date.
_ENCODERS: Final[dict[type, Encoder | None]] = {
    type(None): _none,
    bool: _bool,
    int: _int,
    float: _float,
    decimal.Decimal: _decimal,
    str: _str,
    dt.datetime: _datetime,
    dt.date: _date,
    dt.time: _time,
    uuid.UUID: _uuid,
    bytes: _bytes,
    bytearray: _bytes,
}


def _lookup(kind: type) -> Encoder | None:
    for base in kind.__mro__:
        if base in _ENCODERS:
            return _ENCODERS[base]
    return None
