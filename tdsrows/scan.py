"""Rows as typed primitive cells: the Python side of the compiled ROW/NBCROW scanner.

``tdsrows._rowscan`` (C, optional: built where a C compiler is found) walks the ROW/NBCROW
tokens of a packet and writes, per value, a *primitive cell* into a flat buffer: no Python
object per value, so the worksheet encoder (also C) reads a packet's rows ~50x faster than the
generated Python decoder builds tuples. This module says which columns have a primitive,
builds the scanner's *program* from a :class:`~tdsrows.layout.Layout`, and owns the buffers.

Cells: the layout :mod:`primitive_cells` describes, each column's cells of one
:class:`~primitive_cells.CellType`: INT64 for ints and the raw kinds' integers
(``values.RAW_KINDS``), DOUBLE for floats and reals, BOOL for bits, BYTE_TEXT and UTF16_TEXT
for VARCHAR and NVARCHAR (where the bytes are in the scanned ``data``, not decoded).

Program: :data:`PROGRAM_BYTES` bytes per column, in column order: the op (:class:`_Op`, how
the value's bytes become a cell), the framing (``Framing.value``), the value's size in bytes
(0 for USHORT_LEN text, whose length is on the wire), the datetime2 scale (0 otherwise), the
narrower sizes a BYTE_LEN value may also have (bit k: 2**k bytes; ``Column.narrower_sizes``),
a 0, and a little-endian uint16: text's declared maximum in bytes (0 otherwise). The C side
checks every column of it on each call (a few ns per column) and raises ValueError on
anything this module would not build.

``_rowscan.scan(data, pos, program, cells, starts, max_rows) -> (pos_after, stop, rows)``
decodes the rows from ``pos`` on into ``cells``, each row's token offset into ``starts`` (an
int64 per row), and stops with ``stop`` (:mod:`tdsrows.stops`): a token byte (>= 0) that is
not a row, ``INCOMPLETE`` (the data ends inside or right at the next row), ``FULL``
(``max_rows`` or the buffers' room reached), ``SLOW`` (the next row, complete, holds a value
no cell can hold: the caller decodes that row with the Python decoder and scans on after it;
that row starts at ``pos_after`` and ends where ``starts[rows]`` says,
:meth:`RowScanner.slow_end`) or ``MALFORMED`` (the next row, starting at ``pos_after``, holds
a value its column's type does not have: a length the type has not
(``Column.length_problem``: a decimal's not its precision's, a date's not 3, text longer than
declared, UTF-16 of an odd number of bytes), or a time of a day or more, which in the raw sum
would pass for the next day. The row may be cut off after that value. The caller has the
Python decoder raise the error that names the column and the problem: :func:`refuse`).

Tuples: ``_rowscan.tuples(data, cells, first, rows, plan, helpers, out) -> next`` appends rows
``first`` to ``rows - 1`` of the cells to the list ``out`` as the tuples the Python decoder
builds (:class:`TuplePlan`, :func:`tuple_plan`). It returns ``rows``, or the first row it
declines (a date past 9999-12-31, which only the Python decoder's error can report); an
exception from a helper propagates, the rows before that one appended.
"""

from __future__ import annotations

import enum
import importlib
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, NoReturn

from primitive_cells import CELL, CELL_BYTES, CellType
from tdsrows import values
from tdsrows.errors import UnsupportedLayout
from tdsrows.layout import TIME_BYTES, Column, Framing, Kind, Layout
from tdsrows.values import RAW_KINDS

__all__ = [
    "AVAILABLE",
    "BATCH_ROWS",
    "OBJECT_KINDS",
    "PLAN_BYTES",
    "PROGRAM_BYTES",
    "START_BYTES",
    "Conversion",
    "RowScanner",
    "TuplePlan",
    "covers",
    "primitives",
    "program",
    "refuse",
    "tuple_plan",
]


class _Op(enum.IntEnum):
    """How the scanner turns a present value's bytes into a cell (``enum op`` in the C)."""

    UINT8 = 1  # tinyint is unsigned
    INT16 = 2
    INT32 = 3  # int; smallmoney (an int32 count of 1/10,000)
    INT64 = 4
    MONEY8 = 5  # high int32, low uint32
    DECIMAL = 6  # sign byte, little-endian magnitude
    DATE = 7  # 3 bytes of days
    DATETIME2 = 8  # ticks, then 3 bytes of days
    FLOAT32 = 9
    FLOAT64 = 10
    BIT = 11
    TEXT = 12  # USHORT_LEN bytes, reported where they are
    DATETIME = 13  # ms since 1900-01-01 from int32 days and int32 1/300 s (pytds' rounding)
    SMALLDATETIME = 14  # ms since 1900-01-01 from uint16 days and uint16 minutes
    NTEXT = 15  # as TEXT, UTF-16LE: an even number of bytes


