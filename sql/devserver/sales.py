"""Wire encoding of ``dbo.spSalesOrders``' two result sets (:mod:`sql.sales_data`), fast.

The orders (up to :data:`~sql.sales_data.MAX_DAYS` x 40 = 146,400 rows) are a
:class:`~sql.devserver.rowsource.RowSource` that encodes each chunk straight from the order
numbers: per row one :func:`~sql.sales_data.raw_order` call, two ``struct`` packs and cells
looked up in tables (the region, the customer and the day take few values), no Python objects
per cell and nothing held for rows not yet sent.  A region filter keeps the matching numbers
only (an ``array`` of 4-byte integers, ~120 KB at most), since which orders match is known only
by computing them.  The summary (five rows at most) goes through spColumns' generic encoder.
Both result sets' COLMETADATA come from spColumns' column parser, so the types are declared
once, in :data:`~sql.sales_data.ORDER_COLUMNS` / :data:`~sql.sales_data.SUMMARY_COLUMNS`.
"""

from __future__ import annotations

import array
import datetime
import functools
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from sql import sales_data as sd
from sql.devserver import columns, rowsource, sqltypes, tokens

# Rows per chunk: ~70 bytes each (4 + 4 + 16 + 26 + 4 + 2 x 10 and the token), so about
# rowsource.CHUNK_BYTES.
ORDER_ROWS_PER_CHUNK = rowsource.CHUNK_BYTES // 70


def _parsed(spec: Sequence[tuple[str, str]]) -> tuple[columns.ParsedColumn, ...]:
    """Columns of a result set (every one NOT NULL, as #Orders declares them)."""
    return columns.parse_columns([columns.Column(n, t, nullable=False).to_json() for n, t in spec])


ORDER_PARSED = _parsed(sd.ORDER_COLUMNS)
SUMMARY_PARSED = _parsed(sd.SUMMARY_COLUMNS)
ORDER_COLMETADATA = columns.colmetadata(ORDER_PARSED)


def _cells(column: int, values: Sequence[object]) -> tuple[bytes, ...]:
    """The ROW cells of ``values`` in column ``column`` of the orders, by sqltypes' encoder."""
    typ = ORDER_PARSED[column].type
    return tuple(sqltypes.cell(typ, False, v, sqltypes.DEFAULT_PLP) for v in values)


_REGION_CELLS = _cells(2, sd.REGIONS)
# By customer number (1-based: "Customer 000" is never picked).
_CUSTOMER_CELLS = _cells(3, [sd.CUSTOMER_FORMAT % k for k in range(sd.CUSTOMERS + 1)])
_DATE_LENGTH = b"\x03"  # DATEN: 3 bytes of days since 0001-01-01
_EPOCH_DAYS = sd.EPOCH.toordinal() - datetime.date(1, 1, 1).toordinal()
_DECIMAL_LENGTH = 9  # DECIMAL(10,2) and DECIMAL(12,2): 1 sign byte + 8 bytes (MS-TDS 2.2.5.5.1.3)
_POSITIVE = 1
# ROW token, OrderId (INT4), the date cell; then Quantity (INT4), UnitPrice and Amount (length,
# sign, 8-byte magnitude in cents).
_HEAD = struct.Struct("<Bi4s")
_TAIL = struct.Struct("<iBBQBBQ")


@functools.cache
def _date_cell(day: int) -> bytes:
    """OrderDate's cell for ``day`` days after EPOCH (at most 7,305 different ones)."""
    return _DATE_LENGTH + (_EPOCH_DAYS + day).to_bytes(3, "little")


def encode_order(n: int) -> bytes:
    """The ROW token of order ``n``."""
    day, region, customer, quantity, cents = sd.raw_order(n)
    return b"".join(
        (
            _HEAD.pack(tokens.ROW, n + 1, _date_cell(day)),
            _REGION_CELLS[region],
            _CUSTOMER_CELLS[customer],
            _TAIL.pack(
                quantity,
                _DECIMAL_LENGTH, _POSITIVE, cents,
                _DECIMAL_LENGTH, _POSITIVE, quantity * cents,
            ),
        )
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class OrderRows:
    """Result set 1 as a RowSource: the orders whose numbers ``numbers`` holds, in order."""

    numbers: Sequence[int]  # a range, or an array of the numbers a region filter kept

    @property
    def count(self) -> int:
        return len(self.numbers)

    def encode(self, first: int, limit: int) -> tuple[int, bytes]:
        chunk = self.numbers[first : first + min(limit, ORDER_ROWS_PER_CHUNK)]
        return len(chunk), b"".join(map(encode_order, chunk))


def order_rows(start: datetime.date, end: datetime.date, region: str | None) -> OrderRows:
    """The orders of a checked range (``sd.check_range``), only ``region``'s when given."""
    if region is None:
        return OrderRows(sd.order_numbers(start, end))
    return OrderRows(array.array("i", sd.matching_numbers(start, end, region)))


def summary_rows(
    start: datetime.date, end: datetime.date, region: str | None
) -> columns.ColumnsResult:
    """Result set 2: :func:`sql.sales_data.summary`'s rows, encoded."""
    summary = sd.summary(start, end, region)
    rows = [[name, count, quantity, str(amount)] for name, count, quantity, amount in summary]
    return columns.result(SUMMARY_PARSED, rows, row_tokens="row")
