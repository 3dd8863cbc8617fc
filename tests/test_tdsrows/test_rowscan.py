"""The compiled row scanner against the generated Python decoder, on the same wire bytes.

Every test builds ROW/NBCROW tokens with the small encoder below (it writes exactly the
bytes asked for, including what SQL Server never sends: a value shorter than the column's
size, a decimal past 2**63, a negative zero), scans them into primitive cells, turns the cells
back into Python values and compares them with what ``compile_layout(...).decode`` gives for
the same bytes. Rows the scanner reports as SLOW are decoded by the reference decoder, as the
export does, so the two sides must agree on every row, every stop and every position.

By hand, the scanner's speed on the report's rows: ``python -m tests.test_tdsrows.test_rowscan``.
"""

from __future__ import annotations

import importlib
import random
import struct
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from tdsrows import scan
from tdsrows.cells import ReferenceDecoder
from tdsrows.codegen import FULL, INCOMPLETE, TEXT_RAW_KINDS, compile_layout
from tdsrows.errors import UnsupportedLayout
from tdsrows.layout import TIME_BYTES, Column, Framing, Kind, Layout
from tdsrows.scan import SLOW, Primitive, RowScanner
from tdsrows.values import text_decoder
from tests.test_tdsrows.support import comparable

ROW, NBCROW = 0xD1, 0xD2
DONE = b"\xfd" + bytes(12)  # a DONE token after the rows (MS-TDS 2.2.7.6)
RAW = TEXT_RAW_KINDS
ALL_ROWS = 1 << 30  # a max_rows no test reaches
_CELL = struct.Struct("=qii")
INT64_MAX = 2**63 - 1

_FIXED, _BYTE, _USHORT = Framing.FIXED, Framing.BYTE_LEN, Framing.USHORT_LEN


# -- wire bytes ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Narrow:
    """A BYTE_LEN value sent in ``size`` bytes, fewer than the column's (legal for INTN, FLTN
    and MONEYN): the scanner leaves the row to the Python decoder."""

    value: int | float
    size: int


@dataclass(frozen=True)
class Dec:
    """A decimal's sign byte and magnitude as sent (a negative zero, an odd sign byte)."""

    sign: int
    magnitude: int


def payload(column: Column, value: Any) -> bytes:
    """The bytes of a present value, without its length prefix."""
    kind, size = column.kind, column.size
    if isinstance(value, Narrow):
        return payload(replace(column, size=value.size), value.value)
    if kind is Kind.INT:
        return int(value).to_bytes(size, "little", signed=size > 1)
    if kind is Kind.BIT:
        return bytes((int(value),))
    if kind is Kind.FLOAT:
        return struct.pack("<f" if size == 4 else "<d", value)
    if kind is Kind.MONEY:
        if size == 4:
            return struct.pack("<i", value)
        return struct.pack("<iI", value >> 32, value & 0xFFFFFFFF)
    if kind is Kind.DECIMAL:
        sign, magnitude = (
            (value.sign, value.magnitude) if isinstance(value, Dec) else (value >= 0, abs(value))
        )
        return bytes((sign,)) + magnitude.to_bytes(size - 1, "little")
    if kind is Kind.DATE:
        return int(value).to_bytes(3, "little")
    if kind is Kind.DATETIME2:
        days, ticks = value
        return int(ticks).to_bytes(size - 3, "little") + int(days).to_bytes(3, "little")
    if kind in (Kind.TEXT, Kind.NTEXT):
        assert isinstance(value, bytes)
        return value
    raise AssertionError(kind)


def token(layout: Layout, row: Sequence[Any], *, nbcrow: bool) -> bytes:
    """One ROW token (NULLs inline: BYTE_LEN 0, USHORT_LEN 0xFFFF) or NBCROW token."""
    out = bytearray()
    if nbcrow:
        bitmap = sum(1 << i for i, value in enumerate(row) if value is None)
        out.append(NBCROW)
        out += bitmap.to_bytes(layout.bitmap_bytes, "little")
    else:
        out.append(ROW)
    for column, value in zip(layout.columns, row, strict=True):
        if value is None:
            if not nbcrow:
                assert column.framing is not _FIXED, "a FIXED column is NULL in NBCROW only"
                out += b"\x00" if column.framing is _BYTE else b"\xff\xff"
            continue
        body = payload(column, value)
        if column.framing is _BYTE:
            out.append(len(body))
        elif column.framing is _USHORT:
            out += struct.pack("<H", len(body))
        out += body
    return bytes(out)


def tokens(layout: Layout, rows: Sequence[Sequence[Any]], how: str) -> bytes:
    """Rows as ROW (``"row"``), NBCROW (``"nbcrow"``) or, with ``"auto"``, NBCROW only for rows
    with a NULL in a FIXED column (which a ROW token cannot hold)."""

    def needs_nbcrow(row: Sequence[Any]) -> bool:
        pairs = zip(layout.columns, row, strict=True)
        return any(v is None and c.framing is _FIXED for c, v in pairs)

    return b"".join(
        token(layout, row, nbcrow=how == "nbcrow" or (how == "auto" and needs_nbcrow(row)))
        for row in rows
    )


# -- the two decoders ------------------------------------------------------------------------


@dataclass
class Decoded:
    rows: list[tuple[Any, ...]]
    pos: int
    stop: int
    starts: list[int] = field(default_factory=list)  # token offset of each row
    slow: list[int] = field(default_factory=list)  # rows the scanner left to Python


