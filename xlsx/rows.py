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
import math
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from xlsx import dates, escape, styles
from xlsx.cells import (
    BOOL_OPEN,
    CELL_OPEN,
    MAX_EXACT_INT,
    NUMBER_CLOSE,
    TEXT_CLOSE,
    TEXT_OPEN,
    CellEncoder,
    number_open,
)
from xlsx.errors import XlsxValueError
from xlsx.meanings import scaled_text
from xlsx.spec import DayCount, ScaledDecimal, TickCount

RowFunction = Callable[[Sequence[object], str], str]


# Scaled decimals written from a float when the scale is at most this: 10**-4 and above, a
# float's repr is plain notation (repr switches to exponents below 1e-4 and from 1e16).
FLOAT_TEXT_SCALE: Final = 4
# A whole Decimal whose text (sign included) has 16 characters or more goes the float route in
# the Decimal encoder ("...1.0"): the int's digits are its text only strictly between these.
PLAIN_WHOLE: Final = (-(10**14), 10**15)


class ExactInt(int):
    """In a shape given to :meth:`RowEncoder.row_code`: an int the caller guarantees is within
    +/-(2**53 - 1), so it is written as a number with no range check (a marker, never made)."""


@dataclass(frozen=True)
class TickSerial:
    """A tick count ``v``'s serial in the units a column shows: ``x = (v + origin_ticks) *
    multiplier // divisor``, written as ``x / per_day`` when ``low <= x < high``."""

    origin_ticks: int
    multiplier: int
    divisor: int
    per_day: int
    low: int
    high: int


def _number(ref: str, style: int, value: str) -> str:
    """The f-string fragment of a number cell: the markup of cells.py around ``value``."""
    return f"{CELL_OPEN}{ref}{number_open(style)}{value}{NUMBER_CLOSE}"


# Shapes are combinations of types and NULLs; a result set with many nullable columns could
# produce many. Past this many compiled shapes the reference encoder handles new ones, which
# bounds memory (each compiled function is a few KiB).
MAX_COMPILED_SHAPES: Final = 256
# Compiling costs ~75 us per column (1.2 s for one 16,384-column shape), against ~1 us per cell
# through the reference encoder: past this many compiled columns in all, new shapes are not
# compiled, so very wide rows with varying NULL patterns cannot spend minutes compiling.
MAX_COMPILED_COLUMNS: Final = 16_384


