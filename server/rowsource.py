"""Where an export's rows come from: the fast row path, or pytds' own decoding.

The fast path (:mod:`tdsrows`) decodes the rows of the result set with code generated for its
columns, a packet at a time, and writes each row's `<row>` element in the same generated code,
with the workbook's own cell encoders (``xlsx.RowEncoder.row_code``, through
:class:`XlsxRowText`): a row goes from the wire to its XML without a tuple in between. pytds
keeps everything else (the procedure call, errors, the attention handshake). A result set the
fast path cannot decode (a MAX type, sql_variant, ...) or a configuration that turns it off
falls back to ``cursor.fetchmany`` and tuples, decided per result set and logged once per
export at DEBUG.

Decimals, money, dates, datetime2, datetime and smalldatetime values of the fast path are ints
(``tdsrows.RAW_KINDS``: scaled integers, days and ticks since 0001-01-01, milliseconds since
1900-01-01) that the writer turns into cells without building ``Decimal``, ``date`` or
``datetime`` objects (``xlsx.Column.ints``): building those costs more than the writer's
arithmetic on the ints (a scaled decimal's text is the repr of one float division, a date's
serial one addition). :meth:`RowSource.int_meanings` tells the writer what they stand for.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, Final

import xlsx
import xlsx.native
from primitive_cells import CellType, CellWriter
from tdsrows import RAW_KINDS, FastRows, Kind, UnsupportedLayout, scan
from tdsrows.genfill import SmallInt
from tdsrows.pytds_link import check_values
from tdsrows.values import DATETIME_DAY_ZERO, DATETIME_TICKS_PER_SECOND, DAY_ZERO, MONEY_SCALE
from xlsx.native import plan_rows
from xlsx.rows import ExactInt, RowEncoder

logger = logging.getLogger("server.export")

_MILLISECOND_KINDS: Final = frozenset({Kind.DATETIME, Kind.SMALLDATETIME})


def row_path(*, fast: bool, compiled: bool) -> str:
    """Which code turns rows into XML, for the start-up log line."""
    if not fast:
        return "rows decoded by pytds"
    if not compiled:
        return "fast row path, generated Python code"
    if scan.AVAILABLE and xlsx.native.AVAILABLE:
        return "fast row path, compiled row code"
    return "fast row path, generated Python code (the compiled row code is not built)"


class XlsxRowText:
    """The workbook's row encoder as the text the fast path's generated code writes."""

    def __init__(self, encoder: RowEncoder) -> None:
        self._encoder = encoder

    def statements(self, shape: Sequence[type], names: Sequence[str]) -> list[str]:
        kinds = [ExactInt if kind is SmallInt else kind for kind in shape]
        return self._encoder.row_code(kinds, names, target="text")

    def namespace(self) -> dict[str, object]:
        return self._encoder.namespace()

    def encode(self, row: Sequence[object], rs: str) -> str:
        return self._encoder.encode(row, rs)

    def compiled(
        self, cell_types: Sequence[CellType], byte_tables: Sequence[str | None]
    ) -> CellWriter | None:
        return plan_rows(self._encoder, cell_types, byte_tables)


class FastXmlSource:
    """The fast path as the workbook's row source (``xlsx.sources.RowXmlSource``): rows go
    from the wire to their ``<row>`` XML in generated code, ``fill`` writing a batch of them."""

    def __init__(self, fast: FastRows, *, compiled: bool = True) -> None:
        self.fast = fast
        self._compiled = compiled

    def bind(self, encoder: RowEncoder) -> None:
        self.fast.use_text(XlsxRowText(encoder), compiled=self._compiled)

    @property
    def finished(self) -> bool:
        return self.fast.finished

    def fill(self, out: list[str | bytes], last: int, limit: int, room: int) -> int:
        return self.fast.fill(out, last, limit, room)


class RowSource:
    """The rows of one cursor's current result set, for one export's thread."""

    def __init__(self, cursor: Any, *, fast: bool, batch_rows: int, label: str) -> None:
        self._cursor = cursor
        self._batch_rows = batch_rows
        self.fast: FastRows | None = None
        if fast:
            try:
                self.fast = FastRows.open(cursor, raw_kinds=RAW_KINDS)
            except UnsupportedLayout as exc:
                logger.debug("%s: rows decoded by pytds (%s)", label, exc)
        if self.fast is None:
            # pytds reads the rows: a value of a length its column's type does not have is the
            # fast path's StreamError there too, not a value read from the wrong bytes.
            check_values(cursor)

    def first(self) -> list[Any]:
        """Wait for the first row (or the end of the set): pytds' first rows, or [] when the
        fast path reads them (it has made sure a row or the end is next)."""
        if self.fast is not None:
            self.fast.wait_for_row()
            return []
        return list(self._cursor.fetchmany(1))

    def fetch(self) -> list[Any]:
        """pytds' next rows ([] at the end of the result set)."""
        return list(self._cursor.fetchmany(self._batch_rows))

    def settle(self) -> None:
        """Bring the connection back to idle after the export stopped reading (attention sent
        now if none is on its way; the rows still in flight skipped, not decoded)."""
        if self.fast is not None and not self.fast.finished:
            self.fast.drain_cancelled()
        else:
            self._cursor.cancel()

    def int_meanings(self) -> Sequence[xlsx.IntMeaning | None] | None:
        """Per column, what an int of the fast path stands for (None: the fast path is off)."""
        if self.fast is None:
            return None
        meanings: list[xlsx.IntMeaning | None] = []
        raw = self.fast.raw_kinds
        for column in self.fast.layout.columns:
            if column.kind is Kind.DECIMAL and Kind.DECIMAL in raw:
                meanings.append(xlsx.ScaledDecimal(column.scale))
            elif column.kind is Kind.MONEY and Kind.MONEY in raw:
                meanings.append(xlsx.ScaledDecimal(MONEY_SCALE))
            elif column.kind is Kind.DATE and Kind.DATE in raw:
                meanings.append(xlsx.DayCount(DAY_ZERO))
            elif column.kind is Kind.DATETIME2 and Kind.DATETIME2 in raw:
                meanings.append(xlsx.TickCount(10**column.scale, DAY_ZERO))
            elif column.kind in _MILLISECOND_KINDS and column.kind in raw:
                meanings.append(xlsx.TickCount(DATETIME_TICKS_PER_SECOND, DATETIME_DAY_ZERO))
            else:
                meanings.append(None)
        return meanings
