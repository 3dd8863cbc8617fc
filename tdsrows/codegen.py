"""Decoding code specialised to one column layout: Python source generated, compiled once.

For a layout, :func:`compile_layout` builds

- ``decode(data, pos, append) -> (pos, stop)``: decodes every complete ROW/NBCROW token from
  ``pos`` on and hands each row (a tuple) to ``append``. It returns where it stopped and why:
  the token byte found there when it is not a row (``stop >= 0``), or ``INCOMPLETE`` when the
  bytes end inside a row (that row is decoded again once more bytes arrived).
- ``skip(data, pos) -> (pos, stop)``: the same walk over the rows' lengths, building nothing
  (what a cancelled stream needs until the server acknowledges).

Why generated code: per value, a call and a type dispatch cost more than the decoding itself.
The generated ROW body reads each run of fixed-width cells (their length bytes included) with
one ``struct.unpack_from``, checks every length in one expression and builds the tuple in one
go; a value the expression did not expect (a NULL inside a ROW token, an unusual length) sends
that row to the per-cell reference decoder in :mod:`tdsrows.cells`. NBCROW tokens get one such
function per null bitmap seen, compiled on first sight.

The hot path checks every length a value has on the wire (a fixed size, at most the declared
size of text, an even one for UTF-16) in its guard, but not the bounds of the bytes: a row
cut off by the end of ``data`` raises ``IndexError``/``struct.error`` or ends past
``len(data)``, and either way the reference decoder, whose checks are all explicit, reads the
row again and decides: incomplete (never appended), or a :class:`~tdsrows.errors.StreamError`
naming the column and what its value breaks. A value is computed only once its row is known
to be whole.
"""

from __future__ import annotations

import datetime as dt
import decimal
import struct
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, Protocol

from tdsrows import cells, values
from tdsrows.layout import TICKS_PER_DAY, TIME_BYTES, Column, Framing, Kind, Layout

if TYPE_CHECKING:
    from tdsrows.scan import Primitive
    from tdsrows.scanfill import CellText

ROW_TOKEN: Final = 0xD1
NBCROW_TOKEN: Final = 0xD2
INCOMPLETE: Final = -1
# What the hot path raises on a row cut off by the end of the buffer (and on a time of a day or
# more, whose second has no entry in the table of times): the reference decoder then decides.
INCOMPLETE_ERRORS: Final = (IndexError, struct.error)
# Null bitmaps compiled into functions of their own, per layout; rarer patterns beyond this go
# through the reference decoder. Each compiled function is a few KiB.
MAX_COMPILED_BITMAPS: Final = 256

Append = Callable[[tuple[Any, ...]], object]
DecodeFn = Callable[[bytes, int, Append], tuple[int, int]]
SkipFn = Callable[[bytes, int], tuple[int, int]]
# (data, pos, append, end of data) -> position after the row, or INCOMPLETE
RowFn = Callable[[bytes, int, Append, int], int]

# Kinds that can be decoded to ints instead of objects ("raw"), and what the int is:
# DECIMAL and MONEY the scaled integer (value * 10**scale; money's scale is 4), DATE the days since
# 0001-01-01, DATETIME2 the 10**-scale second ticks since 0001-01-01 00:00 (MS-TDS 2.2.5.5.1.8),
# DATETIME and SMALLDATETIME the milliseconds since 1900-01-01 00:00 (values.datetime_raw).
RAW_KINDS: Final = frozenset(
    {Kind.DECIMAL, Kind.MONEY, Kind.DATE, Kind.DATETIME2, Kind.DATETIME, Kind.SMALLDATETIME}
)

# Struct codes of each fixed payload, by kind and size.
_INT_CODES: Final = {1: "B", 2: "h", 4: "i", 8: "q"}
_FLOAT_CODES: Final = {4: "f", 8: "d"}
_TIME_CODES: Final = {3: "HB", 4: "I", 5: "IB"}
_DECIMAL_CODES: Final = {4: "I", 8: "Q", 12: "QI", 16: "QQ"}


@dataclass
class _Cell:
    """How the generated code reads one present value."""

    fmt: str  # struct codes of the fixed part, length prefix included
    fields: list[str]  # names bound by the unpack, in order
    guard: str  # expression over the fields that must hold ("" = always)
    value: str  # expression of the value (may use the slice ``s{i}``)
    variable: bool = False  # a USHORT_LEN value: a slice of the length just read follows
    size: int = 0  # bytes of the fixed part


