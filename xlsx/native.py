"""Rows of typed primitive cells to `<row>` XML, in compiled code (the ``xlsx._rowxml`` module).

A source that decodes its rows in compiled code (a database driver's row scanner) can hand the
writer rows of *primitive cells* instead of Python objects: per column one
:class:`~primitive_cells.CellType`, each cell 16 bytes in a flat buffer, as
:mod:`primitive_cells` describes (a NULL cell is no cell in the sheet).

An INT64 column is written as an int of the writer's :class:`~xlsx.rows.RowEncoder` is, so a
column with ``Column.ints`` (a scaled decimal, a day or a tick count) gets the cell of the
value the int stands for. :meth:`NativeRows.encode` writes exactly the bytes the writer's
Python encoders write for the same values, and declines a row holding a value it does not write
itself (text that needs escaping, a non-finite float, an int past 2**53 standing for a decimal,
a date before 1900-03-01...): the source writes that row through :meth:`RowEncoder.encode` and
comes back for the rest. Tests hold the two paths to the same bytes.

The module is optional (a C extension, see setup.py): :data:`AVAILABLE` says whether it was
built; without it, :func:`plan_rows` returns None and the source keeps its Python path.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from typing import Any, Final

from primitive_cells import CellType
from xlsx import dates, styles
from xlsx.cells import BOOL_OPEN, CELL_OPEN, NUMBER_CLOSE, TEXT_CLOSE, TEXT_OPEN, number_open
from xlsx.rows import FLOAT_TEXT_SCALE, PLAIN_WHOLE, RowEncoder
from xlsx.spec import DayCount, ScaledDecimal, TickCount

try:
    from xlsx import _rowxml  # type: ignore[attr-defined]
except ImportError:  # built without a C compiler: the Python encoders write every row
    _rowxml = None

AVAILABLE: Final = _rowxml is not None
# The compiled float formatter alone (repr's text, or None where CPython's dtoa decides): tests.
fast_float_text: Final[Callable[[float], str | None] | None] = (
    _rowxml.fast_repr if _rowxml is not None else None
)
# The compiled code writes a tick count's serial as one division of two exact doubles, so the
# serials it accepts must stay below 2**53 in the column's units (milliseconds do; 10**-7 s
# ticks of 9999-12-31 would not, and such columns keep the Python path).
_MAX_EXACT_DOUBLE: Final = 2**53
_INT64: Final = (-(2**63), 2**63 - 1)
_BYTES: Final = 256  # a byte table's length


class _Op(enum.IntEnum):
    """The compiled code's cell writers (xlsx/_rowxml.c ``enum op``)."""

    INT = 1
    FLOAT = 2
    BOOL = 3
    SCALED_FLOAT = 4
    SCALED_TEXT = 5
    DAYS = 6
    TICKS = 7
    BYTE_TEXT = 8
    UTF16_TEXT = 9


class NativeRows:
    """The compiled writer of one stream's rows of primitive cells (see the module docstring):
    a :class:`~primitive_cells.CellWriter`."""

    def __init__(self, plan: object, width: int) -> None:
        self._plan = plan
        self.width = width

    def encode(
        self, data: bytes, cells: Any, rows: int, first_row: int, room: int
    ) -> tuple[bytes, int, int]:
        """(xml, done, stop): the first ``rows`` rows of ``cells`` numbered from ``first_row``,
        stopping before a row that would go beyond ``room`` bytes (``STOP_ROOM``) or that is
        declined (``STOP_DECLINED``; the stops of :mod:`primitive_cells`)."""
        assert _rowxml is not None
        result: tuple[bytes, int, int] = _rowxml.encode(
            self._plan, data, cells, rows, first_row, room
        )
        return result


