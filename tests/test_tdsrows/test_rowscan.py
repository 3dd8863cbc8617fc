"""The compiled row scanner against the generated Python decoder, on the same wire bytes.

Every test builds ROW/NBCROW tokens with the small encoder below (it writes exactly the
bytes asked for, including what SQL Server never sends: a value shorter than the column's
size, a decimal past 2**63, a negative zero), scans them into primitive cells, turns the cells
back into Python values and compares them with what ``compile_layout(...).decode`` gives for
the same bytes. Rows the scanner reports as SLOW are decoded by the reference decoder, as the
export does, so the two sides must agree on every row, every stop and every position; a row
holding a value its column's type does not have stops the scanner MALFORMED where the Python
decoder raises the StreamError that names it.

The tuple builder (``_rowscan.tuples``, driven by :class:`tdsrows.scandecode.ScannedDecode`)
is held to the generated decoder's objects the same way: the same tuples, stop and position,
and the same error (type and message) where the bytes hold a value Python has no object for.

Their speed on the report's rows: ``python -m tests.bench.compiled_rows``.
"""

from __future__ import annotations

import codecs
import datetime as dt
import importlib
import itertools
import random
import struct
import sys
from array import array
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from primitive_cells import CELL_BYTES, CellType
from tdsrows import scan
from tdsrows import values as pyvalues
from tdsrows.cells import ReferenceDecoder
from tdsrows.codegen import DecodeFn, compile_layout
from tdsrows.errors import StreamError, UnsupportedLayout
from tdsrows.layout import TIME_BYTES, Column, Framing, Kind, Layout
from tdsrows.results import compile_for
from tdsrows.scan import Conversion, RowScanner, TuplePlan, tuple_plan
from tdsrows.scandecode import ScannedDecode
from tdsrows.stops import FULL, INCOMPLETE, MALFORMED, SLOW
from tdsrows.values import RAW_KINDS, text_decoder
from tests.test_fuzz.wire import SCANNED
from tests.test_tdsrows.support import comparable

pytestmark = pytest.mark.compiled

ROW, NBCROW = 0xD1, 0xD2
DONE = b"\xfd" + bytes(12)  # a DONE token after the rows (MS-TDS 2.2.7.6)
RAW = RAW_KINDS
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
    if kind is Kind.DATETIME:
        return struct.pack("<ii", *value)  # days since 1900-01-01, 1/300 s
    if kind is Kind.SMALLDATETIME:
        return struct.pack("<HH", *value)  # days since 1900-01-01, minutes
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
    error: str | None = None  # MALFORMED: the StreamError the Python decoder raised at ``pos``


def python_decode(layout: Layout, data: bytes, pos: int = 0) -> Decoded:
    """The generated Python decoder's rows, stop and position (or the StreamError it raised,
    as MALFORMED where the row it refused starts); row starts by the reference."""
    rows: list[tuple[Any, ...]] = []
    error = None
    try:
        end, stop = compile_for(layout, raw_kinds=RAW).decode(data, pos, rows.append)
    except StreamError as exc:
        end, stop, error = -1, MALFORMED, str(exc)
    reference = ReferenceDecoder(layout, raw_kinds=RAW)
    starts: list[int] = []
    p = pos
    while len(starts) < len(rows):
        starts.append(p)
        p = reference.token(data, p, lambda row: None, len(data))
        assert p > 0
    if error is not None:
        end = p
    return Decoded(rows, end, stop, starts, error=error)


def cell_value(scanner: RowScanner, layout: Layout, k: int, i: int, data: bytes) -> object:
    """Cell (k, i) as the Python decoder gives it, after checking the cell's invariants."""
    value, length, reserved = _CELL.unpack_from(scanner.cells, (k * scanner.width + i) * 16)
    assert reserved == 0
    primitive = scanner.primitives[i]
    text = primitive in (CellType.BYTE_TEXT, CellType.UTF16_TEXT)
    if length == -1:
        assert value == 0
    elif text:
        assert value >= 0
        assert value + length <= len(data)
    else:
        assert length == 0
        if primitive is CellType.BOOL:
            assert value in (0, 1)
    got = scanner.value(k, i, data)
    if isinstance(got, bytes):
        column = layout.columns[i]
        if column.kind is Kind.TEXT:
            assert column.codec is not None
            return text_decoder(column.codec)(got)
        return pyvalues.ntext_value(got)
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
        elif stop == MALFORMED:
            # The Python decoder names what the scanner refused.
            generated = compile_for(layout, raw_kinds=RAW).decode
            with pytest.raises(StreamError) as refused:
                scan.refuse(after, generated, data, after, lambda row: None)
            out.pos, out.stop, out.error = after, stop, str(refused.value)
            return out
        elif stop == SLOW:
            # A SLOW row is always whole: the reference decoder reads it.
            out.slow.append(len(out.rows))
            out.starts.append(after)
            end = reference.token(data, after, out.rows.append, len(data))
            assert end > after, "SLOW for a row cut off by the end of the data"
            assert scanner.slow_end(count) == end
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
    """The scanner and the Python decoder give the same rows, starts, position and stop; and
    so do the scanner with the tuple builder and the Python decoder, as objects."""
    expected = python_decode(layout, data)
    got = scanner_decode(RowScanner(layout, RAW, batch_rows=batch_rows), layout, data)
    assert comparable(got.rows) == comparable(expected.rows)
    assert (got.pos, got.stop, got.error) == (expected.pos, expected.stop, expected.error)
    assert got.starts == expected.starts
    if scan.primitives(layout, scan.OBJECT_KINDS) is not None:  # no (small)datetime columns
        assert_same_tuples(layout, data, batch_rows=batch_rows)
    return got