@dataclass
class _Names:
    """Names the generated code refers to, bound in its namespace."""

    namespace: dict[str, object] = field(default_factory=dict)

    def bind(self, prefix: str, value: object) -> str:
        for name, bound in self.namespace.items():
            if bound is value and name.startswith(prefix):
                return name
        name = f"{prefix}{len(self.namespace)}"
        self.namespace[name] = value
        return name


def _join_int(fields: list[str], code: str) -> str:
    """The integer held by little-endian fields unpacked with ``code`` (e.g. "HB" = 3 bytes)."""
    if code in ("HB", "IB"):
        shift = 16 if code == "HB" else 32
        return f"({fields[0]} | {fields[1]} << {shift})"
    if code in ("QI", "QQ"):
        return f"({fields[0]} | {fields[1]} << 64)"
    return fields[0]


def _micro(ticks: str, scale: int, i: int) -> str:
    """Binds ``q{i}``: microseconds of 10**-scale second ``ticks``, truncated (pytds' rule)."""
    if scale == 7:
        return f"q{i} := {ticks} // 10"
    return f"q{i} := {ticks} * {10 ** (6 - scale)}"


def _cell(column: Column, i: int, raw_kinds: frozenset[Kind], names: _Names) -> _Cell:
    """Struct layout, guard and value expression of column ``i``."""
    kind, framing = column.kind, column.framing
    raw = kind in raw_kinds
    prefix = {Framing.FIXED: "", Framing.BYTE_LEN: "B", Framing.USHORT_LEN: "H"}[framing]
    length = f"l{i}"

    def fixed(codes: str, count: int) -> tuple[str, list[str], str]:
        payload = [f"f{i}_{k}" for k in range(count)]
        fields = ([length] if prefix else []) + payload
        guard = f"{length} == {column.size}" if prefix else ""
        return prefix + codes, fields, guard

    if framing is Framing.USHORT_LEN:
        s = f"s{i}"
        # At most the declared size (so never NULL's 0xFFFF, which the reference decoder reads).
        guard = f"{length} <= {column.size}"
        if kind is Kind.TEXT:
            assert column.codec is not None
            slow = names.bind("_text", values.text_decoder(column.codec))
            value = f"({s}.decode('ascii') if {s}.isascii() else {slow}({s}))"
        elif kind is Kind.NTEXT:
            guard += f" and not {length} & 1"
            value = f"_u16({s}, 'surrogatepass', True)[0]"
        elif kind is Kind.BINARY:
            value = s
        else:  # pragma: no cover - layouts are built with USHORT_LEN for these kinds only
            raise AssertionError(kind)
        return _Cell("H", [length], guard, value, variable=True, size=2)

    if kind is Kind.INT:
        fmt, fields, guard = fixed(_INT_CODES[column.size], 1)
        value = fields[-1]
    elif kind is Kind.BIT:
        fmt, fields, guard = fixed("B", 1)
        value = f"{fields[-1]} != 0"
    elif kind is Kind.FLOAT:
        fmt, fields, guard = fixed(_FLOAT_CODES[column.size], 1)
        value = fields[-1]
    elif kind is Kind.MONEY:
        if column.size == 4:
            fmt, fields, guard = fixed("i", 1)
            amount = fields[-1]
        else:
            fmt, fields, guard = fixed("iI", 2)
            amount = f"({fields[-2]} * 4294967296 + {fields[-1]})"
        value = amount if raw else f"_money({amount})"
    elif kind is Kind.DECIMAL:
        codes = _DECIMAL_CODES[column.size - 1]
        fmt, fields, guard = fixed("B" + codes, 1 + len(codes))
        sign, magnitude = fields[-1 - len(codes)], _join_int(fields[-len(codes) :], codes)
        if raw:
            # A negative zero has no int: that row goes to the reference decoder (Decimal -0).
            guard = f"{guard} and ({sign} or {magnitude})" if guard else f"({sign} or {magnitude})"
            value = f"({magnitude} if {sign} else -{magnitude})"
        elif column.scale:
            # Divided by a Decimal: an int divisor would be converted on every call.
            unit = names.bind("_P", values._Decimal(10**column.scale))
            value = (
                f"_divide(_D({magnitude}) if {sign} else _D(-{magnitude}) if {magnitude}"
                f" else _NZ, {unit})"
            )
        else:
            value = f"(_D({magnitude}) if {sign} else _D(-{magnitude}) if {magnitude} else _NZ)"
    elif kind is Kind.DATE:
        fmt, fields, guard = fixed("HB", 2)
        days = _join_int(fields[-2:], "HB")
        value = days if raw else f"_fromordinal({days} + 1)"
    elif kind is Kind.TIME:
        codes = _TIME_CODES[TIME_BYTES[column.scale]]
        fmt, fields, guard = fixed(codes, len(codes))
        ticks = _join_int(fields[-len(codes) :], codes)
        value = f"_tm(*_HMS[({_micro(ticks, column.scale, i)}) // 1000000], q{i} % 1000000)"
    elif kind is Kind.DATETIME2:
        codes = _TIME_CODES[TIME_BYTES[column.scale]]
        fmt, fields, guard = fixed(codes + "HB", len(codes) + 2)
        ticks = _join_int(fields[-2 - len(codes) : -2], codes)
        days = _join_int(fields[-2:], "HB")
        per_day = TICKS_PER_DAY[column.scale]
        if raw:
            # A time of a day or more would pass for the next day: the reference decoder names it.
            in_day = f"{ticks} < {per_day}"
            guard = f"{guard} and {in_day}" if guard else in_day
            value = f"({days} * {per_day} + {ticks})"
        else:
            # Inline (a call per value costs a third of it): (y, m, d) memoised by day number,
            # (h, m, s) from a table by second of the day, microseconds truncated as pytds does.
            day = f"d{i}"
            value = (
                f"_dt(*(_ymd_get({day} := {days}) or _ymd({day})),"
                f" *_HMS[({_micro(ticks, column.scale, i)}) // 1000000], q{i} % 1000000)"
            )
    elif kind is Kind.DATETIME:
        fmt, fields, guard = fixed("ii", 2)
        days, t = fields[-2], fields[-1]
        if raw:  # values.datetime_raw, inline
            value = f"({days} * 86400000 + {t} // 300 * 1000 + ({t} % 300 * 10 + 1) // 3)"
        else:
            value = f"_datetime({days}, {t})"
    elif kind is Kind.SMALLDATETIME:
        fmt, fields, guard = fixed("HH", 2)
        days, minutes = fields[-2], fields[-1]
        if raw:  # values.smalldatetime_raw, inline
            value = f"({days} * 86400000 + {minutes} * 60000)"
        else:
            value = f"_smalldatetime({days}, {minutes})"
    elif kind is Kind.GUID:
        fmt, fields, guard = fixed("16s", 1)
        value = f"_guid({fields[-1]})"
    else:  # pragma: no cover - every kind is handled above
        raise AssertionError(kind)
    return _Cell(fmt, fields, guard, value, size=struct.calcsize("<" + fmt))


