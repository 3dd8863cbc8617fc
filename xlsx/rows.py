"""Row encoding: one `<row>` element per data row, through a compiled encoder per row shape.

A "shape" is the tuple of the row's value types. For each shape seen, a small function is
generated whose body is one f-string with every cell reference and attribute already spelled out,
guarded by cheap checks (int within 2**53, finite float, plain text...). When a guard fails the
row is assembled cell by cell, and the cells whose guard failed go through the reference encoder
(cells.py); so the fast path only ever has to be right for the easy values, and tests check that
both paths give identical XML. Generating the code (as dataclasses and attrs do) removes the
per-cell call and type dispatch that dominate a straightforward encoder (see
tests/bench/xlsx_writer.py).
"""

import datetime as dt
import decimal
import uuid
from collections.abc import Callable, Sequence
from typing import Final

from xlsx import dates, escape, styles
from xlsx.cells import MAX_EXACT_INT, CellEncoder
from xlsx.errors import XlsxValueError

RowFunction = Callable[[Sequence[object], str], str]

# Shapes are combinations of types and NULLs; a result set with many nullable columns could
# produce many. Past this many compiled shapes the reference encoder handles new ones, which
# bounds memory (each compiled function is a few KiB).
MAX_COMPILED_SHAPES: Final = 256


class RowEncoder:
    """Encodes data rows of one stream; holds the compiled shapes."""

    def __init__(self, cells: CellEncoder) -> None:
        self.cells = cells
        self.width = len(cells.letters)
        self._shapes: dict[tuple[type, ...], RowFunction] = {}

    def reference(self, row: Sequence[object], rs: str) -> str:
        """The row through the per-cell reference encoder."""
        if len(row) > self.width:
            raise XlsxValueError(
                f"row {rs} has {len(row)} values but the header has {self.width} columns"
            )
        cell = self.cells.cell
        return f'<row r="{rs}">' + "".join([cell(v, i, rs) for i, v in enumerate(row)]) + "</row>"

    def for_shape(self, shape: tuple[type, ...]) -> RowFunction:
        """The encoder for rows of this shape (compiled on first sight)."""
        fn = self._shapes.get(shape)
        if fn is None:
            if len(shape) > self.width or len(self._shapes) >= MAX_COMPILED_SHAPES:
                return self.reference
            fn = self._shapes[shape] = self._compile(shape)
        return fn

    def encode(self, row: Sequence[object], rs: str) -> str:
        return self.for_shape(tuple(map(type, row)))(row, rs)

    def _compile(self, shape: tuple[type, ...]) -> RowFunction:
        guards: list[str] = []
        cells: list[str] = []  # per cell, for the fallback: fast when its own guard holds
        for i, kind in enumerate(shape):
            guard, part = self._column_code(i, kind)
            if not part:
                continue
            if guard:
                guards.append(f"({guard})")
                cells.append(f"(f'{part}' if {guard} else _cell(v{i}, {i}, rs))")
            else:
                cells.append(f"f'{part}'")
        fast = 'f\'<row r="{rs}">' + "".join(
            self._column_code(i, k)[1] for i, k in enumerate(shape)
        )
        names = ", ".join(f"v{i}" for i in range(len(shape)))
        lines = ["def encode_row(row, rs):"]
        if shape:
            lines.append(f"    {names}, = row")
        if guards:
            # Every guard holds (the usual case): the whole row is one f-string.
            lines.append(f"    if {' and '.join(guards)}:")
            lines.append(f"        return {fast}</row>'")
            # Some value needs the reference encoder: only its cell goes there.
            lines.append(
                "    return ''.join((f'<row r=\"{rs}\">', " + ", ".join(cells) + ", '</row>'))"
            )
        else:
            lines.append(f"    return {fast}</row>'")
        namespace: dict[str, object] = {
            "_cell": self.cells.cell,
            "_needs_work": escape.NEEDS_WORK,
            "_EPOCH": dates.EPOCH,
            "_SECOND": dates.ONE_SECOND,
            "_MICROSECOND": dates.ONE_MICROSECOND,
            "_INF": float("inf"),
        }
        source = "\n".join(lines) + "\n"
        exec(compile(source, f"<xlsx row shape {len(self._shapes)}>", "exec"), namespace)
        fn = namespace["encode_row"]
        assert callable(fn)
        return fn

    def _column_code(self, i: int, kind: type) -> tuple[str, str]:
        """(guard expression, f-string fragment) for column i holding values of type `kind`."""
        v = f"v{i}"
        ref = self.cells.letters[i] + "{rs}"
        style = self.cells.column_styles[i]
        s = f' s="{style}"' if style else ""

        def text(inner: str) -> str:
            return f'<c r="{ref}" t="inlineStr"><is><t>{inner}</t></is></c>'

        if kind is type(None):
            return "", ""
        if kind is bool:
            return "", f'<c r="{ref}" t="b"><v>{{{v}:d}}</v></c>'
        if kind is int:
            return (
                f"-{MAX_EXACT_INT} <= {v} <= {MAX_EXACT_INT}",
                f'<c r="{ref}"{s}><v>{{{v}}}</v></c>',
            )
        if kind is float:
            return f"-_INF < {v} < _INF", f'<c r="{ref}"{s}><v>{{{v}!r}}</v></c>'
        if kind is decimal.Decimal:
            return (
                f'{v}.is_finite() and len(d{i} := {v}.__str__()) < 16 and "E" not in d{i}',
                f'<c r="{ref}"{s}><v>{{d{i}}}</v></c>',
            )
        if kind is str:
            return (
                f"len({v}) <= {escape.MAX_CELL_UTF16_UNITS // 2} and _needs_work({v}) is None"
                f" and {v}.strip() == {v}",
                text(f"{{{v}}}"),
            )
        if kind is uuid.UUID:
            return "", text(f"{{{v}}}")
        if kind is bytes:
            return (
                f"len({v}) <= {(escape.MAX_CELL_UTF16_UNITS - 2) // 2}",
                text(f"0x{{{v}.hex()}}"),
            )
        first = dates.FIRST_EXACT_SERIAL
        if kind is dt.date:
            return (
                f"(n{i} := {v}.toordinal() - {dates.EPOCH_ORDINAL}) >= {first}",
                f'<c r="{ref}" s="{style or styles.STYLE_DATE}"><v>{{n{i}}}</v></c>',
            )
        if kind is dt.datetime:
            unit, per_day = ("_MICROSECOND", 86_400_000_000) if style else ("_SECOND", 86_400)
            return (
                f"{v}.tzinfo is None and (n{i} := ({v} - _EPOCH) // {unit}) >= {first * per_day}",
                f'<c r="{ref}" s="{style or styles.STYLE_DATETIME}">'
                f"<v>{{n{i} / {per_day}!r}}</v></c>",
            )
        if kind is dt.time and not style:
            return (
                f"{v}.tzinfo is None",
                f'<c r="{ref}" s="{styles.STYLE_TIME}"><v>'
                f"{{({v}.hour * 3600 + {v}.minute * 60 + {v}.second) / 86400!r}}</v></c>",
            )
        # Subclasses, rarer types and unsupported ones: the reference encoder decides (and raises).
        return "", f"{{_cell({v}, {i}, rs)}}"