Outcome = tuple[list[tuple[Any, ...]], tuple[object, ...]]


def outcome(decode: DecodeFn, data: bytes, pos: int = 0) -> Outcome:
    """What a decode gives: its rows (comparable), and (pos, stop) or the error it raised."""
    rows: list[tuple[Any, ...]] = []
    try:
        result: tuple[object, ...] = decode(data, pos, rows.append)
    except Exception as exc:
        result = (type(exc), str(exc))
    return comparable(rows), result


def assert_same_tuples(
    layout: Layout,
    data: bytes,
    pos: int = 0,
    *,
    batch_rows: int = scan.BATCH_ROWS,
    raw_kinds: frozenset[Kind] = frozenset(),
) -> Outcome:
    """ScannedDecode (scanner and tuple builder) and the generated decoder give the same
    rows and stop, or raise the same error after the same rows."""
    generated = compile_for(layout, raw_kinds=raw_kinds)  # compiled once per layout
    expected = outcome(generated.decode, data, pos)
    got = outcome(ScannedDecode(generated, batch_rows=batch_rows).decode, data, pos)
    assert got == expected
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
        (_col(Kind.INT, _FIXED, 1), RAW, CellType.INT64),
        (_col(Kind.INT, _BYTE, 8), frozenset(), CellType.INT64),
        (_col(Kind.BIT, _BYTE, 1), RAW, CellType.BOOL),
        (_col(Kind.FLOAT, _FIXED, 4), RAW, CellType.DOUBLE),
        (_col(Kind.MONEY, _BYTE, 8), RAW, CellType.INT64),
        (_col(Kind.DECIMAL, _BYTE, 17, scale=2), RAW, CellType.INT64),
        (_col(Kind.DATE, _BYTE, 3), RAW, CellType.INT64),
        (_col(Kind.DATETIME2, _BYTE, 8, scale=7), RAW, CellType.INT64),
        (_col(Kind.DATETIME, _FIXED, 8), RAW, CellType.INT64),
        (_col(Kind.SMALLDATETIME, _BYTE, 4), RAW, CellType.INT64),
        (_col(Kind.TEXT, _USHORT, 100, codec="cp1252"), RAW, CellType.BYTE_TEXT),
        (_col(Kind.NTEXT, _USHORT, 200), RAW, CellType.UTF16_TEXT),
        # Not raw: these are Decimal/date/datetime objects, the Python decoder's job.
        (_col(Kind.MONEY, _FIXED, 8), frozenset(), None),
        (_col(Kind.DECIMAL, _BYTE, 9), frozenset(), None),
        (_col(Kind.DATE, _BYTE, 3), frozenset({Kind.DECIMAL}), None),
        (_col(Kind.DATETIME2, _BYTE, 7, scale=3), frozenset(), None),
        (_col(Kind.TIME, _BYTE, 5, scale=7), RAW, None),
        (_col(Kind.DATETIME, _FIXED, 8), frozenset(), None),
        (_col(Kind.SMALLDATETIME, _BYTE, 4), frozenset(), None),
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
    column: Column, raw: frozenset[Kind], expected: CellType | None
) -> None:
    other = _col(Kind.INT, _FIXED, 4)
    layout = Layout.of([other, column])
    if expected is None:
        assert scan.primitives(layout, raw) is None
        with pytest.raises(UnsupportedLayout, match=column.name):
            RowScanner(layout, raw)
    else:
        assert scan.primitives(layout, raw) == (CellType.INT64, expected)
        assert RowScanner(layout, raw).primitives == (CellType.INT64, expected)


def test_buffers_are_sized_by_batch_and_width() -> None:
    layout = Layout.of([_col(Kind.INT, _FIXED, 4), _col(Kind.NTEXT, _USHORT, 20)])
    scanner = RowScanner(layout, RAW, batch_rows=7)
    assert scanner.width == 2
    assert len(scanner.cells) == 7 * 2 * CELL_BYTES
    assert len(scanner.starts) == 7 * 8
    with pytest.raises(UnsupportedLayout):
        RowScanner(Layout.of([]), RAW)


def _f32(x: float) -> float:
    return float(struct.unpack("<f", struct.pack("<f", x))[0])


def _per_day(scale: int) -> int:
    ticks: int = 86_400 * 10**scale
    return ticks


