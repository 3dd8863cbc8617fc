"""The types a report's parameters can have: how a query-string value is read, checked against
the parameter's bounds, described to the page, and bound to the procedure. Pure: no HTTP, no
driver.

Each type is one :class:`ParamType` in :data:`TYPES` (one table for the catalog loader, the
query parser and ``/reports``). Query values are read strictly, the same way for every client:

- ``int``/``bigint``: ASCII digits with an optional leading ``-`` (no ``+``, spaces, exponents,
  hex, or digits of other scripts, which ``int()`` would accept), within the SQL type's range;
- ``decimal(p,s)``: ASCII digits with an optional ``-`` and at most ``s`` digits after a ``.``,
  at most ``p - s`` before it;
- ``bit``: ``true``/``false``/``1``/``0``;
- ``date``: ``YYYY-MM-DD``; ``datetime2``: ``YYYY-MM-DDTHH:MM[:SS[.ffffff]]`` (a space may
  stand for the ``T``; at most six fractional digits, microseconds, which is what the driver
  sends);
- ``nvarchar(n)``: any text of at most ``n`` UTF-16 code units (as SQL Server counts them), the
  empty string included;
- ``enum``: exactly one of the listed values (case-sensitive).

An empty value is a value: for every type but ``nvarchar`` it is invalid (a client omits a
parameter it does not set; the page does).

Values go to the procedure as typed RPC parameters declared with the SQL type below (the
driver's parameter binding, never SQL text). Between the HTTP process and the worker a value
travels as :func:`to_wire` text; :func:`from_wire` rebuilds the Python value the driver binds.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

Value = int | bool | decimal.Decimal | dt.date | dt.datetime | str

INT_RANGE: Final = (-(2**31), 2**31 - 1)
BIGINT_RANGE: Final = (-(2**63), 2**63 - 1)
# SQL Server's DECIMAL precision (MS-TDS 2.2.5.5.1.4: at most 38 digits).
MAX_DECIMAL_PRECISION: Final = 38
# NVARCHAR(n) takes n up to 4,000 UTF-16 code units; longer is NVARCHAR(MAX), which a report
# parameter taken from a URL has no use for.
MAX_NVARCHAR_LENGTH: Final = 4000
# The driver sends DATETIME2 from a Python datetime, which holds microseconds.
MAX_SECOND_DIGITS: Final = 6
# Values of an enum: enough for any menu a person picks from, few enough for a page's select.
MAX_ENUM_VALUES: Final = 1000
# JSON numbers are doubles in JavaScript: integers beyond 2**53 - 1 are described as strings.
_JSON_SAFE_INT: Final = 2**53 - 1

_INT_TEXT = re.compile(r"-?[0-9]+")
_DECIMAL_TEXT = re.compile(r"(-?)([0-9]+)(?:\.([0-9]+))?")
_DATE_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATETIME_TEXT = re.compile(
    r"([0-9]{4}-[0-9]{2}-[0-9]{2})[T ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.([0-9]{1,6}))?)?"
)
_BIT_TEXT: Final = {"true": True, "1": True, "false": False, "0": False}
_SIZED = re.compile(
    r"^(decimal|numeric|nvarchar|datetime2)\s*\(\s*([0-9]+)\s*(?:,\s*([0-9]+)\s*)?\)$"
)


class InvalidValue(ValueError):
    """A value that breaks the parameter's rule; the message states the rule, never the value."""


