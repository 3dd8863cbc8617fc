"""Wire encoding of the report's result set: COLMETADATA and ROW/NBCROW tokens, fast.

Rows are encoded straight from :func:`sql.report_data.raw_row` integers with one precompiled
``struct.Struct`` and one generated list comprehension per NULL slot (``n % NULL_PERIOD``), so
a row costs one formula call, a few integer operations and one ``pack``: no Decimal/datetime
objects per cell, no per-row dispatch.  Fixed-width text
(ColVarchar) and per-slot text (ColNVarchar, picked by ``n % 8`` which the slot determines) let
every slot's layout be a single fixed struct format.
"""

from __future__ import annotations

import datetime
import struct
from collections.abc import Callable
from dataclasses import dataclass

from sql import report_data as rd
from sql.devserver import rowsource, tokens

# TYPE_INFO per SQL type text (MS-TDS 2.2.5.4/2.2.5.5): the nullable "N" variants SQL Server
# uses for computed columns.  Text columns carry max length in bytes and the collation.
_TYPE_INFO: dict[str, bytes] = {
    "INT": b"\x26\x04",
    "BIGINT": b"\x26\x08",
    "DECIMAL(18,4)": b"\x6a\x09\x12\x04",
    "VARCHAR(100)": b"\xa7" + struct.pack("<H", 100) + tokens.COLLATION,
    "NVARCHAR(100)": b"\xe7" + struct.pack("<H", 200) + tokens.COLLATION,
    "DATE": b"\x28",
    "DATETIME2(3)": b"\x2a\x03",
    "BIT": b"\x68\x01",
    "FLOAT": b"\x6d\x08",
}

# Days from 0001-01-01, the origin of DATE and DATETIME2 on the wire.
_DATE_ORIGIN = datetime.date(1, 1, 1).toordinal()


def colmetadata() -> bytes:
    out = bytearray(struct.pack("<BH", tokens.COLMETADATA, len(rd.COLUMNS)))
    for col in rd.COLUMNS:
        flags = 0x0001 if col.nullable else 0x0000  # fNullable
        out += struct.pack("<IH", 0, flags) + _TYPE_INFO[col.sql_type] + tokens.b_varchar(col.name)
    return bytes(out)


def _days3(day_number: int) -> bytes:
    return day_number.to_bytes(3, "little")


# Precomputed cell encodings for the columns whose raw value has a small range.
_NVARCHAR_CELLS = tuple(
    struct.pack("<H", len(v.encode("utf-16-le"))) + v.encode("utf-16-le")
    for v in rd.NVARCHAR_VALUES
)
_DATE_CELLS = tuple(
    b"\x03" + _days3(rd.DATE_BASE.toordinal() - _DATE_ORIGIN + d) for d in range(rd.DATE_SPAN_DAYS)
)
_DATETIME_DAYS = tuple(
    _days3(rd.DATETIME_BASE.toordinal() - _DATE_ORIGIN + d) for d in range(rd.DATETIME_SPAN_DAYS)
)
_VARCHAR_LEN = len(rd.varchar_text(0))  # fixed width by definition

# Each column's non-NULL cell: its struct format and the arguments that fill it, as Python
# expressions of the row's raw values (named as in ``_RAW``; constants are length bytes).
_RAW = "i, ci, cb, dec, vc, nv, d, dt, bit, fl"
_CELLS: tuple[tuple[str, str], ...] = (
    ("Bi", "4, i"),  # Id: length 4, value
    ("Bi", "4, ci"),  # ColInt
    ("Bq", "8, cb"),  # ColBigInt
    ("BBQ", "9, dec >= 0, abs(dec)"),  # ColDecimal: length 9, sign (1 = positive), x 10**4
    ("H{vc}s", "VARCHAR_LEN, VARCHAR_BYTES % vc"),  # ColVarchar: byte length, bytes
    ("{nv}s", "NVARCHAR_CELLS[nv]"),  # ColNVarchar: precomputed byte length + UTF-16LE
    ("4s", "DATE_CELLS[d]"),  # ColDate: precomputed length 3 + day number
    ("BI3s", "7, dt % MS_PER_DAY, DATETIME_DAYS[dt // MS_PER_DAY]"),  # ColDateTime: length 7,
    # ms of the day (scale 3), day number
    ("BB", "1, bit"),  # ColBit
    ("Bd", "8, fl / FLOAT_DIVISOR"),  # ColFloat
)
# What the generated encoders' expressions refer to.
_NAMESPACE: dict[str, object] = {
    "raw_row": rd.raw_row,
    "VARCHAR_BYTES": rd.VARCHAR_FORMAT.encode("ascii"),
    "VARCHAR_LEN": _VARCHAR_LEN,
    "NVARCHAR_CELLS": _NVARCHAR_CELLS,
    "DATE_CELLS": _DATE_CELLS,
    "DATETIME_DAYS": _DATETIME_DAYS,
    "MS_PER_DAY": rd.MS_PER_DAY,
    "FLOAT_DIVISOR": rd.FLOAT_DIVISOR,
}