def python_decode(layout: Layout, data: bytes, pos: int = 0) -> Decoded:
    """The generated Python decoder's rows, stop and position; row starts by the reference."""
    rows: list[tuple[Any, ...]] = []
    end, stop = compile_layout(layout, raw_kinds=RAW).decode(data, pos, rows.append)
    reference = ReferenceDecoder(layout, raw_kinds=RAW)
    starts: list[int] = []
    p = pos
    while len(starts) < len(rows):
        starts.append(p)
        p = reference.token(data, p, lambda row: None, len(data))
        assert p > 0
    return Decoded(rows, end, stop, starts)


def cell_value(scanner: RowScanner, layout: Layout, k: int, i: int, data: bytes) -> object:
    """Cell (k, i) as the Python decoder gives it, after checking the cell's invariants."""
    value, length, reserved = _CELL.unpack_from(scanner.cells, (k * scanner.width + i) * 16)
    assert reserved == 0
    primitive = scanner.primitives[i]
    text = primitive in (Primitive.BYTE_TEXT, Primitive.UTF16_TEXT)
    if length == -1:
        assert value == 0
    elif text:
        assert value >= 0
        assert value + length <= len(data)
    else:
        assert length == 0
        if primitive is Primitive.BOOL:
            assert value in (0, 1)
    got = scanner.value(k, i, data)
    if isinstance(got, bytes):
        column = layout.columns[i]
        if column.kind is Kind.TEXT:
            assert column.codec is not None
            return text_decoder(column.codec)(got)
        return got.decode("utf-16-le", "surrogatepass")
    return got


def scanner_decode(
    scanner: RowScanner,
    layout: Layout,
    data: bytes,
    pos: int = 0,
    *,
    max_rows: int = ALL_ROWS,
) -> Decoded:
    """All rows from ``pos`` as the export reads them: scanned in batches, each SLOW row
    decoded by the reference decoder, until a stop that is neither FULL nor SLOW."""
    reference = ReferenceDecoder(layout, raw_kinds=RAW)
    out = Decoded([], pos, INCOMPLETE)
    while True:
        after, stop, count = scanner.scan(data, pos, max_rows)
        assert 0 <= count <= min(max_rows, scanner.batch_rows)
        for k in range(count):
            out.starts.append(scanner.row_start(k))
            out.rows.append(
                tuple(cell_value(scanner, layout, k, i, data) for i in range(len(layout.columns)))
            )
        if count == 0:
            assert after == pos
        else:
            assert out.starts[-count] == pos
        if stop == FULL:
            assert count == min(max_rows, scanner.batch_rows)
        elif stop == SLOW:
            # A SLOW row is always whole: the reference decoder reads it.
            out.slow.append(len(out.rows))
            out.starts.append(after)
            end = reference.token(data, after, out.rows.append, len(data))
            assert end > after, "SLOW for a row cut off by the end of the data"
            after = end
        else:
            assert stop == INCOMPLETE or stop >= 0
            out.pos, out.stop = after, stop
            return out
        pos = after


def _rowscan() -> Any:
    """The compiled module itself, for calls RowScanner never makes."""
    return importlib.import_module("tdsrows._rowscan")


def assert_same(layout: Layout, data: bytes, *, batch_rows: int = scan.BATCH_ROWS) -> Decoded:
    """The scanner and the Python decoder give the same rows, starts, position and stop."""
    expected = python_decode(layout, data)
    got = scanner_decode(RowScanner(layout, RAW, batch_rows=batch_rows), layout, data)
    assert comparable(got.rows) == comparable(expected.rows)
    assert (got.pos, got.stop) == (expected.pos, expected.stop)
    assert got.starts == expected.starts
    return got


# -- tests -----------------------------------------------------------------------------------


def test_the_extension_is_built() -> None:
    assert scan.AVAILABLE, (
        "tdsrows._rowscan is not built: install with a C compiler present"
        " (python setup.py build_ext --inplace, or pip install -e .)"
    )


def _col(kind: Kind, framing: Framing, size: int, **extra: Any) -> Column:
    return Column(f"c_{kind.value}_{size}", kind, framing, size, **extra)