class Conversion(enum.IntEnum):
    """How ``_rowscan.tuples`` turns a present cell into an object (``enum conversion`` in C)."""

    INT = 1  # INT64 cells, raw kinds' integers included
    FLOAT = 2
    BOOL = 3
    DATE = 4  # days since 0001-01-01 -> datetime.date
    DATETIME2 = 5  # ticks of 10**-scale second since 0001-01-01 -> datetime.datetime
    UTF16 = 6  # UTF-16LE -> str, lone surrogates kept
    BYTE_TEXT = 7  # code-page bytes -> str: ASCII in C, the rest by the column's decoder
    DECIMAL = 8  # value * 10**scale -> decimal.Decimal (MONEY: scale 4)


START_BYTES: Final = 8  # an int64 per row in ``starts``
PROGRAM_BYTES: Final = 8
PLAN_BYTES: Final = 2  # per column of a tuple plan: the conversion and its scale
_PROGRAM: Final = struct.Struct("<BBBBBBH")
# Rows per scan call. The call costs well under a microsecond, so at 1,024 rows it is below
# 1 ns a row; a 32 KiB packet (the largest TDS allows) of a typical 10-column report row
# (~80 bytes) holds ~400 rows, so larger batches would only cost memory (16 bytes a cell:
# 160 KiB at 10 columns). Narrower rows just take two calls per packet.
BATCH_ROWS: Final = 1024

_START: Final = struct.Struct("=q")
_BITS: Final = struct.Struct("=q")
_DOUBLE: Final = struct.Struct("=d")

_INT_OPS: Final = {1: _Op.UINT8, 2: _Op.INT16, 4: _Op.INT32, 8: _Op.INT64}
_FLOAT_OPS: Final = {4: _Op.FLOAT32, 8: _Op.FLOAT64}
_MONEY_OPS: Final = {4: _Op.INT32, 8: _Op.MONEY8}
# 1 sign byte + a 4, 8, 12 or 16-byte magnitude (MS-TDS 2.2.5.5.1.6).
_DECIMAL_SIZES: Final = frozenset({5, 9, 13, 17})
_DATE_BYTES: Final = 3
_DATETIME_BYTES: Final = 8  # int32 days, int32 1/300 s (MS-TDS 2.2.5.5.1.8)
_SMALLDATETIME_BYTES: Final = 4  # uint16 days, uint16 minutes
# The raw kinds to scan with when rows are wanted as objects: the tuple builder makes the
# objects from the integers (it makes no datetime or smalldatetime: rows holding those are
# built by the generated decoder).
OBJECT_KINDS: Final = frozenset({Kind.DECIMAL, Kind.MONEY, Kind.DATE, Kind.DATETIME2})

_ScanFn = Callable[[bytes, int, bytes, bytearray, bytearray, int], tuple[int, int, int]]
_TuplesFn = Callable[[bytes, bytearray, int, int, bytes, tuple[Any, ...], list[Any]], int]


def _load() -> Any:
    # Imported by name: the module is optional, and has no stub for the type checker.
    try:
        return importlib.import_module("tdsrows._rowscan")
    except ImportError:
        return None


_module: Final = _load()
_scan: Final[_ScanFn | None] = None if _module is None else _module.scan
_tuples: Final[_TuplesFn | None] = None if _module is None else _module.tuples
AVAILABLE: Final[bool] = _module is not None