SlotEncoder = Callable[[range], list[bytes]]


def _slot_encoder(slot: int) -> SlotEncoder:
    """The encoder of the rows of one NULL slot (``n % NULL_PERIOD == slot``): a list
    comprehension, generated once, that packs each row's token, NULL bitmap and non-NULL cells
    with one precompiled ``struct.Struct``.  Straight-line code per slot is what makes the
    server fast: no per-row dispatch, argument tuple or picking."""
    nulls = rd.NULL_COLUMNS[slot]
    if nulls:
        bitmap = sum(1 << i for i in nulls).to_bytes((len(rd.COLUMNS) + 7) // 8, "little")
        prefix = bytes((tokens.NBCROW,)) + bitmap
    else:
        prefix = bytes((tokens.ROW,))
    # ColNVarchar is picked by n % 8, which n % 16 (the slot) determines.
    nv_cell = _NVARCHAR_CELLS[rd.raw_row(slot or rd.NULL_PERIOD)[5]]
    fmt = f"<{len(prefix)}s"
    args = ["PREFIX"]
    for col, (cell_fmt, arguments) in enumerate(_CELLS):
        if col not in nulls:
            fmt += cell_fmt.format(vc=_VARCHAR_LEN, nv=len(nv_cell))
            args.append(arguments)
    source = (
        "def encode(numbers):\n"
        f"    return [pack({', '.join(args)}) for {_RAW} in map(raw_row, numbers)]\n"
    )
    namespace = {**_NAMESPACE, "pack": struct.Struct(fmt).pack, "PREFIX": prefix}
    exec(compile(source, f"<report rows, NULL slot {slot}>", "exec"), namespace)
    encode: SlotEncoder = namespace["encode"]  # type: ignore[assignment]
    return encode


class ReportEncoder:
    """COLMETADATA and rows of ``dbo.spGenerateData``'s result set, as token bytes."""

    def __init__(self) -> None:
        self.colmetadata = colmetadata()
        self._slots = tuple(_slot_encoder(slot) for slot in range(rd.NULL_PERIOD))

    def encode_rows(self, first: int, count: int) -> bytes:
        """ROW/NBCROW tokens for rows ``first .. first + count - 1``: each slot's rows encoded
        together, then put back in row order."""
        period = rd.NULL_PERIOD
        end = first + count
        out: list[bytes] = [b""] * count
        for slot, encode in enumerate(self._slots):
            offset = (slot - first) % period  # the slot's first row in this range
            if offset < count:
                out[offset::period] = encode(range(first + offset, end, period))
        return b"".join(out)


# Rows of the report per chunk: ~75 bytes each, so about rowsource.CHUNK_BYTES.
REPORT_ROWS_PER_CHUNK = rowsource.CHUNK_BYTES // 64


@dataclass(frozen=True, slots=True)
class ReportRows:
    """Rows 1..count of the report as a :class:`~rowsource.RowSource` (row ``first`` of the
    source is report row ``first + 1``)."""

    count: int
    encoder: ReportEncoder

    def encode(self, first: int, limit: int) -> tuple[int, bytes]:
        n = min(limit, REPORT_ROWS_PER_CHUNK)
        return n, self.encoder.encode_rows(first + 1, n)