@pytest.mark.parametrize(
    ("column", "raw", "expected"),
    [
        (_col(Kind.INT, _FIXED, 1), RAW, Primitive.INT64),
        (_col(Kind.INT, _BYTE, 8), frozenset(), Primitive.INT64),
        (_col(Kind.BIT, _BYTE, 1), RAW, Primitive.BOOL),
        (_col(Kind.FLOAT, _FIXED, 4), RAW, Primitive.DOUBLE),
        (_col(Kind.MONEY, _BYTE, 8), RAW, Primitive.INT64),
        (_col(Kind.DECIMAL, _BYTE, 17, scale=2), RAW, Primitive.INT64),
        (_col(Kind.DATE, _BYTE, 3), RAW, Primitive.INT64),
        (_col(Kind.DATETIME2, _BYTE, 8, scale=7), RAW, Primitive.INT64),
        (_col(Kind.TEXT, _USHORT, 100, codec="cp1252"), RAW, Primitive.BYTE_TEXT),
        (_col(Kind.NTEXT, _USHORT, 200), RAW, Primitive.UTF16_TEXT),
        # Not raw: these are Decimal/date/datetime objects, the Python decoder's job.
        (_col(Kind.MONEY, _FIXED, 8), frozenset(), None),
        (_col(Kind.DECIMAL, _BYTE, 9), frozenset(), None),
        (_col(Kind.DATE, _BYTE, 3), frozenset({Kind.DECIMAL}), None),
        (_col(Kind.DATETIME2, _BYTE, 7, scale=3), frozenset(), None),
        (_col(Kind.TIME, _BYTE, 5, scale=7), RAW, None),
        (_col(Kind.DATETIME, _FIXED, 8), RAW, None),
        (_col(Kind.SMALLDATETIME, _FIXED, 4), RAW, None),
        (_col(Kind.BINARY, _USHORT, 16), RAW, None),
        (_col(Kind.GUID, _BYTE, 16), RAW, None),
        # Sizes no such column has.
        (_col(Kind.INT, _BYTE, 3), RAW, None),
        (_col(Kind.DECIMAL, _BYTE, 10), RAW, None),
        (_col(Kind.DATETIME2, _BYTE, 7, scale=7), RAW, None),
    ],
    ids=lambda v: repr(v) if not isinstance(v, Column) else f"{v.kind.value}-{v.size}",
)
def test_each_kind_has_its_primitive_or_none(
    column: Column, raw: frozenset[Kind], expected: Primitive | None
) -> None:
    other = _col(Kind.INT, _FIXED, 4)
    layout = Layout.of([other, column])
    if expected is None:
        assert scan.primitives(layout, raw) is None
        with pytest.raises(UnsupportedLayout, match=column.name):
            RowScanner(layout, raw)
    else:
        assert scan.primitives(layout, raw) == (Primitive.INT64, expected)
        assert RowScanner(layout, raw).primitives == (Primitive.INT64, expected)


def test_buffers_are_sized_by_batch_and_width() -> None:
    layout = Layout.of([_col(Kind.INT, _FIXED, 4), _col(Kind.NTEXT, _USHORT, 20)])
    scanner = RowScanner(layout, RAW, batch_rows=7)
    assert scanner.width == 2
    assert len(scanner.cells) == 7 * 2 * scan.CELL_BYTES
    assert len(scanner.starts) == 7 * 8
    with pytest.raises(UnsupportedLayout):
        RowScanner(Layout.of([]), RAW)


def _f32(x: float) -> float:
    return float(struct.unpack("<f", struct.pack("<f", x))[0])


def _per_day(scale: int) -> int:
    ticks: int = 86_400 * 10**scale
    return ticks