@dataclass(frozen=True)
class ParamType:
    """One type: its name in the catalog, its SQL declaration and how its values are read.

    ``precision``/``scale`` are DECIMAL's; ``length`` is NVARCHAR's; ``values`` are an enum's.
    """

    name: str
    precision: int = 0
    scale: int = 0
    length: int = 0
    values: tuple[str, ...] = ()

    @property
    def kind(self) -> str:
        return self.name.split("(", 1)[0]

    @property
    def ordered(self) -> bool:
        """Whether values compare as numbers or dates (bounds and order rules apply)."""
        return self.kind in ("int", "bigint", "decimal", "date", "datetime2")

    def declaration(self) -> str:
        """The SQL type the value is bound as (an enum is the NVARCHAR its longest value fits)."""
        return _DECLARATIONS[self.kind](self)

    def parse(self, text: str) -> Value:
        """A query-string value, or :class:`InvalidValue` with what the value must be."""
        return _PARSERS[self.kind](self, text)

    def rule(self) -> str:
        """What a value must look like, for messages: "a whole number", "a date (YYYY-MM-DD)"."""
        return _RULES[self.kind](self)

    def to_json(self, value: Value) -> object:
        """A value as ``/reports`` describes it (bounds, defaults)."""
        if isinstance(value, bool):
            return value
        if isinstance(value, int):
            return value if abs(value) <= _JSON_SAFE_INT and self.kind == "int" else str(value)
        return to_wire(value)


def _int_parser(low: int, high: int) -> Callable[[ParamType, str], Value]:
    def parse(ptype: ParamType, text: str) -> Value:
        # Lengths first: a 100,000-digit value is refused without building the integer.
        if not _INT_TEXT.fullmatch(text) or len(text.lstrip("-").lstrip("0")) > len(str(high)):
            raise InvalidValue(ptype.rule())
        value = int(text)
        if not low <= value <= high:
            raise InvalidValue(ptype.rule())
        return value

    return parse


def _parse_decimal(ptype: ParamType, text: str) -> Value:
    match = _DECIMAL_TEXT.fullmatch(text)
    if match is None:
        raise InvalidValue(ptype.rule())
    whole, fraction = match.group(2).lstrip("0"), match.group(3) or ""
    if len(whole) > ptype.precision - ptype.scale or len(fraction) > ptype.scale:
        raise InvalidValue(ptype.rule())
    return decimal.Decimal(text)


def _parse_bit(ptype: ParamType, text: str) -> Value:
    value = _BIT_TEXT.get(text)
    if value is None:
        raise InvalidValue(ptype.rule())
    return value


def _parse_date(ptype: ParamType, text: str) -> Value:
    if not _DATE_TEXT.fullmatch(text):
        raise InvalidValue(ptype.rule())
    try:
        return dt.date.fromisoformat(text)
    except ValueError:  # 2025-02-30
        raise InvalidValue(ptype.rule()) from None


def _parse_datetime(ptype: ParamType, text: str) -> Value:
    match = _DATETIME_TEXT.fullmatch(text)
    if match is None or len(match.group(5) or "") > min(ptype.precision, MAX_SECOND_DIGITS):
        raise InvalidValue(ptype.rule())
    day, hour, minute, second, fraction = match.groups()
    try:
        return dt.datetime.combine(
            dt.date.fromisoformat(day),
            dt.time(int(hour), int(minute), int(second or 0), int((fraction or "").ljust(6, "0"))),
        )
    except ValueError:
        raise InvalidValue(ptype.rule()) from None


