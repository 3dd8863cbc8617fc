"""What a report's sheet looks like in Excel: headers, column widths and number formats.

Headers are the database's column names unless the catalog labels them (``ColBigInt`` ->
``Big Integer``); the writer's column specs follow the columns' SQL types (``DECIMAL(18,4)``
shows four decimals), with the catalog's number format and width where it gives them. Pure
functions. The types are the ones the database reports for the result set it is sending
(pytds' ``cursor.description``), so a procedure whose columns change gets formats that follow,
with no list here to keep in step.
"""

from __future__ import annotations

import dataclasses
import datetime
import re
from collections.abc import Mapping, Sequence

import xlsx
from server.catalog import ColumnOverride

# Widths in Excel character units, wide enough for the type's typical values: int32 with sign
# (11 characters), int64 (20), a DECIMAL(18,4) (20), a date (10), a datetime (19), TRUE/FALSE.
# A NULL-width (None) column keeps Excel's default of 8.43.
_TYPE_WIDTHS: Mapping[str, float] = {
    "INT": 12,
    "BIGINT": 21,
    "DECIMAL": 21,
    "NUMERIC": 21,
    "VARCHAR": 16,
    "NVARCHAR": 16,
    "DATE": 12,
    "DATETIME": 20,
    "DATETIME2": 20,
    "BIT": 7,
    "FLOAT": 14,
}
# Integers shown as integers, never as 1.23E+15; dates get the writer's own format.
_INTEGER_FORMAT = "0"
_INTEGER_TYPES = frozenset({"INT", "BIGINT", "SMALLINT", "TINYINT"})
_DECIMAL_TYPES = frozenset({"DECIMAL", "NUMERIC"})
# The writer's default datetime format stops at whole seconds (and drops the fraction); a column
# with fractional seconds gets a format that shows them, which makes the writer keep them.
# Excel displays at most three decimals of a second; DATETIME is accurate to 1/300 s.
_DATETIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
_MAX_SECOND_DECIMALS = 3
_DATETIME_DEFAULT_PRECISION = {"DATETIME": 3, "DATETIME2": 7}
# "DECIMAL(18,4)" -> ("DECIMAL", "18,4"); "INT" -> ("INT", None)
_SQL_TYPE = re.compile(r"^\s*([A-Za-z0-9]+)\s*(?:\(([^)]*)\))?\s*$")


def column_spec(sql_type: str) -> xlsx.Column:
    """Width and number format for a column of this SQL Server type."""
    match = _SQL_TYPE.match(sql_type)
    if match is None:
        return xlsx.Column()
    base = match.group(1).upper()
    width = _TYPE_WIDTHS.get(base)
    if base in _INTEGER_TYPES:
        return xlsx.Column(width=width, number_format=_INTEGER_FORMAT)
    if base in _DECIMAL_TYPES:
        return xlsx.Column(width=width, number_format=_decimal_format(match.group(2)))
    if base in _DATETIME_DEFAULT_PRECISION:
        return xlsx.Column(width=width, number_format=_datetime_format(base, match.group(2)))
    return xlsx.Column(width=width)


def _decimal_format(arguments: str | None) -> str:
    """``"18,4"`` -> ``"0.0000"``: as many decimals as the column's scale."""
    scale = 0
    if arguments and "," in arguments:
        scale = _small_int(arguments.split(",", 1)[1], default=0)
    return "0." + "0" * scale if scale else _INTEGER_FORMAT


def _datetime_format(base: str, arguments: str | None) -> str | None:
    """``DATETIME2(3)`` -> ``"yyyy-mm-dd hh:mm:ss.000"``; no fraction -> the writer's default."""
    precision = _DATETIME_DEFAULT_PRECISION[base]
    if arguments:
        precision = _small_int(arguments, default=precision)
    decimals = min(precision, _MAX_SECOND_DECIMALS)
    return f"{_DATETIME_FORMAT}.{'0' * decimals}" if decimals else None


def _small_int(text: str, *, default: int) -> int:
    text = text.strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 2 else default