_BASE_NAMESPACE: Final[dict[str, object]] = {
    "_D": values._Decimal,
    "_NZ": values.NEGATIVE_ZERO,
    "_divide": values._divide,
    "_money": values.money_value,
    "_fromordinal": values._date_fromordinal,
    "_tm": values._time,
    "_dt": values._datetime,
    "_ymd_get": values._ymd_memo.get,
    "_ymd": values._ymd,
    "_datetime": values.datetime_value,
    "_smalldatetime": values.smalldatetime_value,
    "_guid": values.guid_value,
    "_u16": values._utf16_decode,
}


def _row_body(
    cols: Sequence[tuple[int, Column]],
    width: int,
    raw_kinds: frozenset[Kind],
    names: _Names,
    indent: str,
    start: str,
    on_fail: list[str],
    on_done: Callable[[list[str | None], str], list[str]],
) -> list[str]:
    """Statements decoding the present columns ``cols`` of a row whose first cell is at ``start``.

    Runs of fixed parts are unpacked together; each run's guard is checked before the next run
    is read. ``on_fail`` are the statements run when a guard fails (after every nested block),
    ``on_done(values, end)`` the statements that finish a row, given each column's value
    expression (None for a NULL) and the expression of the row's end.
    """
    lines: list[str] = []
    level = indent
    offset_base, offset = start, 0  # where the next fixed part starts: base expression + bytes
    run_fmt, run_start = "", 0
    run_fields: list[str] = []
    run_guards: list[str] = []
    value_of: dict[int, str] = {}
    present = {i for i, _ in cols}

    def at(base: str, delta: int) -> str:
        return base if delta == 0 else f"{base} + {delta}"

    def flush_run() -> None:
        nonlocal level, run_fmt, run_fields, run_guards
        if not run_fmt:
            return
        unpack = names.bind("_S", struct.Struct("<" + run_fmt).unpack_from)
        lines.append(
            f"{level}{', '.join(run_fields)}, = {unpack}(data, {at(offset_base, run_start)})"
        )
        if run_guards:
            lines.append(f"{level}if {' and '.join(run_guards)}:")
            level += "    "
        run_fmt, run_fields, run_guards = "", [], []

    for i, column in cols:
        cell = _cell(column, i, raw_kinds, names)
        if not run_fmt:
            run_start = offset
        run_fmt += cell.fmt
        run_fields += cell.fields
        if cell.guard:
            run_guards.append(cell.guard)
        offset += cell.size
        value_of[i] = cell.value
        if cell.variable:
            flush_run()
            end = f"e{i}"
            lines.append(f"{level}{end} = {at(offset_base, offset)} + l{i}")
            lines.append(f"{level}s{i} = data[{at(offset_base, offset)}:{end}]")
            offset_base, offset = end, 0
    flush_run()
    end_expr = at(offset_base, offset)
    row = [value_of[i] if i in present else None for i in range(width)]
    lines += [level + line for line in on_done(row, end_expr)]
    lines += [indent + line for line in on_fail]
    return lines