def _datetime2_cases(scale: int) -> list[tuple[object, bool]]:
    per_day, tick_bytes = _per_day(scale), TIME_BYTES[scale]
    cases: list[tuple[object, bool]] = [
        ((0, 0), False),
        ((1, 1), False),
        ((738_000, per_day // 3), False),
        ((3_652_058, per_day - 1), False),  # 9999-12-31, the last tick
        # Not a valid datetime2 (ticks past midnight, day 2**24 - 1) but read as they are:
        # only scale 7 overflows an int64.
        ((2**24 - 1, 2 ** (8 * tick_bytes) - 1), scale == 7),
    ]
    if scale == 7:
        days, rest = divmod(INT64_MAX, per_day)
        cases += [
            ((days, rest), False),  # exactly 2**63 - 1
            ((days, rest + 1), True),
            ((days + 1, 0), True),
        ]
    return cases


_INT_CASES = {
    1: [0, 1, 127, 128, 255],
    2: [-(2**15), -1, 0, 1, 2**15 - 1],
    4: [-(2**31), -1, 0, 123_456_789, 2**31 - 1],
    8: [-(2**63), -1, 0, 2**53 + 1, 2**63 - 1],
}
_NON_FINITE = [float("inf"), float("-inf"), float("nan")]
_FLOAT_CASES = {
    4: [0.0, -0.0, 1.5, _f32(0.1), _f32(3.4028234663852886e38), _f32(1e-45), *_NON_FINITE],
    8: [0.0, -0.0, 0.1, 1.7976931348623157e308, 5e-324, float(2**53 + 1), *_NON_FINITE],
}
_DECIMAL_BIG = [2**63 - 1, -(2**63 - 1), 10**18, -(10**18)]
_DECIMAL_SLOW = [2**63, -(2**63), 2**64 - 1, Dec(0, 0)]


def _edge_cases() -> list[tuple[Column, list[tuple[object, bool]]]]:
    """(column, [(value, the scanner leaves its row to Python)]) for every supported kind."""
    cases: list[tuple[Column, list[tuple[object, bool]]]] = []
    for framing in (_FIXED, _BYTE):
        for size, ints in _INT_CASES.items():
            cases.append((_col(Kind.INT, framing, size), [(v, False) for v in ints]))
        cases.append((_col(Kind.BIT, framing, 1), [(v, False) for v in (0, 1, 2, 255)]))
        for size, floats in _FLOAT_CASES.items():
            cases.append((_col(Kind.FLOAT, framing, size), [(v, False) for v in floats]))
        cases.append(
            (_col(Kind.MONEY, framing, 4), [(v, False) for v in (-(2**31), -1, 0, 2**31 - 1)])
        )
        money8 = [-(2**63), -(2**32) - 1, -(2**32), -1, 0, 1, 2**32 - 1, 2**32, 2**63 - 1]
        cases.append((_col(Kind.MONEY, framing, 8), [(v, False) for v in money8]))
        cases.append((_col(Kind.DATE, framing, 3), [(v, False) for v in (0, 1, 3_652_058)]))
    # Shorter than the column's size: legal TDS for the nullable types, read by Python.
    cases += [
        (_col(Kind.INT, _BYTE, 8), [(Narrow(-5, 4), True), (7, False), (Narrow(300, 2), True)]),
        (_col(Kind.FLOAT, _BYTE, 8), [(Narrow(1.5, 4), True), (2.5, False)]),
        (_col(Kind.MONEY, _BYTE, 8), [(Narrow(-12_345, 4), True), (12_345, False)]),
        (_col(Kind.DATE, _BYTE, 3), [(2**24 - 1, False)]),
    ]
    small = [0, 1, -1, 999_999_999, -999_999_999, 2**32 - 1, -(2**32 - 1), Dec(2, 5)]
    cases.append(
        (
            _col(Kind.DECIMAL, _BYTE, 5, scale=2),
            [(v, False) for v in small] + [(Dec(0, 0), True)],
        )
    )
    for size in (9, 13, 17):
        wide = [(v, False) for v in _DECIMAL_BIG] + [(v, True) for v in _DECIMAL_SLOW]
        if size > 9:
            wide += [(2**64, True), (-(10**28 - 1), True), (2 ** (8 * size - 8) - 1, True)]
        if size == 17:
            wide += [(10**38 - 1, True), (2**127, True)]
        cases.append((_col(Kind.DECIMAL, _BYTE, size, scale=4), wide))
    cases.append((_col(Kind.DECIMAL, _FIXED, 9), [(-42, False), (Dec(0, 0), True)]))
    for scale in range(8):
        column = _col(Kind.DATETIME2, _BYTE, TIME_BYTES[scale] + 3, scale=scale)
        cases.append((column, _datetime2_cases(scale)))
    cp1252 = [b"", b"abc", bytes(range(256)), b"\x81\x8d\x8f\x90\x9d", "café €".encode("cp1252")]
    cases.append(
        (
            _col(Kind.TEXT, _USHORT, 100, codec="cp1252"),
            [(v, False) for v in [*cp1252, b"x" * 8000]],
        )
    )
    japanese = ["", "東京", "ｶﾀｶﾅ and ascii", "表" * 2000]
    cases.append(
        (
            _col(Kind.TEXT, _USHORT, 8000, codec="cp932"),
            [(t.encode("cp932"), False) for t in japanese],
        )
    )
    ntext = ["", "é", "\U0001f600", "東京" * 2000, "a\ud800b", "\udc00"]
    cases.append(
        (
            _col(Kind.NTEXT, _USHORT, 200),
            [(t.encode("utf-16-le", "surrogatepass"), False) for t in ntext],
        )
    )
    return cases


@pytest.mark.parametrize("how", ["row", "nbcrow"])
@pytest.mark.parametrize(
    ("column", "cases"),
    _edge_cases(),
    ids=lambda v: (
        f"{v.kind.value}-{v.framing.name}-{v.size}-s{v.scale}" if isinstance(v, Column) else None
    ),
)
def test_every_kind_and_size_decodes_as_the_python_decoder_does(
    column: Column, cases: list[tuple[object, bool]], how: str
) -> None:
    """Limits of each kind and size, NULLs, and the values the scanner leaves to Python."""
    before = Column("before", Kind.INT, _BYTE, 4)
    after = Column("after", Kind.NTEXT, _USHORT, 20)
    layout = Layout.of([before, column, after])
    rows: list[list[Any]] = [
        [k, value, "é".encode("utf-16-le") * k] for k, (value, _) in enumerate(cases)
    ]
    rows.append([None, None, None])
    rows.append([-1, next(value for value, slow in cases if not slow), None])
    data = tokens(layout, rows, "auto" if how == "row" else how) + DONE
    got = assert_same(layout, data)
    assert got.stop == DONE[0]
    assert got.slow == [k for k, (_, slow) in enumerate(cases) if slow]
    assert len(got.rows) == len(rows)


_WIDE_COLUMNS = [
    Column("i1", Kind.INT, _FIXED, 1),
    Column("n", Kind.NTEXT, _USHORT, 40),
    Column("i8", Kind.INT, _BYTE, 8),
    Column("d", Kind.DECIMAL, _BYTE, 9, scale=2),
    Column("v", Kind.TEXT, _USHORT, 10, codec="cp1252"),
    Column("f", Kind.FLOAT, _FIXED, 8),
    Column("r", Kind.FLOAT, _BYTE, 4),
    Column("b", Kind.BIT, _BYTE, 1),
    Column("t", Kind.DATETIME2, _BYTE, 8, scale=7),
    Column("m", Kind.MONEY, _FIXED, 8),
    Column("dt", Kind.DATE, _BYTE, 3),
    Column("sm", Kind.MONEY, _BYTE, 4),
]
_WIDE_VALUES = [
    200,
    "ünï".encode("utf-16-le"),
    -(2**40),
    -12_345,
    b"abc",
    -0.25,
    0.5,
    1,
    (700_000, 123_456_789),
    2**40 + 7,
    730_000,
    -99,
]


@pytest.mark.parametrize("width", [1, 7, 8, 9, 16, 17, 20, 24, 33])
def test_null_bitmaps_of_every_width(width: int) -> None:
    """NBCROW bitmaps of 1 to 5 bytes: no NULL, every column NULL, each column NULL alone,
    and every other column NULL; ROW tokens with NULLs inline where the framing allows."""
    columns = [replace(_WIDE_COLUMNS[i % len(_WIDE_COLUMNS)], name=f"c{i}") for i in range(width)]
    layout = Layout.of(columns)
    full: list[Any] = [_WIDE_VALUES[i % len(_WIDE_VALUES)] for i in range(width)]
    nbcrows: list[list[Any]] = [full, [None] * width]
    nbcrows += [[None if i == j else v for i, v in enumerate(full)] for j in range(width)]
    nbcrows += [[None if i % 2 == parity else v for i, v in enumerate(full)] for parity in (0, 1)]
    inline = [
        [
            None if c.framing is not _FIXED and (i + j) % 3 == 0 else v
            for i, (c, v) in enumerate(zip(columns, full, strict=True))
        ]
        for j in range(3)
    ]
    data = tokens(layout, nbcrows, "nbcrow") + tokens(layout, inline, "row") + DONE
    got = assert_same(layout, data)
    assert len(got.rows) == len(nbcrows) + len(inline)
    assert got.rows[1] == (None,) * width
    assert got.slow == []


_MIXED = Layout.of(
    [
        Column("id", Kind.INT, _BYTE, 4),
        Column("amount", Kind.DECIMAL, _BYTE, 9, scale=4),
        Column("name", Kind.NTEXT, _USHORT, 40),
        Column("code", Kind.TEXT, _USHORT, 10, codec="cp1252"),
        Column("n8", Kind.INT, _BYTE, 8),
        Column("flag", Kind.BIT, _FIXED, 1),
    ]
)
_MIXED_ROWS: list[list[Any]] = [
    [1, 12_345, "Zürich".encode("utf-16-le"), b"A1", 10, 1],
    [None, None, None, None, None, None],
    [3, 2**63, "big".encode("utf-16-le"), b"", 30, 0],  # SLOW: decimal past 2**63
    [4, -1, b"", b"caf\xe9", Narrow(-4, 4), 1],  # SLOW: a 4-byte INTN(8)
    [5, Dec(0, 0), "x".encode("utf-16-le"), None, None, 0],  # SLOW: negative zero
    [6, -(2**63 - 1), "\U0001f680".encode("utf-16-le"), b"z" * 10, -(2**63), 1],
]


@pytest.mark.parametrize("how", ["auto", "nbcrow"])
def test_every_prefix_gives_the_whole_rows_in_it_and_nothing_more(how: str) -> None:
    """A packet can end anywhere, SLOW rows included: the scanner returns exactly the rows
    that end inside the bytes and stops INCOMPLETE where the Python decoder stops."""
    data = tokens(_MIXED, _MIXED_ROWS, how)
    whole = python_decode(_MIXED, data + DONE)
    ends = [*whole.starts[1:], len(data)]
    scanner = RowScanner(_MIXED, RAW)
    for cut in range(len(data) + 1):
        prefix = data[:cut]
        got = scanner_decode(scanner, _MIXED, prefix)
        complete = sum(1 for end in ends if end <= cut)
        assert got.stop == INCOMPLETE, cut
        assert comparable(got.rows) == comparable(whole.rows[:complete]), cut
        assert got.pos == (ends[complete - 1] if complete else 0), cut
        assert got.pos == python_decode(_MIXED, prefix).pos, cut
        # One call, no SLOW handling: never a row past the first SLOW one or the cut.
        pos, stop, count = scanner.scan(prefix, 0, ALL_ROWS)
        assert count == min(complete, 2), cut
        assert stop == (SLOW if complete > 2 else INCOMPLETE), cut
        assert pos == (ends[count - 1] if count else 0), cut


def test_a_token_that_is_not_a_row_stops_the_scan_where_it_is() -> None:
    data = tokens(_MIXED, _MIXED_ROWS[:2], "auto")
    trailing = b"\x79" + struct.pack("<i", 0) + DONE  # RETURNSTATUS, DONE
    scanner = RowScanner(_MIXED, RAW)
    assert scanner.scan(data + trailing, 0, ALL_ROWS) == (len(data), 0x79, 2)
    assert scanner.scan(data + trailing, len(data), ALL_ROWS) == (len(data), 0x79, 0)
    assert scanner.scan(b"\x00" + data, 0, ALL_ROWS) == (0, 0, 0)
    # From a position inside the data: starts are absolute offsets.
    first = len(tokens(_MIXED, _MIXED_ROWS[:1], "auto"))
    assert scanner.scan(data + DONE, first, ALL_ROWS) == (len(data), DONE[0], 1)
    assert scanner.row_start(0) == first


def test_max_rows_and_the_buffers_room_give_full() -> None:
    rows = [[k, k, b"", b"", k, 1] for k in range(10)]
    data = tokens(_MIXED, rows, "auto") + DONE
    ends = python_decode(_MIXED, data).starts[1:]
    scanner = RowScanner(_MIXED, RAW, batch_rows=4)
    assert scanner.scan(data, 0, 3) == (ends[2], FULL, 3)
    assert scanner.scan(data, 0, 0) == (0, FULL, 0)
    assert scanner.scan(data, 0, ALL_ROWS) == (ends[3], FULL, 4)  # the cells hold 4 rows
    assert scanner.scan(data, ends[5], ALL_ROWS) == (len(data) - len(DONE), FULL, 4)
    assert scanner.scan(data, ends[6], ALL_ROWS) == (len(data) - len(DONE), DONE[0], 3)
    # FULL is decided before looking at the next bytes, even when none follow.
    assert scanner.scan(data[: ends[2]], 0, 3) == (ends[2], FULL, 3)
    assert scanner.scan(data[: ends[2]], 0, 4) == (ends[2], INCOMPLETE, 3)
    assert scanner.scan(data[: ends[2]], ends[2], 4) == (ends[2], INCOMPLETE, 0)
    # The smaller of the two buffers bounds the rows, and one too small for a row gives FULL.
    cells = bytearray(16 * 6 * 5)
    scan_fn = _rowscan().scan
    assert scan_fn(data, 0, scanner.program, cells, bytearray(8 * 2), 9) == (ends[1], FULL, 2)
    assert scan_fn(data, 0, scanner.program, cells, bytearray(100), 9) == (ends[4], FULL, 5)
    assert scan_fn(data, 0, scanner.program, bytearray(95), bytearray(80), 9) == (0, FULL, 0)
    # Batches of every size give the same rows.
    for batch in (1, 2, 3, 7):
        assert_same(_MIXED, data, batch_rows=batch)


def test_a_byte_length_other_than_the_size_leaves_that_row_to_python() -> None:
    layout = Layout.of([Column("x", Kind.INT, _BYTE, 8), Column("y", Kind.INT, _FIXED, 2)])
    data = (
        b"\xd1\x08"
        + struct.pack("<qh", 2**40, 1)
        + b"\xd1\x04"
        + struct.pack("<ih", -5, 2)  # an INTN(8) value of 4 bytes
        + b"\xd1\x08"
        + struct.pack("<qh", 7, 3)
        + DONE
    )
    scanner = RowScanner(layout, RAW)
    assert scanner.scan(data, 0, ALL_ROWS) == (12, SLOW, 1)
    assert scanner.value(0, 0, data) == 2**40
    assert scanner.scan(data, 12 + 8, ALL_ROWS) == (len(data) - len(DONE), DONE[0], 1)
    got = assert_same(layout, data)
    assert got.rows == [(2**40, 1), (-5, 2), (7, 3)]
    assert got.slow == [1]
    # Cut inside the row that would be SLOW: INCOMPLETE, the row is not judged yet.
    assert scanner.scan(data[:17], 0, ALL_ROWS) == (12, INCOMPLETE, 1)


def test_cells_hold_what_the_contract_says() -> None:
    """The bytes of the cells themselves, as the worksheet encoder reads them."""
    layout = Layout.of(
        [
            Column("i", Kind.INT, _FIXED, 2),
            Column("f", Kind.FLOAT, _BYTE, 4),
            Column("b", Kind.BIT, _BYTE, 1),
            Column("v", Kind.TEXT, _USHORT, 10, codec="cp1252"),
            Column("n", Kind.NTEXT, _USHORT, 10),
            Column("t", Kind.DATETIME2, _BYTE, 7, scale=3),
        ]
    )
    data = b"\x00" * 3 + token(
        layout, [-2, 0.5, 9, b"ab", "é".encode("utf-16-le"), None], nbcrow=False
    )
    scanner = RowScanner(layout, RAW)
    assert scanner.scan(data, 3, 5) == (len(data), INCOMPLETE, 1)
    cells = [_CELL.unpack_from(scanner.cells, 16 * i) for i in range(6)]
    text_at = 3 + 1 + 2 + (1 + 4) + (1 + 1) + 2  # padding, token, i, f, b, v's length
    assert cells == [
        (-2, 0, 0),
        (struct.unpack("<q", struct.pack("<d", 0.5))[0], 0, 0),
        (1, 0, 0),
        (text_at, 2, 0),
        (text_at + 2 + 2, 2, 0),
        (0, -1, 0),
    ]
    assert scanner.row_start(0) == 3


def test_bad_arguments_are_refused() -> None:
    layout = Layout.of([Column("x", Kind.INT, _FIXED, 4)])
    scanner = RowScanner(layout, RAW)
    scan_fn = _rowscan().scan
    data = b"\xd1" + bytes(4)
    cells, starts = bytearray(64), bytearray(64)
    assert scan_fn(data, 0, scanner.program, cells, starts, 9) == (5, INCOMPLETE, 1)
    bad_programs = [
        b"",  # no column
        b"\x03\x00\x04",  # not a whole column
        b"\x03\x00\x08\x00",  # int32 of 8 bytes
        b"\x03\x02\x04\x00",  # int32 framed as USHORT_LEN
        b"\x0c\x01\x00\x00",  # text framed as BYTE_LEN
        b"\x06\x01\x0a\x00",  # decimal of 10 bytes
        b"\x08\x01\x08\x08",  # datetime2 of scale 8
        b"\x08\x01\x07\x07",  # datetime2(7) is 8 bytes
        b"\x00\x00\x04\x00",  # no op 0
        b"\x0d\x00\x04\x00",  # nor 13
    ]
    for bad in bad_programs:
        with pytest.raises(ValueError, match="program"):
            scan_fn(data, 0, bad, cells, starts, 9)
    with pytest.raises(ValueError, match="pos"):
        scan_fn(data, 6, scanner.program, cells, starts, 9)
    with pytest.raises(ValueError, match="pos"):
        scan_fn(data, -1, scanner.program, cells, starts, 9)
    with pytest.raises(ValueError, match="max_rows"):
        scan_fn(data, 0, scanner.program, cells, starts, -1)
    with pytest.raises(TypeError, match="cells"):
        scan_fn(data, 0, scanner.program, bytes(64), starts, 9)
    with pytest.raises(TypeError, match="starts"):
        scan_fn(data, 0, scanner.program, cells, bytes(64), 9)
    with pytest.raises(TypeError):
        scan_fn("text", 0, scanner.program, cells, starts, 9)
    with pytest.raises(TypeError):
        scan_fn(data, 0.0, scanner.program, cells, starts, 9)
    with pytest.raises(TypeError):
        scan_fn(data, 0, scanner.program, cells, starts)


# -- seeded random differential -----------------------------------------------------------

Gen = Callable[[random.Random], object]
SEED = 20_240_601
LAYOUTS = 300


def _int_gen(size: int, narrow: bool) -> Gen:
    low, high = (0, 255) if size == 1 else (-(2 ** (8 * size - 1)), 2 ** (8 * size - 1) - 1)

    def gen(rng: random.Random) -> object:
        if narrow and rng.random() < 0.1:
            return Narrow(rng.randint(-(2**31), 2**31 - 1), 4)
        return rng.choice([low, high, 0, rng.randint(low, high), rng.randint(-1000, 1000) % high])

    return gen


def _float_gen(size: int, narrow: bool) -> Gen:
    def gen(rng: random.Random) -> object:
        if narrow and rng.random() < 0.1:
            return Narrow(_f32(rng.uniform(-1e6, 1e6)), 4)
        x = rng.choice([rng.uniform(-1e6, 1e6), rng.random(), -0.0, float("inf"), float("nan")])
        if size == 8 and rng.random() < 0.3:
            x = rng.uniform(-1e300, 1e300)
        return _f32(x) if size == 4 else x

    return gen


def _money_gen(size: int, narrow: bool) -> Gen:
    bits = 8 * size - 1

    def gen(rng: random.Random) -> object:
        if narrow and rng.random() < 0.1:
            return Narrow(rng.randint(-(2**31), 2**31 - 1), 4)
        return rng.choice([-(2**bits), 2**bits - 1, rng.randint(-(2**bits), 2**bits - 1)])

    return gen


def _decimal_gen(size: int) -> Gen:
    most = 8 * (size - 1)

    def gen(rng: random.Random) -> object:
        roll = rng.random()
        if roll < 0.03:
            return Dec(0, 0)  # SLOW
        bits = rng.randint(0, most) if roll < 0.2 else rng.randint(0, min(most, 63))
        magnitude = rng.getrandbits(bits) if bits else 0
        return magnitude if rng.random() < 0.5 else Dec(0, magnitude) if magnitude else 0

    return gen


def _datetime2_gen(scale: int) -> Gen:
    def gen(rng: random.Random) -> object:
        days = rng.choice([0, 3_652_058, rng.randint(0, 3_652_058)])
        return (days, rng.randrange(_per_day(scale)))

    return gen


def _text_gen(alphabet: str, codec: str, most: int) -> Gen:
    def gen(rng: random.Random) -> object:
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, most)))
        return text.encode(codec, "surrogatepass")

    return gen