def plan_rows(
    encoder: RowEncoder,
    types: Sequence[CellType],
    byte_tables: Sequence[str | None] | None = None,
) -> NativeRows | None:
    """The compiled writer for rows whose column i holds cells of ``types[i]``; None when the
    module is not built or a column needs what only the Python encoders write.

    ``byte_tables[i]``, for a BYTE_TEXT column: the 256 characters its bytes stand for (a
    single-byte character set, as the source decodes it; its ASCII bytes must stand for
    themselves, ValueError otherwise), so that text beyond ASCII is written too; None: only
    ASCII text is, other rows are declined.
    """
    if _rowxml is None or not types or len(types) != encoder.width:
        return None
    tables = list(byte_tables or [None] * len(types))
    columns = []
    for i, cell_type in enumerate(types):
        column = _column(encoder, i, cell_type)
        if column is None:
            return None
        table = tables[i] if cell_type is CellType.BYTE_TEXT else None
        if table is not None and len(table) != _BYTES:
            raise ValueError(f"column {i}: a byte table has {_BYTES} characters")
        columns.append((*column, table))
    return NativeRows(_rowxml.plan(columns), len(types))


def _column(encoder: RowEncoder, i: int, cell_type: CellType) -> tuple[object, ...] | None:
    """The compiled code's tuple for column i: (op, open, mid, close, alt_mid, alt_close,
    p0..p5), the texts being the markup of cells.py that row_code writes around the value."""
    cells = encoder.cells
    style = cells.column_styles[i]
    open_ = CELL_OPEN + cells.letters[i]

    def number(op: _Op, default_style: int = 0, *params: int) -> tuple[object, ...]:
        return _tuple(op, open_, number_open(style or default_style), NUMBER_CLOSE, "", "", params)

    meaning = cells.column_ints[i]
    if cell_type is CellType.INT64 and meaning is None:
        # A number, or past 2**53 its digits as text (rows.py's _INT_OPEN/_INT_CLOSE).
        return _tuple(_Op.INT, open_, number_open(style), NUMBER_CLOSE, TEXT_OPEN, TEXT_CLOSE, ())
    if cell_type is CellType.INT64 and isinstance(meaning, ScaledDecimal):
        if meaning.scale > FLOAT_TEXT_SCALE:
            return number(_Op.SCALED_TEXT, 0, meaning.scale)
        unit = 10**meaning.scale
        low, high = PLAIN_WHOLE
        # Exclusive bounds of a whole value written as its digits; the compiled code only
        # sees values within 2**53, so bounds beyond int64 can be clamped to it.
        bounds = (max(low * unit, _INT64[0]), min(high * unit, _INT64[1]))
        return number(_Op.SCALED_FLOAT, 0, unit, *bounds)
    if cell_type is CellType.INT64 and isinstance(meaning, DayCount):
        offset = meaning.origin.toordinal() - dates.EPOCH_ORDINAL
        first, last = dates.FIRST_EXACT_SERIAL, dates.LAST_SERIAL
        return number(_Op.DAYS, styles.STYLE_DATE, offset, first, last)
    if cell_type is CellType.INT64 and isinstance(meaning, TickCount):
        ticks = encoder.tick_serial(i, meaning)
        if ticks.high > _MAX_EXACT_DOUBLE:
            return None
        return number(
            _Op.TICKS,
            styles.STYLE_DATETIME,
            ticks.origin_ticks,
            ticks.multiplier,
            ticks.divisor,
            ticks.low,
            ticks.high,
            ticks.per_day,
        )
    if cell_type is CellType.DOUBLE:
        return number(_Op.FLOAT)
    if cell_type is CellType.BOOL:
        return _tuple(_Op.BOOL, open_, BOOL_OPEN, NUMBER_CLOSE, "", "", ())
    if cell_type is CellType.BYTE_TEXT:
        return _tuple(_Op.BYTE_TEXT, open_, TEXT_OPEN, TEXT_CLOSE, "", "", ())
    if cell_type is CellType.UTF16_TEXT:
        return _tuple(_Op.UTF16_TEXT, open_, TEXT_OPEN, TEXT_CLOSE, "", "", ())
    return None


def _tuple(
    op: _Op, open_: str, mid: str, close: str, alt_mid: str, alt_close: str, params: Sequence[int]
) -> tuple[object, ...]:
    texts = (t.encode() for t in (open_, mid, close, alt_mid, alt_close))
    return (int(op), *texts, *params, *[0] * (6 - len(params)))