class RowEncoder:
    """Encodes data rows of one stream; holds the compiled shapes."""

    def __init__(self, cells: CellEncoder) -> None:
        self.cells = cells
        self.width = len(cells.letters)
        # Compiled encoders by shape; the sheet loop looks here first (a method call costs).
        self.compiled: dict[tuple[type, ...], RowFunction] = {}
        self._compiled_columns = 0

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
        fn = self.compiled.get(shape)
        if fn is None:
            if (
                len(shape) > self.width
                or len(self.compiled) >= MAX_COMPILED_SHAPES
                or self._compiled_columns + len(shape) > MAX_COMPILED_COLUMNS
            ):
                return self.reference
            fn = self.compiled[shape] = self._compile(shape)
            self._compiled_columns += len(shape)
        return fn

    def encode(self, row: Sequence[object], rs: str) -> str:
        return self.for_shape(tuple(map(type, row)))(row, rs)

    def _compile(self, shape: tuple[type, ...]) -> RowFunction:
        names = [f"v{i}" for i in range(len(shape))]
        lines = ["def encode_row(row, rs):"]
        if shape:
            lines.append("    " + ", ".join(names) + ", = row")
        lines += ["    " + line for line in self.row_code(shape, names)]
        lines.append("    return xml")
        namespace = dict(self.namespace())
        source = "\n".join(lines) + "\n"
        exec(compile(source, f"<xlsx row shape {len(self.compiled)}>", "exec"), namespace)
        fn = namespace["encode_row"]
        assert callable(fn)
        return fn

    def row_code(
        self, shape: Sequence[type], names: Sequence[str], target: str = "xml"
    ) -> list[str]:
        """Python statements that set ``target`` to the `<row>` element of one row.

        The seam for sources that generate their own code (a decoder specialised to a result
        set): the value of column i is in the variable ``names[i]``, of type ``shape[i]``
        (``type(None)`` for an empty cell; :class:`ExactInt` for an int the caller knows is
        within +/-(2**53 - 1), e.g. a 32-bit column); the row number, as text, is in ``rs``. The
        statements need the names of :meth:`namespace` and bind temporaries prefixed ``x_``.
        They write exactly what :meth:`encode` writes for the same values.
        """
        guards: list[str] = []
        fast: list[str] = []  # f-string fragments of the whole row when every guard holds
        cells: list[str] = []  # per cell, for the fallback: fast when its own guard holds
        for i, kind in enumerate(shape):
            guard, part = self._column_code(i, kind, names[i])
            fast.append(part)
            if guard:
                guards.append(f"({guard})")
                cells.append(f"(f'{part}' if {guard} else _cell({names[i]}, {i}, rs))")
            elif part:
                cells.append(f"f'{part}'")
        # Groups joined by one str.join: a chain of `+` nests one level per group in the parsed
        # source, and a very wide row (16,384 columns) exceeds the compiler's recursion limit.
        row = (
            "''.join(("
            + "".join(
                f"f'{''.join(group)}', " for group in _groups(['<row r="{rs}">', *fast, "</row>"])
            )
            + "))"
        )
        if not guards:
            return [f"{target} = {row}"]
        # Every guard holds (the usual case): the whole row is one expression of f-strings;
        # else only the cells whose guard failed go to the reference encoder.
        return [
            f"if {' and '.join(guards)}:",
            f"    {target} = {row}",
            "else:",
            f"    {target} = ''.join((f'<row r=\"{{rs}}\">', " + ", ".join(cells) + ", '</row>'))",
        ]

    def namespace(self) -> dict[str, object]:
        """The names :meth:`row_code`'s statements refer to."""
        namespace: dict[str, object] = {
            "_cell": self.cells.cell,
            "_scaled_text": scaled_text,
            "_needs_work": escape.NEEDS_WORK,
            "_EPOCH": dates.EPOCH,
            # One tick per 10**-d second, d = 0..6.
            "_TICK": [dt.timedelta(microseconds=10 ** (6 - d)) for d in range(7)],
            "_INF": float("inf"),
            "_BOOL": ("0", "1"),
            # Opening and closing markup of an int cell: [0] as text (beyond 2**53), [1] number.
            "_INT_OPEN": (TEXT_OPEN, number_open(0)),
            "_INT_CLOSE": (TEXT_CLOSE, NUMBER_CLOSE),
        }
        for style in set(self.cells.column_styles) - {0}:
            namespace[f"_INT_OPEN_{style}"] = (TEXT_OPEN, number_open(style))
        return namespace

    def _column_code(self, i: int, kind: type, v: str) -> tuple[str, str]:
        """(guard expression, f-string fragment) for column i holding values of type `kind`.

        ``v`` is the name of the variable holding the value. Names bound in a guard with := are
        used by the fragment, which is only evaluated after its guard held.
        """
        ref = self.cells.letters[i] + "{rs}"
        style = self.cells.column_styles[i]

        def text(inner: str) -> str:
            return f"{CELL_OPEN}{ref}{TEXT_OPEN}{inner}{TEXT_CLOSE}"

        if kind is type(None):
            return "", ""
        if kind is bool:
            return "", f"{CELL_OPEN}{ref}{BOOL_OPEN}{{_BOOL[{v}]}}{NUMBER_CLOSE}"
        if kind is int and self.cells.column_ints[i] is not None:
            return self._meaning_code(i, v, ref, style)
        if kind is ExactInt:
            return "", _number(ref, style, f"{{{v}}}")
        if kind is int:
            # No guard: the cell itself picks number or text markup (a bool indexes the pair).
            opening = f"_INT_OPEN_{style}" if style else "_INT_OPEN"
            exact = f"-{MAX_EXACT_INT} <= {v} <= {MAX_EXACT_INT}"
            return "", (
                f"{CELL_OPEN}{ref}{{{opening}[(x_k{i} := {exact})]}}{{{v}}}{{_INT_CLOSE[x_k{i}]}}"
            )
        if kind is float:
            return f"-_INF < {v} < _INF", _number(ref, style, f"{{{v}!r}}")
        if kind is decimal.Decimal:
            return (
                f'{v}.is_finite() and len(x_d{i} := str({v})) < 16 and "E" not in x_d{i}',
                _number(ref, style, f"{{x_d{i}}}"),
            )
        if kind is str:
            return (
                f"len({v}) <= {escape.MAX_CELL_UTF16_UNITS // 2} and _needs_work({v}) is None"
                f' and "_x" not in {v} and {v}.strip() == {v}',
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
                f"(x_n{i} := {v}.toordinal() - {dates.EPOCH_ORDINAL}) >= {first}",
                _number(ref, style or styles.STYLE_DATE, f"{{x_n{i}}}"),
            )
        decimals = self.cells.column_decimals[i]
        if kind is dt.datetime and decimals:
            # Floored to the decimals of a second the column's format shows: exact int / int.
            per_day = 86_400 * 10**decimals
            return (
                f"{v}.tzinfo is None and"
                f" (x_n{i} := ({v} - _EPOCH) // _TICK[{decimals}]) >= {first * per_day}",
                _number(ref, style or styles.STYLE_DATETIME, f"{{x_n{i} / {per_day}!r}}"),
            )
        if kind is dt.datetime:
            # Whole seconds since 1899-12-30; one correctly rounded division makes the serial.
            seconds = f"{v}.toordinal() * 86400 + {v}.hour * 3600 + {v}.minute * 60 + {v}.second"
            return (
                f"{v}.tzinfo is None and"
                f" (x_n{i} := {seconds} - {dates.EPOCH_ORDINAL * 86_400}) >= {first * 86_400}",
                _number(ref, style or styles.STYLE_DATETIME, f"{{x_n{i} / 86400!r}}"),
            )
        if kind is dt.time and not style:
            fraction = f"({v}.hour * 3600 + {v}.minute * 60 + {v}.second) / 86400"
            return f"{v}.tzinfo is None", _number(ref, styles.STYLE_TIME, f"{{{fraction}!r}}")
        # Subclasses, rarer types and unsupported ones: the reference encoder decides (and raises).
        return "", f"{{_cell({v}, {i}, rs)}}"

    def _meaning_code(self, i: int, v: str, ref: str, style: int) -> tuple[str, str]:
        """(guard, fragment) of an int that stands for a decimal, date or datetime (Column.ints).

        The same cell the reference encoder writes for the value the int stands for: the
        guards keep to the plain cases (a serial from 1900-03-01 to 9999-12-31, a decimal whose
        text is plain notation), everything else goes to the reference encoder.
        """
        meaning = self.cells.column_ints[i]
        first, last = dates.FIRST_EXACT_SERIAL, dates.LAST_SERIAL
        if isinstance(meaning, ScaledDecimal) and meaning.scale <= FLOAT_TEXT_SCALE:
            # The Decimal encoder's text, from a float: the int and 10**scale are exact doubles,
            # so int / 10**scale is the double nearest the value, whose repr is the Decimal's
            # plain digits (at most 16 significant: the shortest repr that round-trips), and a
            # whole value is the int's own digits; both as long as the int is within 2**53.
            unit = 10**meaning.scale
            low, high = PLAIN_WHOLE
            return (
                f"-{MAX_EXACT_INT} <= {v} <= {MAX_EXACT_INT}"
                f" and ({v} % {unit} or {low * unit} < {v} < {high * unit})",
                _number(ref, style, f"{{({v} / {unit} if {v} % {unit} else {v} // {unit})!r}}"),
            )
        if isinstance(meaning, ScaledDecimal):
            return (
                f"(x_d{i} := _scaled_text({v}, {meaning.scale})) is not None",
                _number(ref, style, f"{{x_d{i}}}"),
            )
        if isinstance(meaning, DayCount):
            offset = meaning.origin.toordinal() - dates.EPOCH_ORDINAL
            return (
                f"{first} <= (x_n{i} := {v} + {offset}) <= {last}",
                _number(ref, style or styles.STYLE_DATE, f"{{x_n{i}}}"),
            )
        assert isinstance(meaning, TickCount)
        t = self.tick_serial(i, meaning)
        ticks = f"({v} + {t.origin_ticks})"
        if t.multiplier != 1:
            ticks += f" * {t.multiplier}"
        if t.divisor != 1:
            ticks = f"({ticks}) // {t.divisor}"
        return (
            f"{t.low} <= (x_n{i} := {ticks}) < {t.high}",
            _number(ref, style or styles.STYLE_DATETIME, f"{{x_n{i} / {t.per_day}!r}}"),
        )

    def tick_serial(self, i: int, meaning: TickCount) -> TickSerial:
        """How column i writes a tick count: floored to the decimals of a second the column
        shows, as datetimes are (one floor division: floors of floors by whole numbers
        compose)."""
        per_second = meaning.per_second
        shown = 10 ** self.cells.column_decimals[i]
        per_day = dates.SECONDS_PER_DAY * shown
        origin = (meaning.origin.toordinal() - dates.EPOCH_ORDINAL) * dates.SECONDS_PER_DAY
        scale = math.gcd(shown, per_second)
        return TickSerial(
            origin_ticks=origin * per_second,
            multiplier=shown // scale,
            divisor=per_second // scale,
            per_day=per_day,
            low=dates.FIRST_EXACT_SERIAL * per_day,
            high=(dates.LAST_SERIAL + 1) * per_day,
        )


# CPython 3.11 compiles an f-string of more than 30 parts into a list and str.join, which is
# markedly slower than its BUILD_STRING for up to 30 parts: rows are built from groups that stay
# under that (counting each {} field and the literal text around it).
_MAX_FSTRING_PARTS: Final = 30


def _groups(fragments: list[str]) -> list[list[str]]:
    groups: list[list[str]] = [[]]
    parts = 0
    for fragment in fragments:
        count = 2 * fragment.count("{") + 1
        if parts + count > _MAX_FSTRING_PARTS and groups[-1]:
            groups.append([])
            parts = 0
        groups[-1].append(fragment)
        parts += count
    return groups