# pytds puts each column's TDS type id (MS-TDS 2.2.5.4.1-3) in ``description[1]``, its byte size
# in ``[3]``, and the precision and scale of decimals (fractional-second digits of DATETIME2) in
# ``[4]`` and ``[5]``. pytds already resolves the nullable INTN/FLTN/BITN/DATETIMN ids to the
# sized ones for INT/BIGINT/FLOAT; the size picks the type where it does not.
_TDS_TYPE_NAMES: Mapping[int, str] = {
    0x30: "TINYINT",
    0x34: "SMALLINT",
    0x38: "INT",
    0x7F: "BIGINT",
    0x32: "BIT",
    0x68: "BIT",
    0x3B: "REAL",
    0x3E: "FLOAT",
    0x6A: "DECIMAL",
    0x6C: "NUMERIC",
    0x28: "DATE",
    0x29: "TIME",
    0x2A: "DATETIME2",
    0x2B: "DATETIMEOFFSET",
    0x3A: "SMALLDATETIME",
    0x3D: "DATETIME",
    0xA7: "VARCHAR",
    0xAF: "CHAR",
    0xE7: "NVARCHAR",
    0xEF: "NCHAR",
    0x24: "UNIQUEIDENTIFIER",
}
_SIZED_TDS_TYPES: Mapping[int, Mapping[int, str]] = {
    0x26: {1: "TINYINT", 2: "SMALLINT", 4: "INT", 8: "BIGINT"},  # INTN
    0x6D: {4: "REAL", 8: "FLOAT"},  # FLTN
    0x6F: {4: "SMALLDATETIME", 8: "DATETIME"},  # DATETIMN
}


def sql_type(column: Sequence[object]) -> str | None:
    """``("ColDecimal", 106, None, 9, 18, 4, 1)`` -> ``"DECIMAL(18,4)"``; None if unknown."""
    type_id, size, precision, scale = column[1], column[3], column[4], column[5]
    if not isinstance(type_id, int):
        return None
    name = _TDS_TYPE_NAMES.get(type_id)
    if name is None and isinstance(size, int):
        name = _SIZED_TDS_TYPES.get(type_id, {}).get(size)
    if name in _DECIMAL_TYPES and isinstance(precision, int) and isinstance(scale, int):
        return f"{name}({precision},{scale})"
    if name == "DATETIME2" and isinstance(precision, int):
        return f"{name}({precision})"
    return name


def layout(
    description: Sequence[Sequence[object]],
    int_meanings: Sequence[xlsx.IntMeaning | None] | None = None,
    overrides: Mapping[str, ColumnOverride] | None = None,
) -> tuple[list[str], list[xlsx.Column | None]]:
    """Headers and writer column specs for the result set the database described.

    ``int_meanings`` says, per column, what an int value stands for when the rows come from
    the fast row path (dates as day counts, datetimes as tick counts). ``overrides`` are the
    catalog's label, number format and width of columns, by database column name; a column
    without a label is headed by its name.
    """
    headers: list[str] = []
    specs: list[xlsx.Column | None] = []
    meanings = list(int_meanings or ()) + [None] * (len(description) - len(int_meanings or ()))
    for column, meaning in zip(description, meanings, strict=True):
        name = str(column[0])
        override = (overrides or {}).get(name, ColumnOverride())
        headers.append(name if override.label is None else override.label)
        type_text = sql_type(column)
        spec = xlsx.Column() if type_text is None else column_spec(type_text)
        if override.number_format is not None:
            spec = dataclasses.replace(spec, number_format=override.number_format)
        if override.width is not None:
            spec = dataclasses.replace(spec, width=override.width)
        if meaning is not None:
            spec = dataclasses.replace(spec, ints=meaning)
        specs.append(None if spec == xlsx.Column() else spec)
    return headers, specs


def download_filename(prefix: str, now: datetime.datetime) -> str:
    """``<prefix>-YYYY-MM-DD-HHMMSS.xlsx``: the report's prefix and the server's clock, never
    anything from the request."""
    return f"{prefix}-{now:%Y-%m-%d-%H%M%S}.xlsx"