_LATIN = "abcXYZ 019é€ü½"
_WIDE = _LATIN + "東京Мα\U0001f600\U0001f680"


_KINDS = [Kind.INT, Kind.BIT, Kind.FLOAT, Kind.MONEY, Kind.DECIMAL, Kind.DATE, Kind.DATETIME2]
_KINDS += [Kind.TEXT, Kind.NTEXT]


def _random_column(rng: random.Random, i: int) -> tuple[Column, Gen]:
    kind = rng.choice(
        [*_KINDS, Kind.INT, Kind.NTEXT]  # the common ones twice as often
    )
    framing = rng.choice([_FIXED, _BYTE, _BYTE])
    name = f"c{i}"
    if kind is Kind.INT:
        size = rng.choice([1, 2, 4, 8])
        narrow = framing is _BYTE and size == 8
        return Column(name, kind, framing, size), _int_gen(size, narrow)
    if kind is Kind.BIT:
        return Column(name, kind, framing, 1), lambda r: r.choice([0, 1, r.randint(0, 255)])
    if kind is Kind.FLOAT:
        size = rng.choice([4, 8])
        narrow = framing is _BYTE and size == 8
        return Column(name, kind, framing, size), _float_gen(size, narrow)
    if kind is Kind.MONEY:
        size = rng.choice([4, 8])
        narrow = framing is _BYTE and size == 8
        return Column(name, kind, framing, size), _money_gen(size, narrow)
    if kind is Kind.DECIMAL:
        size = rng.choice([5, 9, 13, 17])
        return Column(name, kind, _BYTE, size, scale=rng.randint(0, 6)), _decimal_gen(size)
    if kind is Kind.DATE:
        return Column(name, kind, _BYTE, 3), lambda r: r.randint(0, 3_652_058)
    if kind is Kind.DATETIME2:
        scale = rng.randint(0, 7)
        column = Column(name, kind, _BYTE, TIME_BYTES[scale] + 3, scale=scale)
        return column, _datetime2_gen(scale)
    most = rng.choice([0, 5, 30, 300])
    if kind is Kind.TEXT:
        codec = rng.choice(["cp1252", "cp932"])
        alphabet = _LATIN if codec == "cp1252" else "abc 東京表ｶﾀ"
        column = Column(name, kind, _USHORT, 2 * most, codec=codec)
        return column, _text_gen(alphabet, codec, most)
    return Column(name, kind, _USHORT, 4 * most), _text_gen(_WIDE, "utf-16-le", most)


