"""Rows to text in compiled code: the row scanner's cells, written by a compiled cell writer.

The generated fill function (:class:`tdsrows.genfill.CompiledText`) turns rows into text in
Python. When the scanner is built (:mod:`tdsrows.scan`) and the text's owner has a compiled
writer for rows of primitive cells (:meth:`~tdsrows.genfill.RowText.compiled`, a
:class:`~primitive_cells.CellWriter`), :class:`ScannedFill` does the same job a packet at a
time in two compiled calls: the scanner puts the rows' values in a flat buffer of cells, the
writer turns them into text. Either side may turn a row down (a decimal beyond 64 bits, text
that needs escaping...): that one row goes through the generated Python fill, and the compiled
calls resume after it. The text is the same bytes either way. A row the scanner finds
malformed raises, through the generated fill, the error that names it.
"""

from __future__ import annotations

from typing import Any

from primitive_cells import STOP_ROOM, CellWriter
from tdsrows.genfill import FillFn
from tdsrows.scan import RowScanner, refuse
from tdsrows.stops import FULL, MALFORMED, SLOW


class ScannedFill:
    """A fill function (genfill.FillFn) through the scanner and a compiled cell writer."""

    def __init__(self, scanner: RowScanner, writer: CellWriter, python_fill: FillFn) -> None:
        self._scanner = scanner
        self._writer = writer
        self._python_fill = python_fill

    def fill(
        self, data: bytes, pos: int, out: list[Any], r: int, limit: int, room: int
    ) -> tuple[int, int, int, int]:
        """As genfill's fill functions: append the text of rows ``r + 1``... from ``pos`` to
        ``out``; (where it stopped, why, the last row number, room left)."""
        scan = self._scanner.scan
        cells = self._scanner.cells
        encode = self._writer.encode
        while r < limit:
            end, stop, rows = scan(data, pos, limit - r)
            if rows:
                text, done, why = encode(data, cells, rows, r + 1, room)
                if text:
                    out.append(text)
                    room -= len(text)
                r += done
                if done < rows:
                    pos = self._scanner.row_start(done)
                    if why == STOP_ROOM:
                        return pos, FULL, r, room
                    stop = SLOW  # the writer declined it: the Python fill writes it
                else:
                    pos = end
            else:
                pos = end
            if stop == SLOW:
                after, stopped, written, left = self._python_fill(data, pos, out, r, r + 1, room)
                if written == r:  # no room for it, or it is cut off
                    return after, stopped, r, left
                pos, r, room = after, written, left
            elif stop == MALFORMED:
                refuse(pos, self._python_fill, data, pos, [], r, r + 1, room)
            elif stop != FULL:
                return pos, stop, r, room
        return pos, FULL, r, room