def _tuple(values: Sequence[str | None]) -> str:
    return "(" + ", ".join("None" if v is None else v for v in values) + ",)"


def _skip_body(cols: Sequence[tuple[int, Column]], indent: str) -> list[str]:
    """Statements advancing ``p`` over the present columns' values (NULLs included)."""
    lines: list[str] = []
    fixed = 0
    for _, column in cols:
        if column.framing is Framing.FIXED:
            fixed += column.size
            continue
        if fixed:
            lines.append(f"{indent}p += {fixed}")
            fixed = 0
        if column.framing is Framing.BYTE_LEN:
            lines.append(f"{indent}p += 1 + data[p]")
        else:
            lines += [
                f"{indent}size = data[p] | data[p + 1] << 8",
                f"{indent}p += 2 if size == 65535 else 2 + size",
            ]
    if fixed:
        lines.append(f"{indent}p += {fixed}")
    return lines


def _compile(source: str, namespace: dict[str, object], name: str, label: str) -> Any:
    exec(compile(source, f"<tdsrows {label}>", "exec"), namespace)
    return namespace[name]


class _Generated:
    """What the functions generated for one layout share: the names they are compiled with,
    the reference decoder they fall back on, the loop over tokens they all have, and their
    per-bitmap variants (compiled on first sight, at most MAX_COMPILED_BITMAPS of each)."""

    def __init__(
        self, layout: Layout, raw_kinds: frozenset[Kind], namespace: dict[str, object]
    ) -> None:
        self.layout = layout
        self.raw_kinds = raw_kinds
        self._names = _Names({**_BASE_NAMESPACE, **namespace})
        self._reference = cells.ReferenceDecoder(layout, raw_kinds=raw_kinds)
        ns = self._names.namespace
        ns["_reference"] = self._reference.row
        ns["_reference_at"] = self._reference.token
        ns["_INCOMPLETE_ERRORS"] = INCOMPLETE_ERRORS
        if {c.kind for c in layout.columns} - raw_kinds & {Kind.TIME, Kind.DATETIME2}:
            ns["_HMS"] = values._hms_table()  # built on first need: 86,400 tuples

    def _compile(self, lines: list[str], name: str, label: str) -> Any:
        return _compile("\n".join(lines) + "\n", self._names.namespace, name, label)

    def _loop(
        self,
        signature: str,
        on_row: list[str],
        on_nbcrow: list[str],
        on_other: str,
        after: list[str],
    ) -> list[str]:
        """``def {signature}``: a loop over the tokens from ``pos``, ROW bodies by ``on_row``
        (with ``p`` at the first value), NBCROW bodies by ``on_nbcrow`` (with ``key``, the null
        bitmap, and ``p``), any other token ending it with ``return {on_other}``; ``after``:
        the loop's last statements and its ``except`` clause."""
        nb = self.layout.bitmap_bytes
        return [
            f"def {signature}:",
            "    n = len(data)",
            "    start = pos",
            "    while True:",
            "      try:",
            "        while True:",
            "            start = pos",
            "            token = data[pos]",
            f"            if token == {ROW_TOKEN}:",
            "                p = pos + 1",
            *on_row,
            f"            elif token == {NBCROW_TOKEN}:",
            f"                key = {_bitmap_key(nb)}",
            f"                p = pos + {1 + nb}",
            *on_nbcrow,
            "            else:",
            f"                return {on_other}",
            *after,
        ]

    def _row_token(
        self, on_fail: list[str], on_done: Callable[[list[str | None], str], list[str]]
    ) -> list[str]:
        """The statements of a ROW token's body inside ``_loop`` (every column present)."""
        columns = list(enumerate(self.layout.columns))
        indent = " " * 16
        return _row_body(
            columns, len(columns), self.raw_kinds, self._names, indent, "p", on_fail, on_done
        )

    def _per_bitmap(
        self,
        cache: dict[int, Any],
        key: int,
        signature: str,
        on_fail: list[str],
        on_done: Callable[[list[str | None], str], list[str]],
        fallback: Any,
    ) -> Any:
        """``def row({signature})`` decoding NBCROW bodies with null bitmap ``key`` (``p`` at
        the first value present; see _row_body), compiled once; ``fallback`` past the bound."""
        if len(cache) >= MAX_COMPILED_BITMAPS:
            return fallback
        present = [(i, c) for i, c in enumerate(self.layout.columns) if not key >> i & 1]
        width = len(self.layout.columns)
        body = _row_body(present, width, self.raw_kinds, self._names, "    ", "p", on_fail, on_done)
        fn = self._compile([f"def row({signature}):", *body], "row", f"bitmap {key}")
        cache[key] = fn
        return fn