def _op(column: Column, raw_kinds: frozenset[Kind]) -> tuple[CellType, _Op] | None:
    """The primitive and op of ``column``, or None if the scanner does not read it."""
    kind, framing, size = column.kind, column.framing, column.size
    if kind in (Kind.TEXT, Kind.NTEXT):
        # At most 0xFFFE bytes: 0xFFFF is the NULL length (and no column declares more).
        if framing is not Framing.USHORT_LEN or not 0 < size < 0xFFFF:
            return None
        if kind is Kind.TEXT:
            return CellType.BYTE_TEXT, _Op.TEXT
        return CellType.UTF16_TEXT, _Op.NTEXT
    if framing is Framing.USHORT_LEN or (kind in RAW_KINDS and kind not in raw_kinds):
        return None
    op: _Op | None = None
    primitive = CellType.INT64
    if kind is Kind.INT:
        op = _INT_OPS.get(size)
    elif kind is Kind.BIT:
        op, primitive = (_Op.BIT if size == 1 else None), CellType.BOOL
    elif kind is Kind.FLOAT:
        op, primitive = _FLOAT_OPS.get(size), CellType.DOUBLE
    elif kind is Kind.MONEY:
        op = _MONEY_OPS.get(size)
    elif kind is Kind.DECIMAL:
        op = _Op.DECIMAL if size in _DECIMAL_SIZES else None
    elif kind is Kind.DATE:
        op = _Op.DATE if size == _DATE_BYTES else None
    elif kind is Kind.DATETIME2:
        valid = 0 <= column.scale < len(TIME_BYTES)
        op = _Op.DATETIME2 if valid and size == TIME_BYTES[column.scale] + 3 else None
    elif kind is Kind.DATETIME:
        op = _Op.DATETIME if size == _DATETIME_BYTES else None
    elif kind is Kind.SMALLDATETIME:
        op = _Op.SMALLDATETIME if size == _SMALLDATETIME_BYTES else None
    return None if op is None else (primitive, op)


def primitives(layout: Layout, raw_kinds: frozenset[Kind]) -> tuple[CellType, ...] | None:
    """Each column's primitive, or None if a column has none (the scanner cannot be used).

    MONEY, DECIMAL, DATE, DATETIME2, DATETIME and SMALLDATETIME have one only when they are
    decoded raw (``raw_kinds``); TIME, BINARY and GUID never do.
    """
    ops = [_op(column, raw_kinds) for column in layout.columns]
    if any(op is None for op in ops):
        return None
    return tuple(op[0] for op in ops if op is not None)


def covers(layout: Layout, raw_kinds: frozenset[Kind]) -> bool:
    """Whether the compiled scanner is built and has a cell for every column of ``layout``
    (of which there is at least one), its ``raw_kinds`` read raw."""
    return AVAILABLE and bool(primitives(layout, raw_kinds))


def program(layout: Layout, raw_kinds: frozenset[Kind]) -> bytes:
    """The scanner's program for ``layout`` (see the module docstring)."""
    out = bytearray()
    for column in layout.columns:
        op = _op(column, raw_kinds)
        if op is None:
            raise UnsupportedLayout(
                f"column {column.name!r} ({column.kind.value}, {column.framing.name},"
                f" {column.size} bytes) has no primitive cell"
            )
        text = op[1] in (_Op.TEXT, _Op.NTEXT)
        size = 0 if text else column.size
        scale = column.scale if op[1] is _Op.DATETIME2 else 0
        narrower = sum(1 << (s.bit_length() - 1) for s in column.narrower_sizes)
        most = column.size if text else 0
        out += _PROGRAM.pack(op[1], column.framing.value, size, scale, narrower, 0, most)
    return bytes(out)


def refuse(pos: int, decode: Callable[..., object], *args: object) -> NoReturn:
    """After the scanner stopped MALFORMED at ``pos``: ``decode(*args)``, the Python decoder of
    the same layout from ``pos``, which raises the :class:`~tdsrows.errors.StreamError` naming
    the column and the problem. (If it does not, the two decoders disagree: a bug,
    AssertionError.)"""
    decode(*args)
    raise AssertionError(
        f"the compiled scanner refused the row at byte {pos}, which the Python decoder reads"
    )


@dataclass(frozen=True)
class TuplePlan:
    """How ``_rowscan.tuples`` builds a layout's rows: per column a conversion and its scale
    (``conversions``, :data:`PLAN_BYTES` a column) and the Python callable it needs, if any
    (``helpers``: decimal.Decimal for DECIMAL, the code page's decoder for BYTE_TEXT)."""

    conversions: bytes
    helpers: tuple[Any, ...]


