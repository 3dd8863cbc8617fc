"""Wire encoding of the report's result set: COLMETADATA and ROW/NBCROW tokens, fast.

Rows are encoded straight from :func:`sql.report_data.raw_row` integers with one precompiled
``struct.Struct`` per NULL slot (``n % NULL_PERIOD``), so a row costs one formula call, a few
integer operations and one ``pack``: no Decimal/datetime objects per cell.  Fixed-width text
(ColVarchar) and per-slot text (ColNVarchar, picked by ``n % 8`` which the slot determines) let
every slot's layout be a single fixed struct format.
"""

from __future__ import annotations

import datetime
import struct
from collections.abc import Callable
from dataclasses import dataclass
from operator import itemgetter

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

# Each column's non-NULL cell: its struct format and the positions of its arguments in the
# per-row tuple built by ``ReportEncoder.encode_rows`` (length bytes are constants there).
_CELLS: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("Bi", (0, 1)),  # Id: length 4, value
    ("Bi", (2, 3)),  # ColInt
    ("Bq", (4, 5)),  # ColBigInt
    ("BBQ", (6, 7, 8)),  # ColDecimal: length 9, sign (1 = positive), magnitude x 10**4
    ("H{vc}s", (9, 10)),  # ColVarchar: byte length, bytes
    ("{nv}s", (11,)),  # ColNVarchar: precomputed byte length + UTF-16LE
    ("4s", (12,)),  # ColDate: precomputed length 3 + day number
    ("BI3s", (13, 14, 15)),  # ColDateTime: length 7, ms of the day (scale 3), day number
    ("BB", (16, 17)),  # ColBit
    ("Bd", (18, 19)),  # ColFloat
)

RowPlan = tuple[bytes, Callable[..., bytes], Callable[[tuple[object, ...]], tuple[object, ...]]]


def _slot_plan(slot: int) -> RowPlan:
    """Prefix (token and NULL bitmap), struct.pack and argument picker for one NULL slot."""
    nulls = rd.NULL_COLUMNS[slot]
    if nulls:
        bitmap = sum(1 << i for i in nulls).to_bytes((len(rd.COLUMNS) + 7) // 8, "little")
        prefix = bytes((tokens.NBCROW,)) + bitmap
    else:
        prefix = bytes((tokens.ROW,))
    # ColNVarchar is picked by n % 8, which n % 16 (the slot) determines.
    nv_cell = _NVARCHAR_CELLS[rd.raw_row(slot or rd.NULL_PERIOD)[5]]
    fmt = "<"
    picks: list[int] = []
    for col, (cell_fmt, positions) in enumerate(_CELLS):
        if col not in nulls:
            fmt += cell_fmt.format(vc=_VARCHAR_LEN, nv=len(nv_cell))
            picks.extend(positions)
    return prefix, struct.Struct(fmt).pack, itemgetter(*picks)


class ReportEncoder:
    """COLMETADATA and rows of ``dbo.spGenerateData``'s result set, as token bytes."""

    def __init__(self) -> None:
        self.colmetadata = colmetadata()
        self._plans = tuple(_slot_plan(slot) for slot in range(rd.NULL_PERIOD))

    def encode_rows(self, first: int, count: int) -> bytes:
        """ROW/NBCROW tokens for rows ``first .. first + count - 1``."""
        out: list[bytes] = []
        append = out.append
        plans = self._plans
        period = rd.NULL_PERIOD
        raw_row = rd.raw_row
        varchar = rd.varchar_text
        nv_cells = _NVARCHAR_CELLS
        date_cells = _DATE_CELLS
        dt_days = _DATETIME_DAYS
        ms_per_day = rd.MS_PER_DAY
        divisor = rd.FLOAT_DIVISOR
        vc_len = _VARCHAR_LEN
        for n in range(first, first + count):
            raw = raw_row(n)
            dec = raw[3]
            days, ms = divmod(raw[7], ms_per_day)
            values = (
                4, raw[0], 4, raw[1], 8, raw[2], 9, dec >= 0, abs(dec),
                vc_len, varchar(raw[4]).encode("ascii"), nv_cells[raw[5]], date_cells[raw[6]],
                7, ms, dt_days[days], 1, raw[8], 8, raw[9] / divisor,
            )  # fmt: skip
            prefix, pack, pick = plans[n % period]
            append(prefix)
            append(pack(*pick(values)))
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
