"""The export's text fill in generated code: rows straight from the wire to their text.

For a layout and a :class:`RowText` (the export: the worksheet's row code), :class:`CompiledText`
builds ``fill(data, pos, out, r, limit, room) -> (pos, stop, r, room)``: the decoder of
:mod:`tdsrows.codegen` with the row text's statements inlined where a decoder would build a
tuple, so a row goes from the wire to its `<row>` element without a tuple or a call per value.
It appends the text of rows ``r + 1``... to ``out`` until the row ``limit``, the ``room`` (in
characters) or the bytes run out, and returns where and why it stopped (:mod:`tdsrows.stops`:
a token byte, INCOMPLETE or FULL), the last row number and the room left. A row the generated
code does not read (see :mod:`tdsrows.codegen`) is decoded by the reference decoder and its
tuple given to :meth:`RowText.encode`: the same text.

Its compiled counterpart, the scanner's cells written by a compiled cell writer, is
:mod:`tdsrows.scanfill`, which falls back on this fill row by row.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections.abc import Callable, Sequence
from typing import Any, Final, Protocol

from primitive_cells import CellType, CellWriter
from tdsrows.codegen import Generated
from tdsrows.layout import Kind, Layout
from tdsrows.stops import FULL, INCOMPLETE
from tdsrows.values import RAW_KINDS


class RowText(Protocol):
    """Code that turns a decoded row into text (the export: a worksheet `<row>` element).

    The fill functions call it from inside the generated decoder, so a row goes from the
    wire to its text without a tuple or a call per value.
    """

    def statements(self, shape: Sequence[type], names: Sequence[str]) -> list[str]:
        """Statements that set ``text`` for a row whose column i is in variable ``names[i]``
        of type ``shape[i]`` (``type(None)``: NULL; :class:`SmallInt`: an int of at most 32
        bits), its 1-based number as text in ``rs``."""

    def namespace(self) -> dict[str, object]:
        """Names the statements refer to."""

    def encode(self, row: Sequence[object], rs: str) -> str:
        """The same text for a row given as a tuple (rows the generated code did not read)."""

    def compiled(
        self, cell_types: Sequence[CellType], byte_tables: Sequence[str | None]
    ) -> CellWriter | None:
        """A compiled writer of the same text for rows of the row scanner's cells, whose column
        i holds ``cell_types[i]`` (:mod:`tdsrows.scanfill`); None: the generated code writes.
        ``byte_tables[i]``: the characters of a BYTE_TEXT column's 256 bytes when its code page
        is single-byte (values.byte_table), else None."""


# Python type of each kind's value as the decoder gives it (raw kinds: int).
_VALUE_TYPES: Final[dict[Kind, type]] = {
    Kind.INT: int,
    Kind.BIT: bool,
    Kind.FLOAT: float,
    Kind.MONEY: decimal.Decimal,
    Kind.DECIMAL: decimal.Decimal,
    Kind.DATE: dt.date,
    Kind.TIME: dt.time,
    Kind.DATETIME2: dt.datetime,
    Kind.DATETIME: dt.datetime,
    Kind.SMALLDATETIME: dt.datetime,
    Kind.TEXT: str,
    Kind.NTEXT: str,
    Kind.BINARY: bytes,
    Kind.GUID: uuid.UUID,
}


class SmallInt(int):
    """In the shapes given to RowText.statements: an int of at most 32 bits (tinyint, smallint,
    int), which a double holds exactly (a marker type, never made)."""


_SMALL_INT_BYTES: Final = 4
FillFn = Callable[[bytes, int, list[Any], int, int, int], tuple[int, int, int, int]]


def _account(indent: str, *, checked: bool = False) -> list[str]:
    """Statements of a fill function after a row's ``end`` and ``text`` are known
    (``checked``: ``end`` is known not to be INCOMPLETE)."""
    incomplete = () if checked else ("if end < 0:", f"    return start, {INCOMPLETE}, r, room")
    return [
        indent + line
        for line in (
            *incomplete,
            "room -= len(text)",
            "if room < 0:",
            f"    return start, {FULL}, r, room + len(text)",
            "out.append(text)",
            "r += 1",
            "pos = end",
            "if r >= limit:",
            f"    return pos, {FULL}, r, room",
        )
    ]


class CompiledText(Generated):
    """The fill function of one layout: rows straight from the wire to their text. Columns of
    ``raw_kinds`` (within RAW_KINDS) reach the row text as ints; a raw DECIMAL's negative zero,
    which has no int, goes through the reference decoder as the Decimal -0."""

    def __init__(
        self, layout: Layout, text: RowText, *, raw_kinds: frozenset[Kind] = frozenset()
    ) -> None:
        self._text = text
        self._row_fns: dict[int, Callable[..., tuple[int, str | None]]] = {}
        super().__init__(
            layout,
            raw_kinds & RAW_KINDS,
            {
                **text.namespace(),
                "_nbc": self._row_fns,
                "_nbc_new": self._row_for_bitmap,
                "_ref_text": self._reference_text,
                "_ref_text_at": self._reference_text_at,
            },
        )
        self.fill: FillFn = self._compile_fill()

    def _types(self, nulls: int) -> list[type]:
        types: list[type] = []
        for i, column in enumerate(self.layout.columns):
            if nulls >> i & 1:
                types.append(type(None))
            elif column.kind in self.raw_kinds:
                types.append(int)
            elif column.kind is Kind.INT and column.size <= _SMALL_INT_BYTES:
                types.append(SmallInt)
            else:
                types.append(_VALUE_TYPES[column.kind])
        return types

    def _finish(self, nulls: int, values: list[str | None]) -> list[str]:
        """Bind the values to names (a plain field is its own name) and make the row's text."""
        names: list[str] = []
        lines: list[str] = []
        for i, value in enumerate(values):
            if value is None or value.isidentifier():
                names.append(value or f"v{i}")
            else:
                names.append(f"v{i}")
                lines.append(f"v{i} = {value}")
        return lines + self._text.statements(self._types(nulls), names)

    def _compile_fill(self) -> FillFn:
        row = self._row_token(
            on_fail=["end, text = _ref_text(data, p, n, 0, str(r + 1))"],
            on_done=lambda row, end: [
                f"end = {end}",
                "if end > n:",
                f"    return start, {INCOMPLETE}, r, room",
                "rs = str(r + 1)",
                *self._finish(0, row),
                *_account("", checked=True),
                "continue",
            ],
        )
        nbcrow = [
            "                fn = _nbc.get(key) or _nbc_new(key)",
            "                end, text = fn(data, p, n, str(r + 1))",
        ]
        lines = self._loop(
            "fill(data, pos, out, r, limit, room)",
            row,
            nbcrow,
            "pos, token, r, room",
            [
                *_account("            "),
                "      except _INCOMPLETE_ERRORS:",
                "        end, text = _ref_text_at(data, start, n, str(r + 1))",
                *_account("        "),
            ],
        )
        return self._compile(lines, "fill", "fill")  # type: ignore[no-any-return]

    def _row_for_bitmap(self, key: int) -> Callable[..., tuple[int, str | None]]:
        reference = self._reference_text
        return self._per_bitmap(  # type: ignore[no-any-return]
            self._row_fns,
            key,
            "data, p, n, rs",
            [f"return _ref_text(data, p, n, {key}, rs)"],
            lambda row, end: [
                f"end = {end}",
                "if end > n:",
                f"    return {INCOMPLETE}, None",
                *self._finish(key, row),
                "return end, text",
            ],
            lambda data, p, n, rs: reference(data, p, n, key, rs),
        )

    def _reference_text(
        self, data: bytes, p: int, n: int, nulls: int, rs: str
    ) -> tuple[int, str | None]:
        row: list[tuple[Any, ...]] = []
        end = self._reference.row(data, p, row.append, n, nulls)
        return (end, self._text.encode(row[0], rs)) if end >= 0 else (INCOMPLETE, None)

    def _reference_text_at(self, data: bytes, pos: int, n: int, rs: str) -> tuple[int, str | None]:
        row: list[tuple[Any, ...]] = []
        end = self._reference.token(data, pos, row.append, n)
        return (end, self._text.encode(row[0], rs)) if end >= 0 else (INCOMPLETE, None)