def _conversion(column: Column, raw: bool) -> tuple[Conversion, int, Any]:
    """(conversion, scale, helper) giving ``column``'s value as the Python decoder does."""
    kind = column.kind
    if kind is Kind.INT or raw:
        return Conversion.INT, 0, None
    if kind is Kind.FLOAT:
        return Conversion.FLOAT, 0, None
    if kind is Kind.BIT:
        return Conversion.BOOL, 0, None
    if kind is Kind.DATE:
        return Conversion.DATE, 0, None
    if kind is Kind.DATETIME2:
        return Conversion.DATETIME2, column.scale, None
    if kind is Kind.NTEXT:
        return Conversion.UTF16, 0, None
    if kind is Kind.TEXT:
        assert column.codec is not None
        return Conversion.BYTE_TEXT, 0, values.text_decoder(column.codec)
    # pytds divides Decimal(scaled) by 10**scale (values.decimal_value, money_value); the C
    # side gives Decimal the quotient's exact coefficient and exponent instead.
    scale = values.MONEY_SCALE if kind is Kind.MONEY else column.scale
    if kind in (Kind.DECIMAL, Kind.MONEY):
        return Conversion.DECIMAL, scale, values._Decimal
    raise UnsupportedLayout(f"column {column.name!r} ({kind.value}) has no primitive cell")


def tuple_plan(layout: Layout, raw_kinds: frozenset[Kind]) -> TuplePlan:
    """The plan building ``layout``'s rows from cells scanned with :data:`OBJECT_KINDS`, as
    ``compile_layout(layout, raw_kinds=raw_kinds).decode`` gives them (``raw_kinds``: columns
    left as their integers)."""
    conversions = bytearray()
    helpers = []
    for column in layout.columns:
        conversion, scale, helper = _conversion(column, column.kind in raw_kinds & RAW_KINDS)
        conversions += bytes((conversion, scale))
        helpers.append(helper)
    return TuplePlan(bytes(conversions), tuple(helpers))


class RowScanner:
    """The compiled scanner for one layout, with its cell and row-start buffers."""

    def __init__(
        self, layout: Layout, raw_kinds: frozenset[Kind], *, batch_rows: int = BATCH_ROWS
    ) -> None:
        if _scan is None:
            raise UnsupportedLayout(
                "tdsrows._rowscan is not built (no C compiler at install time): rows go"
                " through the Python decoder"
            )
        if not layout.columns:
            raise UnsupportedLayout("a layout without columns has no rows to scan")
        if batch_rows < 1:
            raise ValueError(f"batch_rows must be at least 1, got {batch_rows}")
        self._scan: _ScanFn = _scan
        self.program = program(layout, raw_kinds)  # raises UnsupportedLayout, naming a column
        found = primitives(layout, raw_kinds)
        assert found is not None  # program() accepted every column
        self.primitives: tuple[CellType, ...] = found
        self.width = len(found)
        self.batch_rows = batch_rows
        self.cells = bytearray(batch_rows * self.width * CELL_BYTES)
        self.starts = bytearray(batch_rows * START_BYTES)

    def scan(self, data: bytes, pos: int, max_rows: int) -> tuple[int, int, int]:
        """``(pos_after, stop, rows)``: rows from ``pos`` on, into the cells (see above)."""
        return self._scan(data, pos, self.program, self.cells, self.starts, max_rows)

    def row_start(self, k: int) -> int:
        """Offset in the scanned data of row ``k``'s token byte."""
        start: int = _START.unpack_from(self.starts, k * START_BYTES)[0]
        return start

    def slow_end(self, rows: int) -> int:
        """After a scan that wrote ``rows`` rows and stopped SLOW: where the SLOW row ends."""
        return self.row_start(rows)

    def tuples(self, data: bytes, first: int, rows: int, plan: TuplePlan, out: list[Any]) -> int:
        """Rows ``first`` to ``rows - 1`` of the last scan of ``data`` (scanned with
        :data:`OBJECT_KINDS`) appended to ``out`` as tuples; ``rows``, or the row declined."""
        assert _tuples is not None  # the scanner exists, so the module does
        return _tuples(data, self.cells, first, rows, plan.conversions, plan.helpers, out)

    def value(self, k: int, i: int, data: bytes) -> object:
        """The Python value of cell (row ``k``, column ``i``): for tests and debugging.

        None for NULL; int, float or bool; for text the raw bytes, not decoded.
        """
        value, length, _ = CELL.unpack_from(self.cells, (k * self.width + i) * CELL_BYTES)
        if length < 0:
            return None
        primitive = self.primitives[i]
        if primitive is CellType.INT64:
            return value
        if primitive is CellType.DOUBLE:
            number: float = _DOUBLE.unpack(_BITS.pack(value))[0]
            return number
        if primitive is CellType.BOOL:
            return bool(value)
        return data[value : value + length]