def _random_case(rng: random.Random) -> tuple[Layout, bytes]:
    width = rng.choice([1, 2, 3, rng.randint(1, 12), rng.randint(8, 40)])
    columns, gens = zip(*(_random_column(rng, i) for i in range(width)), strict=True)
    layout = Layout.of(columns)
    null_rate = rng.choice([0.0, 0.1, 0.5, 0.9])
    parts = []
    for _ in range(rng.randint(1, 12)):
        row = [None if rng.random() < null_rate else gen(rng) for gen in gens]
        nbcrow = rng.random() < 0.5 or any(
            v is None and c.framing is _FIXED for c, v in zip(columns, row, strict=True)
        )
        parts.append(token(layout, row, nbcrow=nbcrow))
    return layout, b"".join(parts) + rng.choice([DONE, b"\x79" + bytes(4) + DONE])


def test_seeded_random_layouts_rows_and_packet_splits() -> None:
    """300 random layouts, each scanned whole in random batches and then as a stream split at
    random offsets (the bytes so far are rescanned from where the last scan stopped)."""
    rng = random.Random(SEED)
    slow_rows = rows_seen = 0
    for case in range(LAYOUTS):
        layout, data = _random_case(rng)
        whole = assert_same(layout, data, batch_rows=rng.choice([1, 3, scan.BATCH_ROWS]))
        rows_seen += len(whole.rows)
        slow_rows += len(whole.slow)

        scanner = RowScanner(layout, RAW, batch_rows=rng.choice([2, 64]))
        cuts = sorted(rng.sample(range(len(data)), min(len(data), rng.randint(1, 6))))
        rows: list[tuple[Any, ...]] = []
        pos = 0
        for cut in [*cuts, len(data)]:
            got = scanner_decode(scanner, layout, data[:cut], pos)
            rows += got.rows
            pos = got.pos
            # Bytes ending at or before the end of the rows: INCOMPLETE, even at a row's end.
            assert got.stop == (INCOMPLETE if cut <= whole.pos else whole.stop), (case, cut)
        assert (pos, got.stop) == (whole.pos, whole.stop), case
        assert comparable(rows) == comparable(whole.rows), case
    # The draw covers the SLOW path too (not only the fast one).
    assert rows_seen > 1000
    assert 0 < slow_rows < rows_seen // 4


