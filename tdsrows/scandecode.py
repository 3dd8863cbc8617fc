"""Rows as tuples in compiled code: the row scanner's cells, built into tuples in C.

The generated decoder (``tdsrows.codegen.CompiledLayout.decode``) builds each row's tuple in
Python. When the scanner is built (:mod:`tdsrows.scan`) and has a cell for every column,
:class:`ScannedDecode` does the same job a batch of rows at a time in two compiled calls: the
scanner puts the rows' values in a flat buffer of cells (decimals, dates and datetime2 as their
integers), and ``_rowscan.tuples`` turns the cells into the objects pytds gives. A row either
call cannot take (a decimal beyond 64 bits, a negative zero, a length the layout does not
expect, a date past 9999-12-31) is decoded alone by the generated decoder, given exactly that
row's bytes, so that the row gives the very tuple, or raises the very error, it gives in the
generated decoder's own loop; the compiled calls resume after it. A row the scanner finds
malformed is given to the generated decoder too, which raises the error that names it. The
tuples are the same either way.
"""

from __future__ import annotations

from typing import Any

from tdsrows.codegen import Append, CompiledLayout
from tdsrows.scan import BATCH_ROWS, OBJECT_KINDS, RowScanner, refuse, tuple_plan
from tdsrows.stops import FULL, INCOMPLETE, MALFORMED, SLOW


class ScannedDecode:
    """A decode function (codegen.DecodeFn) through the scanner and the compiled tuple
    builder, falling back row by row on ``generated`` (compiled for the same layout and raw
    kinds: raw columns stay integers)."""

    def __init__(self, generated: CompiledLayout, *, batch_rows: int = BATCH_ROWS) -> None:
        # The scanner reads every kind it can raw; the plan makes objects of those the
        # generated decoder gives as objects.
        self._scanner = RowScanner(generated.layout, OBJECT_KINDS, batch_rows=batch_rows)
        self._plan = tuple_plan(generated.layout, generated.raw_kinds)
        self._generated = generated.decode

    def decode(self, data: bytes, pos: int, append: Append) -> tuple[int, int]:
        """As codegen's decode: every complete row from ``pos`` to ``append``; (where it
        stopped, the token byte there or INCOMPLETE)."""
        owner = getattr(append, "__self__", None)
        if type(owner) is list and append == owner.append:
            return self.decode_into(data, pos, owner)
        out: list[tuple[Any, ...]] = []
        try:
            return self.decode_into(data, pos, out)
        finally:  # the rows decoded before an error, as the generated decoder appends them
            for row in out:
                append(row)

    def decode_into(self, data: bytes, pos: int, out: list[Any]) -> tuple[int, int]:
        """:meth:`decode` appending to the list ``out`` (no call per row)."""
        scanner = self._scanner
        scan = scanner.scan
        build = scanner.tuples
        plan = self._plan
        batch = scanner.batch_rows
        while True:
            end, stop, rows = scan(data, pos, batch)
            first = 0
            while first < rows:
                # An error a helper raises (a code page's decoder) propagates, after the rows
                # before it, as it does from the generated decoder.
                k = build(data, first, rows, plan, out)
                if k == rows:
                    break
                start = scanner.row_start(k)
                after = scanner.row_start(k + 1) if k + 1 < rows else end
                if not self._one_row(data, start, after, out):
                    return start, INCOMPLETE
                first = k + 1
            if stop == SLOW:
                after = scanner.slow_end(rows)
                if not self._one_row(data, end, after, out):
                    return end, INCOMPLETE
                pos = after
            elif stop == FULL:
                pos = end
            elif stop == MALFORMED:
                refuse(end, self._generated, data, end, _discard)
            else:
                return end, stop

    def _one_row(self, data: bytes, start: int, after: int, out: list[Any]) -> bool:
        """The generated decoder on the row at ``data[start:after]`` alone; False if it gave
        no row (it would stop there as incomplete on the whole bytes too)."""
        count = len(out)
        self._generated(data[start:after], 0, out.append)
        return len(out) > count


def _discard(row: tuple[Any, ...]) -> None:
    """An append that keeps nothing."""