class CompiledLayout(_Generated):
    """The decode and skip functions of one layout, with their per-bitmap variants."""

    def __init__(self, layout: Layout, *, raw_kinds: frozenset[Kind] = frozenset()) -> None:
        self._row_fns: dict[int, RowFn] = {}
        self._skip_fns: dict[int, Callable[[bytes, int], int]] = {}
        super().__init__(
            layout,
            raw_kinds & RAW_KINDS,
            {
                "_nbc": self._row_fns,
                "_nbc_new": self._row_for_bitmap,
                "_skip_nbc": self._skip_fns,
                "_skip_new": self._skip_for_bitmap,
            },
        )
        self.decode: DecodeFn = self._compile_decode()
        self.skip: SkipFn = self._compile_skip()

    def row_end(self, data: bytes, pos: int) -> int:
        """Where the ROW/NBCROW token at ``pos`` ends, its values checked as :attr:`decode`
        checks them (:class:`~tdsrows.errors.StreamError` for one its column cannot hold), or
        INCOMPLETE when the bytes end inside it. Nothing is appended anywhere."""
        return self._reference.token(data, pos, _discard, len(data))

    # -- generated functions ------------------------------------------------------------------

    def _compile_decode(self) -> DecodeFn:
        row = self._row_token(
            on_fail=[
                "pos = _reference(data, p, append, n, 0)",
                "if pos < 0:",
                "    return start, -1",
            ],
            on_done=lambda row, end: [
                f"pos = {end}",
                "if pos > n:",
                "    return start, -1",
                f"append({_tuple(row)})",
                "continue",
            ],
        )
        nbcrow = [
            "                fn = _nbc.get(key) or _nbc_new(key)",
            "                pos = fn(data, p, append, n)",
            "                if pos < 0:",
            "                    return start, -1",
        ]
        # The fast code reads a run of cells whole, as long as the cells would be without
        # NULLs: at the end of the bytes, a complete row holding NULLs inline can look cut off.
        # The reference decoder, which reads exactly what is there, decides that row.
        lines = self._loop(
            "decode(data, pos, append)",
            row,
            nbcrow,
            "pos, token",
            [
                "      except _INCOMPLETE_ERRORS:",
                "        pos = _reference_at(data, start, append, n)",
                "        if pos < 0:",
                "            return start, -1",
            ],
        )
        return self._compile(lines, "decode", "decode")  # type: ignore[no-any-return]

    def _row_for_bitmap(self, key: int) -> RowFn:
        """The decoder of NBCROW bodies with this null bitmap (compiled once, within a bound)."""
        reference = self._reference.row
        return self._per_bitmap(  # type: ignore[no-any-return]
            self._row_fns,
            key,
            "data, p, append, n",
            [f"return _reference(data, p, append, n, {key})"],
            lambda row, end: [
                f"end = {end}",
                "if end > n:",
                "    return -1",
                f"append({_tuple(row)})",
                "return end",
            ],
            lambda data, p, append, n: reference(data, p, append, n, key),
        )

    def _compile_skip(self) -> SkipFn:
        row = _skip_body(list(enumerate(self.layout.columns)), "                ")
        nbcrow = [
            "                fn = _skip_nbc.get(key) or _skip_new(key)",
            "                p = fn(data, p)",
        ]
        lines = self._loop(
            "skip(data, pos)",
            row,
            nbcrow,
            "pos, token",
            [
                "            if p > n:",
                "                return start, -1",
                "            pos = p",
                "      except IndexError:",
                "        return start, -1",
            ],
        )
        return self._compile(lines, "skip", "skip")  # type: ignore[no-any-return]

    def _skip_for_bitmap(self, key: int) -> Callable[[bytes, int], int]:
        present = [(i, c) for i, c in enumerate(self.layout.columns) if not key >> i & 1]
        lines = ["def skip_row(data, p):", *_skip_body(present, "    "), "    return p"]
        fn: Callable[[bytes, int], int] = self._compile(lines, "skip_row", f"skip {key}")
        if len(self._skip_fns) < MAX_COMPILED_BITMAPS:  # past the bound: compiled, not kept
            self._skip_fns[key] = fn
        return fn