def utf16_length(text: str) -> int:
    """Length as SQL Server counts NVARCHAR: UTF-16 code units (a non-BMP character is two)."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def _parse_text(ptype: ParamType, text: str) -> Value:
    if utf16_length(text) > ptype.length:
        raise InvalidValue(ptype.rule())
    return text


def _parse_enum(ptype: ParamType, text: str) -> Value:
    if text not in ptype.values:
        raise InvalidValue(ptype.rule())
    return text


_PARSERS: Final[Mapping[str, Callable[[ParamType, str], Value]]] = {
    "int": _int_parser(*INT_RANGE),
    "bigint": _int_parser(*BIGINT_RANGE),
    "decimal": _parse_decimal,
    "bit": _parse_bit,
    "date": _parse_date,
    "datetime2": _parse_datetime,
    "nvarchar": _parse_text,
    "enum": _parse_enum,
}

_RULES: Final[Mapping[str, Callable[[ParamType], str]]] = {
    "int": lambda t: "a whole number",
    "bigint": lambda t: "a whole number",
    "decimal": lambda t: (
        f"a number with at most {t.precision - t.scale} digits before the point"
        + (f" and {t.scale} after it" if t.scale else " and none after it")
    ),
    "bit": lambda t: "true or false",
    "date": lambda t: "a date (YYYY-MM-DD)",
    "datetime2": lambda t: "a date and time (YYYY-MM-DDTHH:MM:SS)",
    "nvarchar": lambda t: f"text of at most {t.length:,} characters",
    "enum": lambda t: "one of " + ", ".join(t.values),
}

_DECLARATIONS: Final[Mapping[str, Callable[[ParamType], str]]] = {
    "int": lambda t: "INT",
    "bigint": lambda t: "BIGINT",
    "decimal": lambda t: f"DECIMAL({t.precision},{t.scale})",
    "bit": lambda t: "BIT",
    "date": lambda t: "DATE",
    "datetime2": lambda t: f"DATETIME2({t.precision})",
    "nvarchar": lambda t: f"NVARCHAR({t.length})",
    "enum": lambda t: f"NVARCHAR({max(1, *(utf16_length(v) for v in t.values))})",
}

SIMPLE_TYPES: Final = ("int", "bigint", "bit", "date", "datetime2")
TYPE_NAMES: Final = (
    "int",
    "bigint",
    "decimal(p,s)",
    "bit",
    "date",
    "datetime2",
    "nvarchar(n)",
    "enum",
)


def parse_type(name: str, values: Sequence[str] = ()) -> ParamType:
    """``"decimal(18,2)"`` -> its :class:`ParamType`; ValueError saying what is accepted."""
    text = name.strip().lower()
    if text in SIMPLE_TYPES:
        return ParamType(text, precision=7 if text == "datetime2" else 0)
    if text == "enum":
        return ParamType("enum", values=tuple(values))
    match = _SIZED.match(text)
    if match is None:
        raise ValueError("must be one of " + ", ".join(TYPE_NAMES))
    kind, first, second = match.group(1), int(match.group(2)), match.group(3)
    if kind in ("decimal", "numeric"):
        scale = int(second) if second is not None else 0
        if not 1 <= first <= MAX_DECIMAL_PRECISION or scale > first:
            raise ValueError(
                f"decimal(p,s) needs 1 <= p <= {MAX_DECIMAL_PRECISION} and 0 <= s <= p"
            )
        return ParamType(f"decimal({first},{scale})", precision=first, scale=scale)
    if second is not None:
        raise ValueError(f"{kind} takes one size")
    if kind == "nvarchar":
        if not 1 <= first <= MAX_NVARCHAR_LENGTH:
            raise ValueError(f"nvarchar(n) needs 1 <= n <= {MAX_NVARCHAR_LENGTH}")
        return ParamType(f"nvarchar({first})", length=first)
    if first > 7:
        raise ValueError("datetime2(p) needs 0 <= p <= 7")
    return ParamType(f"datetime2({first})" if first != 7 else "datetime2", precision=first)


def with_length(ptype: ParamType, length: int) -> ParamType:
    """An nvarchar type whose values are limited to ``length`` (<= its declared size)."""
    return dataclasses.replace(ptype, length=length)


# -- between the HTTP process and the worker ------------------------------------------------


def to_wire(value: Value) -> str:
    """A value as text that :func:`from_wire` reads back exactly."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.date | decimal.Decimal | int):
        return str(value)
    return value


def from_wire(declaration: str, text: str) -> Value:
    """The Python value the driver binds for a parameter declared ``declaration``."""
    kind = declaration.split("(", 1)[0].lower()
    if kind in ("int", "bigint"):
        return int(text)
    if kind == "decimal":
        return decimal.Decimal(text)
    if kind == "bit":
        return text == "1"
    if kind == "date":
        return dt.date.fromisoformat(text)
    if kind == "datetime2":
        return dt.datetime.fromisoformat(text)
    if kind == "nvarchar":
        return text
    raise ValueError(f"no wire form for {declaration}")