def _datetime2_cases(scale: int) -> list[tuple[object, bool]]:
    per_day = _per_day(scale)
    cases: list[tuple[object, bool]] = [
        ((0, 0), False),
        ((1, 1), False),
        ((738_000, per_day // 3), False),
        ((3_652_058, per_day - 1), False),  # 9999-12-31, the last tick
        # Past 9999-12-31 (day 2**24 - 1): read as it is, unless an int64 cannot hold it
        # (scale 7 only).
        ((2**24 - 1, per_day - 1), scale == 7),
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
            _col(Kind.TEXT, _USHORT, 8000, codec="cp1252"),
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
    ntext = ["", "é", "\U0001f600", "東京" * 2000, "a\ud800b", "\udc00", "a\ud800"]
    cases.append(
        (
            _col(Kind.NTEXT, _USHORT, 8000),
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
    after = Column("after", Kind.NTEXT, _USHORT, 200)
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


_BEFORE = Column("before", Kind.INT, _BYTE, 4)
_AFTER = Column("after", Kind.NTEXT, _USHORT, 20)
_DAY3 = _per_day(3)


def _ticks(scale: int, ticks: int, days: int = 0) -> bytes:
    size = TIME_BYTES[scale]
    return bytes((size + 3,)) + ticks.to_bytes(size, "little") + days.to_bytes(3, "little")


# (column, its value as sent (length prefix included), what the column's type does not allow)
_MALFORMED: list[tuple[Column, bytes, str]] = [
    (Column("d", Kind.DATE, _BYTE, 3), b"\x09" + bytes(range(1, 10)), "a value of 9 bytes, not 3"),
    (Column("d", Kind.DATE, _BYTE, 3), b"\x02\x01\x02", "a value of 2 bytes, not 3"),
    (_col(Kind.DATETIME2, _BYTE, 7, scale=3), b"\x02\x01\x02", "a value of 2 bytes, not 7"),
    (_col(Kind.DATETIME2, _BYTE, 8, scale=7), b"\x07" + bytes(7), "a value of 7 bytes, not 8"),
    (
        _col(Kind.DATETIME2, _BYTE, 7, scale=3),
        _ticks(3, _DAY3, 5),
        f"a time of a day or more ({_DAY3} ticks of 10**-3 s)",
    ),
    (
        _col(Kind.DATETIME2, _BYTE, 8, scale=7),
        _ticks(7, 2**40 - 1),
        f"a time of a day or more ({2**40 - 1} ticks of 10**-7 s)",
    ),
    (
        Column("a", Kind.DECIMAL, _BYTE, 9, scale=4),
        b"\x02\x01\x05",
        "a value of 2 bytes, not the 9 of its precision",
    ),
    (
        Column("a", Kind.DECIMAL, _BYTE, 9, scale=4),
        bytes((200, 1)) + bytes(199),
        "a value of 200 bytes, not the 9 of its precision",
    ),
    (
        Column("a", Kind.DECIMAL, _BYTE, 9, scale=4),
        b"\x05\x01" + bytes(4),  # a size of another precision
        "a value of 5 bytes, not the 9 of its precision",
    ),
    (
        Column("a", Kind.DECIMAL, _BYTE, 5),
        b"\x11\x01" + bytes(16),
        "a value of 17 bytes, not the 5 of its precision",
    ),
    (Column("i", Kind.INT, _BYTE, 4), b"\x08" + bytes(8), "a value of 8 bytes, not 4 or 1 or 2"),
    (Column("i", Kind.INT, _BYTE, 4), b"\x03" + bytes(3), "a value of 3 bytes, not 4 or 1 or 2"),
    (Column("i", Kind.INT, _BYTE, 1), b"\x02" + bytes(2), "a value of 2 bytes, not 1"),
    (Column("b", Kind.BIT, _BYTE, 1), b"\x02\x01\x00", "a value of 2 bytes, not 1"),
    (Column("f", Kind.FLOAT, _BYTE, 8), b"\x02" + bytes(2), "a value of 2 bytes, not 8 or 4"),
    (Column("f", Kind.FLOAT, _BYTE, 4), b"\x08" + bytes(8), "a value of 8 bytes, not 4"),
    (Column("m", Kind.MONEY, _BYTE, 8), b"\x02" + bytes(2), "a value of 2 bytes, not 8 or 4"),
    (Column("m", Kind.MONEY, _BYTE, 4), b"\x08" + bytes(8), "a value of 8 bytes, not 4"),
    (Column("t", Kind.DATETIME, _BYTE, 8), b"\x06" + bytes(6), "a value of 6 bytes, not 8 or 4"),
    (Column("t", Kind.SMALLDATETIME, _BYTE, 4), b"\x08" + bytes(8), "a value of 8 bytes, not 4"),
    (
        Column("v", Kind.TEXT, _USHORT, 10, codec="cp1252"),
        b"\x0b\x00" + b"x" * 11,
        "a value of 11 bytes, more than the 10 it is declared with",
    ),
    (
        Column("n", Kind.NTEXT, _USHORT, 20),
        b"\x15\x00" + b"x" * 21,
        "a value of 21 bytes, more than the 20 it is declared with",
    ),
    (
        Column("n", Kind.NTEXT, _USHORT, 20),
        b"\x05\x00" + "ab".encode("utf-16-le") + b"c",
        "a value of 5 bytes, an odd number (UTF-16 has 2 bytes a unit)",
    ),
    (
        Column("n", Kind.NTEXT, _USHORT, 20),
        b"\xfe\xff",
        "a value of 65534 bytes, more than the 20 it is declared with",
    ),
]


def _malformed_id(case: object) -> str | None:
    if isinstance(case, Column):
        return case.type_name
    return None


@pytest.mark.parametrize("how", ["row", "nbcrow"])
@pytest.mark.parametrize(("column", "value", "problem"), _MALFORMED, ids=_malformed_id)
def test_a_value_its_column_s_type_does_not_have_is_named_on_both_sides(
    column: Column, value: bytes, problem: str, how: str
) -> None:
    """The rows before it, then the scanner stops MALFORMED at its row, and the Python decoder
    (generated and reference) raises a StreamError naming the column and the problem; the tuple
    builder raises the same. A length is judged as soon as it is read: a row cut off after it
    is the same error; a time of a day or more needs its bytes."""
    layout = Layout.of([_BEFORE, column, _AFTER])
    good = tokens(layout, [[k, None, "é".encode("utf-16-le")] for k in range(2)], how)
    head = bytes((NBCROW, 0)) if how == "nbcrow" else bytes((ROW,))
    bad = head + b"\x04" + struct.pack("<i", 7) + value + b"\x02\x00" + "é".encode("utf-16-le")
    message = f"column {column.name!r} ({column.type_name}): {problem}"
    data = good + bad + good + DONE
    for got in (python_decode(layout, data), assert_same(layout, data, batch_rows=1)):
        assert (len(got.rows), got.pos, got.stop, got.error) == (2, len(good), MALFORMED, message)
    reference = ReferenceDecoder(layout, raw_kinds=RAW)
    with pytest.raises(StreamError) as raised:
        reference.token(data, len(good), lambda row: None, len(data))
    assert str(raised.value) == message
    length_bytes = 1 if column.framing is _BYTE else 2
    cut = data[: len(good) + len(head) + 5 + length_bytes]
    if "time of a day" in problem:
        assert python_decode(layout, cut).stop == INCOMPLETE
        assert assert_same(layout, cut).stop == INCOMPLETE
    else:
        assert assert_same(layout, cut).error == message
    if scan.primitives(layout, scan.OBJECT_KINDS) is not None:
        for raw_kinds in (frozenset(), RAW):
            rows, result = assert_same_tuples(layout, data, raw_kinds=raw_kinds)
            assert (len(rows), result) == (2, (StreamError, message))


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        (Column("i", Kind.INT, _BYTE, 8), b"\x01\xff", 255),
        (Column("i", Kind.INT, _BYTE, 8), b"\x02\xff\xff", -1),
        (Column("i", Kind.INT, _BYTE, 4), b"\x01\x07", 7),
        (Column("f", Kind.FLOAT, _BYTE, 8), b"\x04" + struct.pack("<f", 1.5), 1.5),
        (Column("m", Kind.MONEY, _BYTE, 8), b"\x04" + struct.pack("<i", -7), -7),
        (Column("t", Kind.DATETIME, _BYTE, 8), b"\x04" + struct.pack("<HH", 1, 2), 86_520_000),
    ],
    ids=lambda v: v.type_name if isinstance(v, Column) else None,
)
def test_a_narrower_value_the_type_allows_is_read_by_python(
    column: Column, value: bytes, expected: object
) -> None:
    layout = Layout.of([_BEFORE, column])
    data = b"\xd1\x04" + struct.pack("<i", 3) + value + DONE
    got = assert_same(layout, data)
    assert (got.rows, got.slow) == ([(3, expected)], [0])


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
    assert scanner.program == bytes((3, 0, 4, 0, 0, 0, 0, 0))

    def column(
        op: int,
        framing: int,
        size: int,
        scale: int = 0,
        narrower: int = 0,
        zero: int = 0,
        most: int = 0,
    ) -> bytes:
        return struct.pack("<BBBBBBH", op, framing, size, scale, narrower, zero, most)

    text_ops = (0x0C, 0x0F)
    bad_programs = [
        b"",  # no column
        column(3, 0, 4)[:-1],  # not a whole column
        column(3, 0, 8),  # int32 of 8 bytes
        column(3, 2, 4),  # int32 framed as USHORT_LEN
        column(0x0C, 1, 0, most=10),  # text framed as BYTE_LEN
        column(0x06, 1, 10),  # decimal of 10 bytes
        column(0x08, 1, 8, 8),  # datetime2 of scale 8
        column(0x08, 1, 7, 7),  # datetime2(7) is 8 bytes
        column(3, 0, 4, zero=1),  # the byte after "narrower" is 0
        column(3, 0, 4, most=1),  # "most" is text's
        column(3, 0, 4, narrower=1),  # a FIXED value has no narrower sizes
        column(3, 1, 4, narrower=4),  # nor an int of 4 bytes one of 4
        column(2, 1, 2, narrower=2),  # nor a smallint one of 2
        column(0x07, 1, 3, narrower=1),  # nor a date
        column(0x09, 1, 4, narrower=4),  # nor a real
        column(0x0A, 1, 8, narrower=2),  # a float's is 4 bytes only
        *(column(op, 2, 0) for op in text_ops),  # text of at most 0 bytes
        *(column(op, 2, 0, most=0xFFFF) for op in text_ops),  # 0xFFFF is NULL's length
        *(column(op, 2, 1, most=10) for op in text_ops),  # text's size is on the wire
        *(column(op, 2, 0, narrower=1, most=10) for op in text_ops),  # no narrower text
        # Ops no column has: 0, the first past the last, and 255.
        column(0, 0, 4),
        column(16, 0, 4),
        column(16, 1, 4),
        column(255, 0, 4),
    ]
    good = [column(4, 1, 8, narrower=7), column(0x0A, 1, 8, narrower=4)]
    good += [column(0x0D, 1, 8, narrower=4), column(5, 1, 8, narrower=4)]
    good += [column(op, 2, 0, most=0xFFFE) for op in text_ops]
    for program in good:
        assert scan_fn(b"", 0, program, cells, starts, 9) == (0, INCOMPLETE, 0)
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


# DATETIME's range: days from 1753-01-01 to 9999-12-31 counted from 1900-01-01, and 1/300 s
# in a day (MS-TDS 2.2.5.5.1.8); values beyond are legal bytes the decoders must agree on.
_DATETIME_DAYS = (-53_690, 2_958_463)
_THREE_HUNDREDTHS_PER_DAY = 25_920_000


def _datetime_gen(r: random.Random) -> tuple[int, int]:
    days = r.choice(
        [*_DATETIME_DAYS, 0, r.randint(*_DATETIME_DAYS), r.randint(-(2**31), 2**31 - 1)]
    )
    last = _THREE_HUNDREDTHS_PER_DAY - 1
    # A negative time is no value SQL Server sends: the scanner leaves it to Python (SLOW).
    t = r.choice([0, 1, 2, 299, last, r.randint(0, last), r.randint(0, 2**31 - 1), -1])
    return days, t


def _smalldatetime_gen(r: random.Random) -> tuple[int, int]:
    return r.choice([0, 65_535, r.randint(0, 65_535)]), r.choice([0, 1439, r.randint(0, 65_535)])


def _random_column(rng: random.Random, i: int) -> tuple[Column, Gen]:
    kind = rng.choice(SCANNED)
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
    if kind is Kind.DATETIME:
        return Column(name, kind, framing, 8), _datetime_gen
    if kind is Kind.SMALLDATETIME:
        return Column(name, kind, framing, 4), _smalldatetime_gen
    most = rng.choice([1, 5, 30, 300])
    if kind is Kind.TEXT:
        codec = rng.choice(["cp1252", "cp932"])
        alphabet = _LATIN if codec == "cp1252" else "abc 東京表ｶﾀ"
        column = Column(name, kind, _USHORT, 2 * most, codec=codec)
        return column, _text_gen(alphabet, codec, most)
    return Column(name, kind, _USHORT, 4 * most), _text_gen(_WIDE, "utf-16-le", most)


def _random_case(
    rng: random.Random,
    column: Callable[[random.Random, int], tuple[Column, Callable[[random.Random], Any]]] = (
        _random_column
    ),
    most_rows: int = 12,
) -> tuple[Layout, bytes]:
    """A random layout of ``column``'s draws and up to ``most_rows`` rows of it as tokens,
    then DONE (sometimes after a RETURNSTATUS)."""
    width = rng.choice([1, 2, 3, rng.randint(1, 12), rng.randint(8, 40)])
    columns, gens = zip(*(column(rng, i) for i in range(width)), strict=True)
    layout = Layout.of(columns)
    null_rate = rng.choice([0.0, 0.1, 0.5, 0.9])
    parts = []
    for _ in range(rng.randint(1, most_rows)):
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


# -- the tuple builder -----------------------------------------------------------------------

TUPLE_LAYOUTS = 300
_MAX_DAY = 3_652_058  # 9999-12-31
# Decimal precision by magnitude bytes (MS-TDS 2.2.5.5.1.6): the largest scale each allows.
_MOST_SCALE = {5: 9, 9: 19, 13: 28, 17: 38}
# UTF-16LE that is not well-formed, kept as codecs' final decode with surrogatepass keeps it
# (pytds raises): lone surrogates, a pair cut by the end of the value (its high half kept), a
# BOM. An odd number of bytes is no UTF-16 at all: MALFORMED (test_malformed_values...).
_ODD_UTF16 = [
    b"\x00\xd8",
    b"\x00\xdc",
    "a\ud800b\udc00".encode("utf-16-le", "surrogatepass"),
    "\udc00\ud800\U0001f600".encode("utf-16-le", "surrogatepass"),
    "ab".encode("utf-16-le") + b"\x00\xd8",
    b"\x00\xd8\x00\xd8",
    b"\xff\xfeab",
    b"\xfe\xff" + "é".encode("utf-16-le"),
]


def _tuple_column(rng: random.Random, i: int) -> tuple[Column, Gen]:
    """A column of the scanner's kinds, its values reaching every edge of their objects (no
    datetime or smalldatetime: the tuple builder leaves rows of those to the generated code)."""
    column, gen = _random_column(rng, i)
    while column.kind in (Kind.DATETIME, Kind.SMALLDATETIME):
        column, gen = _random_column(rng, i)
    kind = column.kind
    if kind is Kind.DECIMAL:
        column = replace(column, scale=rng.randint(0, _MOST_SCALE[column.size]))
        return column, gen
    if kind is Kind.DATE:
        return column, lambda r: r.choice([0, _MAX_DAY, r.randint(0, _MAX_DAY)])
    if kind is Kind.DATETIME2:
        last = _per_day(column.scale) - 1

        def datetime2(r: random.Random) -> object:
            return (
                r.choice([0, _MAX_DAY, r.randint(0, _MAX_DAY)]),
                r.choice([0, last, r.randint(0, last)]),
            )

        return column, datetime2
    if kind is Kind.NTEXT:
        odd = [t for t in _ODD_UTF16 if len(t) <= column.size]
        return column, lambda r: r.choice(odd) if odd and r.random() < 0.2 else gen(r)
    if kind is Kind.TEXT:
        # Any bytes at all now and then: unassigned code points, cut multi-byte sequences.
        most = min(9, column.size)
        return column, lambda r: r.randbytes(r.randint(1, most)) if r.random() < 0.1 else gen(r)
    return column, gen


def _tuple_case(rng: random.Random) -> tuple[Layout, bytes]:
    return _random_case(rng, _tuple_column, most_rows=30)


def test_seeded_random_tuples_are_the_python_decoders() -> None:
    """300 random layouts as objects: whole, in random batches, and cut at random offsets
    (a packet boundary), the tuple builder's rows, stops and positions are the generated
    decoder's; the draw reaches SLOW rows, NULLs, odd UTF-16 and non-ASCII code pages."""
    rng = random.Random(SEED + 1)
    rows_seen = 0
    seen: set[str] = set()
    for case in range(TUPLE_LAYOUTS):
        layout, data = _tuple_case(rng)
        batch = rng.choice([1, 3, scan.BATCH_ROWS])
        rows, _ = assert_same_tuples(layout, data, batch_rows=batch)
        rows_seen += len(rows)
        starts = python_decode(layout, data).starts  # where each row begins
        for cut in rng.sample(range(len(data)), min(len(data), 4)):
            start = rng.choice([0, *(p for p in starts if p <= cut)])
            pos, stop = assert_same_tuples(layout, data[:cut], start, batch_rows=batch)[1]
            assert isinstance(pos, int), case  # no value of the draw raises
            assert stop == INCOMPLETE or data[pos] not in (ROW, NBCROW), case
        raw_kinds = rng.choice([frozenset(), RAW, frozenset({Kind.DATE})])
        assert_same_tuples(layout, data, raw_kinds=raw_kinds, batch_rows=batch)
        if scanner_decode(RowScanner(layout, RAW), layout, data).slow:
            seen.add("slow")
        for column in layout.columns:
            seen.add(f"{column.kind.value}-{column.codec}")
    assert rows_seen > 3000
    assert {"slow", "text-cp1252", "text-cp932", "ntext-None", "decimal-None"} <= seen


def _tuples_of(layout: Layout, rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
    """The rows through the scanner and the tuple builder, every one of them built in C."""
    data = tokens(layout, rows, "auto") + DONE
    scanner = RowScanner(layout, scan.OBJECT_KINDS, batch_rows=len(rows))
    assert scanner.scan(data, 0, len(rows)) == (len(data) - len(DONE), FULL, len(rows))
    out: list[tuple[Any, ...]] = []
    assert scanner.tuples(data, 0, len(rows), tuple_plan(layout, frozenset()), out) == len(rows)
    return out


def test_every_day_of_the_calendar_is_the_date_python_gives() -> None:
    """Days since 0001-01-01 to (year, month, day) in C: all 3,652,059 of them."""
    width = 16
    layout = Layout.of([Column(f"d{i}", Kind.DATE, _BYTE, 3) for i in range(width)])
    days = _MAX_DAY + 1
    padding = -days % width  # day 0 again, to fill the last row
    # Each value as on the wire (length 3, then the day's 3 bytes) is the uint32 day << 8 | 3
    # in little-endian order: made 4 bytes at a time, as token() would take seconds.
    cells = array("I", range(3, days << 8, 1 << 8))
    cells.extend([3] * padding)
    if sys.byteorder == "big":
        cells.byteswap()
    row_bytes = 4 * width
    body = cells.tobytes()
    data = b"".join(bytes((ROW,)) + body[k : k + row_bytes] for k in range(0, len(body), row_bytes))
    rows = len(cells) // width
    scanner = RowScanner(layout, scan.OBJECT_KINDS, batch_rows=rows)
    assert scanner.scan(data, 0, rows) == (len(data), FULL, rows)
    out: list[tuple[Any, ...]] = []
    scanner.tuples(data, 0, rows, tuple_plan(layout, frozenset()), out)
    got = list(itertools.chain.from_iterable(out))
    expected = list(map(dt.date.fromordinal, range(1, days + 1)))
    assert got == expected + expected[:1] * padding
    assert all(type(d) is dt.date for d in got[:100])


@pytest.mark.parametrize("scale", range(8))
def test_datetime2_of_every_scale_is_the_datetime_python_gives(scale: int) -> None:
    """Each second of a day (scale 0), ticks at the edges of every field, first and last days:
    truncated to microseconds as pytds does."""
    per_day = _per_day(scale)
    rng = random.Random(scale)
    if scale == 0:
        ticks = list(range(per_day))
    else:
        unit = 10**scale
        ticks = [0, 1, unit - 1, unit, per_day - 1, per_day // 2, 59 * unit + unit - 1]
        ticks += [rng.randrange(per_day) for _ in range(2000)]
    dates = [0, 1, 58, 59, 730_119, _MAX_DAY - 1, _MAX_DAY]
    values = [(rng.choice(dates), t) for t in ticks]
    layout = Layout.of([Column("t", Kind.DATETIME2, _BYTE, TIME_BYTES[scale] + 3, scale=scale)])
    got = [row[0] for row in _tuples_of(layout, [[v] for v in values])]
    assert got == [pyvalues.datetime2_value(d, t, scale) for d, t in values]


def _decimals() -> Iterator[int]:
    yield from (0, 1, -1, 2**63 - 1, -(2**63 - 1), 10**18, -(10**18), 9 * 10**18)
    for zeros in range(19):
        for digits in (1, 7, 15, 123_456_789):
            if digits * 10**zeros < 2**63:
                yield digits * 10**zeros
                yield -digits * 10**zeros


@pytest.mark.parametrize("scale", [0, 1, 2, 4, 9, 10, 18, 19, 20, 28, 37, 38])
def test_decimals_have_the_coefficient_and_exponent_pytds_gives(scale: int) -> None:
    """Decimal(scaled) / 10**scale in a 38-digit context: trailing zeros off down to the
    exponent 0, never past it (str() shows both)."""
    layout = Layout.of([Column("d", Kind.DECIMAL, _BYTE, 17, scale=scale)])
    scaled = list(_decimals())
    got = [row[0] for row in _tuples_of(layout, [[v] for v in scaled])]
    expected = [pyvalues.decimal_value(v >= 0, abs(v), scale) for v in scaled]
    assert [(type(v), str(v)) for v in got] == [(type(v), str(v)) for v in expected]


def test_money_is_the_decimal_pytds_gives() -> None:
    money = [-(2**63), 2**63 - 1, 0, -1, 10_000, -10_000, 12_345, 100, 2**32, -(2**32) - 1]
    small = [-(2**31), 2**31 - 1, 0, 5, -50_000]
    layout = Layout.of([Column("m", Kind.MONEY, _FIXED, 8), Column("s", Kind.MONEY, _BYTE, 4)])
    rows = [[m, small[k % len(small)]] for k, m in enumerate(money)]
    got = _tuples_of(layout, rows)
    expected = [(pyvalues.money_value(m), pyvalues.money_value(s)) for m, s in rows]
    assert [tuple(map(str, r)) for r in got] == [tuple(map(str, r)) for r in expected]


def test_utf16_is_decoded_as_codecs_decodes_it() -> None:
    texts = [*_ODD_UTF16, b"", "plain".encode("utf-16-le"), "\U0010ffff東".encode("utf-16-le")]
    layout = Layout.of([Column("n", Kind.NTEXT, _USHORT, 8000)])
    got = [row[0] for row in _tuples_of(layout, [[t] for t in texts])]
    assert got == [codecs.utf_16_le_decode(t, "surrogatepass", True)[0] for t in texts]


@pytest.mark.parametrize("codec", ["cp1252", "cp1251", "cp932", "cp936", "utf-8"])
def test_code_page_text_is_the_python_decoders(codec: str) -> None:
    texts = [b"", b"ascii only", bytes(range(256)), b"\x81", b"abc\xff", bytes(range(128, 256))]
    texts += ["Zürich Москва 東京".encode(codec, "replace")]
    # One non-ASCII byte at each place of the 8-byte words the ASCII check reads, and after.
    texts += [b"a" * k + b"\xe9" + b"b" * (20 - k) for k in range(21)]
    layout = Layout.of([Column("v", Kind.TEXT, _USHORT, 8000, codec=codec)])
    got = [row[0] for row in _tuples_of(layout, [[t] for t in texts])]
    expected = [text_decoder(codec)(t) for t in texts]
    # isascii(): a str made as ASCII must hold ASCII only (equality alone would not tell).
    assert [(t, t.isascii()) for t in got] == [(t, t.isascii()) for t in expected]


def test_a_date_python_has_no_object_for_raises_as_the_python_decoder_does() -> None:
    """Day 3,652,059 on (past 9999-12-31; never sent): the same ValueError after the same
    rows, whether the day is a date's or a datetime2's; a datetime2 time of a day or more is
    the same StreamError, naming the column, after the same rows."""
    layout = Layout.of([Column("d", Kind.DATE, _BYTE, 3), _col(Kind.DATETIME2, _BYTE, 7, scale=3)])
    good = [5, (5, 5)]
    for bad in ([_MAX_DAY + 1, None], [None, (_MAX_DAY + 1, 0)], [2**24 - 1, (0, 0)]):
        data = tokens(layout, [good, good, bad, good], "auto") + DONE
        rows, result = assert_same_tuples(layout, data)
        assert len(rows) == 2
        assert result[0] is ValueError
        assert assert_same_tuples(layout, data, raw_kinds=RAW)[1] == (
            len(data) - len(DONE),
            DONE[0],
        )
    late = tokens(layout, [good, [None, (0, _per_day(3))], good], "auto") + DONE
    for raw_kinds in (frozenset(), RAW):
        rows, result = assert_same_tuples(layout, late, raw_kinds=raw_kinds)
        assert len(rows) == 1
        assert result == (
            StreamError,
            f"column {layout.columns[1].name!r} (datetime2(3)):"
            " a time of a day or more (86400000 ticks of 10**-3 s)",
        )


@pytest.fixture
def strict_codec() -> Iterator[str]:
    """A codec that raises on byte 0xFF (UnicodeDecodeError) and on 0xFE (LookupError),
    without asking the error handler."""
    name = "tdsrows_test_strict"

    def decode(data: Any, errors: str = "strict", /) -> tuple[str, int]:
        text = bytes(data)
        if b"\xff" in text:
            raise UnicodeDecodeError(name, text, 0, 1, "no 0xff here")
        if b"\xfe" in text:
            raise LookupError("no 0xfe here")
        return text.decode("latin-1"), len(text)

    def search(wanted: str) -> codecs.CodecInfo | None:
        if wanted != name:
            return None
        return codecs.CodecInfo(name=name, encode=codecs.latin_1_encode, decode=decode)

    codecs.register(search)
    yield name
    codecs.unregister(search)


def test_a_text_decoders_error_is_the_python_decoders(strict_codec: str) -> None:
    """An error the code page's decoder raises (even a UnicodeDecodeError: never taken for a
    row cut off) is raised after the rows before it, as the Python decoder raises it."""
    layout = Layout.of(
        [Column("i", Kind.INT, _FIXED, 4), Column("v", Kind.TEXT, _USHORT, 10, codec=strict_codec)]
    )
    good = [1, b"caf\xe9"]
    for bad, stopped in ((b"\xff", UnicodeDecodeError), (b"a\xfe", LookupError)):
        data = tokens(layout, [good, good, [2, bad], good], "auto") + DONE
        for batch in (1, 2, scan.BATCH_ROWS):
            rows, result = assert_same_tuples(layout, data, batch_rows=batch)
            assert rows == comparable([(1, "caf\xe9")] * 2)
            assert result[0] is stopped


def test_any_append_gets_the_rows_in_order() -> None:
    """decode hands each row to ``append`` (a list's append goes straight to the list)."""
    layout = _MIXED
    data = tokens(layout, _MIXED_ROWS, "auto") + DONE
    generated = compile_layout(layout)
    expected: list[tuple[Any, ...]] = []
    generated.decode(data, 0, expected.append)
    seen: list[tuple[Any, ...]] = []
    decoder = ScannedDecode(generated, batch_rows=2)
    assert decoder.decode(data, 0, lambda row: seen.append(row)) == (len(data) - len(DONE), DONE[0])
    assert comparable(seen) == comparable(expected)
    into: list[tuple[Any, ...]] = [("already",)]
    decoder.decode_into(data, 0, into)
    assert comparable(into[1:]) == comparable(expected)


def test_bad_tuple_arguments_are_refused() -> None:
    layout = Layout.of([Column("x", Kind.INT, _FIXED, 4), Column("n", Kind.NTEXT, _USHORT, 8)])
    data = tokens(layout, [[7, "é".encode("utf-16-le")]], "row") + DONE
    scanner = RowScanner(layout, scan.OBJECT_KINDS)
    assert scanner.scan(data, 0, 9)[2] == 1
    plan = tuple_plan(layout, frozenset())
    tuples = _rowscan().tuples
    out: list[Any] = []
    assert tuples(data, scanner.cells, 0, 1, plan.conversions, plan.helpers, out) == 1
    assert out == [(7, "é")]
    text = bytes((Conversion.BYTE_TEXT, 0))
    bad = [
        (b"", (), ValueError),  # no column
        (b"\x01", (None,), ValueError),  # not a whole column
        (b"\x01\x00\x06", (None, None), ValueError),
        (b"\x01\x00\x09\x00", (None, None), ValueError),  # no conversion 9
        (b"\x00\x00\x06\x00", (None, None), ValueError),  # nor 0
        (b"\x01\x01\x06\x00", (None, None), ValueError),  # an int has no scale
        (b"\x01\x00\x05\x08", (None, None), ValueError),  # datetime2(8)
        (b"\x01\x00\x08\x27", (None, None), ValueError),  # decimal scale 39
        (b"\x01\x00\x06\x00", (None,), TypeError),  # a helper per column
        (b"\x01\x00\x06\x00", [None, None], TypeError),
        (b"\x01\x00" + text, (None, None), TypeError),  # text needs its decoder
        (b"\x01\x00\x08\x02", (None, None), TypeError),  # a decimal needs Decimal
    ]
    for conversions, helpers, error in bad:
        with pytest.raises(error):
            tuples(data, scanner.cells, 0, 1, conversions, helpers, out)
    with pytest.raises(ValueError, match="rows"):
        tuples(data, scanner.cells, 0, scanner.batch_rows + 1, plan.conversions, plan.helpers, out)
    with pytest.raises(ValueError, match="rows"):
        tuples(data, scanner.cells, 1, 0, plan.conversions, plan.helpers, out)
    with pytest.raises(ValueError, match="outside"):  # cells that point past the data
        tuples(data[:5], scanner.cells, 0, 1, plan.conversions, plan.helpers, out)
    with pytest.raises(TypeError, match="list"):
        tuples(data, scanner.cells, 0, 1, plan.conversions, plan.helpers, ())
    assert out == [(7, "é")]


def test_a_helpers_error_propagates_after_the_rows_before_it() -> None:
    layout = Layout.of([Column("d", Kind.DECIMAL, _BYTE, 9, scale=2)])
    data = tokens(layout, [[1], [2], [3]], "row") + DONE
    scanner = RowScanner(layout, scan.OBJECT_KINDS)
    assert scanner.scan(data, 0, 9)[2] == 3
    made: list[object] = []

    def make(text: object) -> object:
        if len(made) == 2:
            raise ArithmeticError("third")
        made.append(text)
        return text

    out: list[Any] = []
    plan = TuplePlan(bytes((Conversion.DECIMAL, 2)), (make,))
    with pytest.raises(ArithmeticError, match="third"):
        scanner.tuples(data, 0, 3, plan, out)
    assert out == [("1E-2",), ("2E-2",)]


def test_the_row_code_benchmark_runs(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.bench import compiled_rows

    assert compiled_rows.main(["--rows", "3000", "--repeat", "1"]) == 0
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert len(table) == 7  # the header and six paths


def test_a_row_cut_off_is_incomplete_even_after_a_value_with_no_object() -> None:
    """The Python decoder walks a row whole before it makes any value, as the scanner does: a
    datetime2 past 9999-12-31 (no datetime has it) in a row cut off after it is INCOMPLETE, not
    the ValueError the whole row gives."""
    layout = Layout.of([_col(Kind.DATETIME2, _BYTE, 7, scale=3), Column("i", Kind.INT, _BYTE, 4)])
    row = tokens(layout, [[(2**24 - 1, 5), 7]], "row")
    for cut in range(len(row)):
        assert assert_same_tuples(layout, row[:cut])[1] == (0, INCOMPLETE), cut
    rows, result = assert_same_tuples(layout, row + DONE)
    assert (rows, result[0]) == ([], ValueError)