def _discard(row: tuple[Any, ...]) -> None:
    """An append that keeps nothing."""


def compile_layout(layout: Layout, *, raw_kinds: frozenset[Kind] = frozenset()) -> CompiledLayout:
    """Decoding functions for ``layout``; columns of ``raw_kinds`` give ints (see RAW_KINDS)."""
    return CompiledLayout(layout, raw_kinds=raw_kinds)


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
        self, primitives: Sequence[Primitive], byte_tables: Sequence[str | None]
    ) -> CellText | None:
        """A compiled writer of the same text for rows of the row scanner's cells, whose column
        i holds ``primitives[i]`` (:mod:`tdsrows.scanfill`); None: the generated code writes.
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
# Raw kinds a fill function gives as ints (a raw DECIMAL's negative zero, which has no int,
# goes through the reference decoder as the Decimal -0).
TEXT_RAW_KINDS: Final = RAW_KINDS
FULL: Final = -2  # fill stopped at the row limit or the room: the next row comes next time
FillFn = Callable[[bytes, int, list[Any], int, int, int], tuple[int, int, int, int]]


def _account(indent: str, *, checked: bool = False) -> list[str]:
    """Statements of a fill function after a row's ``end`` and ``text`` are known
    (``checked``: ``end`` is known not to be INCOMPLETE)."""
    incomplete = () if checked else ("if end < 0:", "    return start, -1, r, room")
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


class CompiledText(_Generated):
    """The fill function of one layout: rows straight from the wire to their text."""

    def __init__(
        self, layout: Layout, text: RowText, *, raw_kinds: frozenset[Kind] = frozenset()
    ) -> None:
        self._text = text
        self._row_fns: dict[int, Callable[..., tuple[int, str | None]]] = {}
        super().__init__(
            layout,
            raw_kinds & TEXT_RAW_KINDS,
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
                "    return start, -1, r, room",
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
                "    return -1, None",
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
        return (end, self._text.encode(row[0], rs)) if end >= 0 else (-1, None)

    def _reference_text_at(self, data: bytes, pos: int, n: int, rs: str) -> tuple[int, str | None]:
        row: list[tuple[Any, ...]] = []
        end = self._reference.token(data, pos, row.append, n)
        return (end, self._text.encode(row[0], rs)) if end >= 0 else (-1, None)


def _bitmap_key(nb: int) -> str:
    """Expression of the NBCROW null bitmap at ``pos`` as an int (bit i: column i is NULL)."""
    if nb == 1:
        return "data[pos + 1]"
    if nb == 2:
        return "data[pos + 1] | data[pos + 2] << 8"
    return f"int.from_bytes(data[pos + 1:pos + {1 + nb}], 'little')"