# -- by hand: speed on the report's rows ------------------------------------------------------

REPORT_LAYOUT = Layout.of(
    [
        Column("Id", Kind.INT, _BYTE, 4),
        Column("ColInt", Kind.INT, _BYTE, 4),
        Column("ColBigInt", Kind.INT, _BYTE, 8),
        Column("ColDecimal", Kind.DECIMAL, _BYTE, 9, scale=4),
        Column("ColVarchar", Kind.TEXT, _USHORT, 100, codec="cp1252"),
        Column("ColNVarchar", Kind.NTEXT, _USHORT, 200),
        Column("ColDate", Kind.DATE, _BYTE, 3),
        Column("ColDateTime", Kind.DATETIME2, _BYTE, 7, scale=3),
        Column("ColBit", Kind.BIT, _BYTE, 1),
        Column("ColFloat", Kind.FLOAT, _BYTE, 8),
    ]
)


def _best_of(repeat: int, run: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - began)
    return best


def print_timing(count: int = 200_000) -> None:
    """ns per row of the report layout: the scanner (batches of BATCH_ROWS, and of 50 rows as
    in a 4 KiB packet) against the generated Python decoder, on the dev server's bytes."""
    from sql.devserver.resultset import ReportEncoder

    data = ReportEncoder().encode_rows(1, count) + DONE
    decoder = compile_layout(REPORT_LAYOUT, raw_kinds=RAW)

    def python() -> None:
        rows: list[tuple[Any, ...]] = []
        assert decoder.decode(data, 0, rows.append)[1] == DONE[0]

    def scanned(batch: int) -> Callable[[], None]:
        scanner = RowScanner(REPORT_LAYOUT, RAW, batch_rows=batch)

        def run() -> None:
            pos, stop, total = 0, FULL, 0
            while stop == FULL:
                pos, stop, n = scanner.scan(data, pos, batch)
                total += n
            assert (stop, total) == (DONE[0], count)

        return run

    print(f"{count} report rows, {len(data) / count:.1f} bytes a row")
    timings = [
        ("python decoder (raw kinds)", _best_of(3, python)),
        (f"scanner, {scan.BATCH_ROWS} rows a call", _best_of(5, scanned(scan.BATCH_ROWS))),
        ("scanner, 50 rows a call", _best_of(5, scanned(50))),
    ]
    for label, seconds in timings:
        print(f"{label:32} {seconds / count * 1e9:8.1f} ns/row")


if __name__ == "__main__":
    print_timing()
