"""Every C entry point called with arguments no caller of ours builds: programs and plans of any
bytes, cells that point anywhere, buffers of any size, positions and counts at and past their
ends. Each call either refuses with the documented error (ValueError, TypeError, OverflowError
for an int that does not fit) or returns what its contract says, reading and writing only
inside its buffers (the sanitizer build, ``make test-sanitize``, is what sees a stray read).
"""

from __future__ import annotations

import decimal
import importlib
import struct
from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

import primitive_cells
from tdsrows import scan, stops
from tdsrows.scan import PLAN_BYTES, PROGRAM_BYTES, Conversion, tuple_plan
from tests.test_fuzz.budget import fuzz
from tests.test_fuzz.test_rowxml import _encoder, writer_columns
from tests.test_fuzz.wire import TUPLED, Stream, layouts, mutate, mutations, streams
from tests.test_tdsrows.test_rowscan import RAW
from xlsx import native

pytestmark = pytest.mark.compiled

_CELL = struct.Struct("=qii")
_REFUSED = (ValueError, TypeError, OverflowError)
_STOPS = {stops.INCOMPLETE, stops.FULL, stops.SLOW, stops.MALFORMED}


def _module(name: str) -> Any:
    """A compiled module itself, for calls no wrapper makes (imported when a test runs: the
    tests are skipped where the extensions are switched off)."""
    return importlib.import_module(name)


def _mutated(valid: bytes, changes: list[tuple[int, int]]) -> bytes:
    out = bytearray(valid)
    for where, value in changes:
        if out:
            out[where % len(out)] = value
    return bytes(out)


@fuzz(200)
@given(
    stream=streams(),
    changes=mutations(),
    program_changes=st.just([])
    | st.lists(st.tuples(st.integers(0, 999), st.integers(0, 255)), max_size=3),
    extra=st.just(b"") | st.binary(max_size=3),
    pos=st.just(0) | st.integers(-2, 300),
    max_rows=st.integers(-1, 12),
    cell_rows=st.integers(0, 12),
    cell_slack=st.integers(0, 15),
    start_rows=st.integers(0, 12),
)
def test_scan_with_any_program_and_buffers(
    stream: Stream,
    changes: Any,
    program_changes: list[tuple[int, int]],
    extra: bytes,
    pos: int,
    max_rows: int,
    cell_rows: int,
    cell_slack: int,
    start_rows: int,
) -> None:
    data = mutate(stream, changes)
    width = len(stream.layout.columns)
    program = _mutated(scan.program(stream.layout, RAW), program_changes)
    if extra:
        program += extra  # no longer a whole number of columns, or one column more
    cells = bytearray(cell_rows * width * 16 + cell_slack)
    starts = bytearray(start_rows * 8)
    try:
        after, stop, rows = _module("tdsrows._rowscan").scan(
            data, pos, program, cells, starts, max_rows
        )
    except _REFUSED as exc:
        event(f"refused: {str(exc).split(' ')[0]}")
        if len(program) % PROGRAM_BYTES == 0 and program_changes == [] and 0 <= pos <= len(data):
            assert max_rows < 0  # the program and the position were fine
        return
    event("scanned")
    assert 0 <= pos <= after <= len(data)
    assert 0 <= rows <= min(max_rows, cell_rows, start_rows)
    assert stop in _STOPS or (0 <= stop <= 255 and data[after] == stop)
    assert stop not in (0xD1, 0xD2)
    previous = pos - 1
    columns = len(program) // PROGRAM_BYTES
    for k in range(rows):
        (start,) = struct.unpack_from("=q", starts, 8 * k)
        assert previous < start < after
        previous = start
        for i in range(columns):
            value, length, reserved = _CELL.unpack_from(cells, (k * columns + i) * 16)
            assert reserved == 0
            if length > 0:  # text: where its bytes are, inside the data and its row
                assert start < value
                assert value + length <= after


@fuzz(150)
@given(
    stream=streams(layouts(kinds=TUPLED)),
    changes=mutations(most=2),
    cell_changes=st.lists(st.tuples(st.integers(0, 2**16), st.integers(0, 255)), max_size=6),
    plan_changes=st.just([])
    | st.lists(st.tuples(st.integers(0, 999), st.integers(0, 40)), max_size=2),
    first=st.just(0) | st.integers(-1, 12),
    rows=st.integers(0, 8) | st.integers(-1, 14),
    cut=st.integers(0, 2**16),
)
def test_tuples_with_any_cells_and_plan(
    stream: Stream,
    changes: Any,
    cell_changes: list[tuple[int, int]],
    plan_changes: list[tuple[int, int]],
    first: int,
    rows: int,
    cut: int,
) -> None:
    layout = stream.layout
    data = mutate(stream, changes)
    scanner = scan.RowScanner(layout, scan.OBJECT_KINDS, batch_rows=12)
    scanner.scan(data, 0, 12)
    cells = bytearray(_mutated(bytes(scanner.cells), cell_changes))
    plan = tuple_plan(layout, frozenset())
    conversions = _mutated(plan.conversions, plan_changes)
    helpers = tuple(
        decimal.Decimal if c == Conversion.DECIMAL else h
        for c, h in zip(conversions[::PLAN_BYTES], plan.helpers, strict=True)
    )
    view = data[: cut % (len(data) + 1)]  # cells may point past the end of these bytes
    out: list[Any] = []
    try:
        k = _module("tdsrows._rowscan").tuples(view, cells, first, rows, conversions, helpers, out)
    except (*_REFUSED, decimal.InvalidOperation, UnicodeDecodeError) as exc:
        event(f"refused: {type(exc).__name__}: {str(exc).split(' ')[0]}")
        return
    event("built")
    assert 0 <= first <= k <= rows
    assert len(out) == k - first
    assert all(type(row) is tuple and len(row) == len(layout.columns) for row in out)


_TEXTS = st.binary(max_size=12)
_SMALL = st.integers(1, 10**7)
_PARAM = (
    _SMALL
    | _SMALL
    | _SMALL
    | st.integers(-(2**63), 2**63 - 1)
    | st.sampled_from([0, -1, 2**62, 2**62 + 1, -(2**62) - 1, 2**63])
)
_OP = st.integers(1, 9) | st.integers(1, 9) | st.integers(1, 9)
_OP |= st.sampled_from([0, 10, -1, 2**31 + 1, 2**32 + 1, 2**64])
_ASCII_TABLE = "".join(map(chr, range(128)))


@st.composite
def plan_columns(draw: st.DrawFn) -> tuple[object, ...]:
    op = draw(_OP)
    texts = [draw(_TEXTS) for _ in range(5)]
    params = [draw(_PARAM) for _ in range(6)]
    table = None
    if op == 8 or draw(st.integers(0, 9)) == 0:
        table = draw(
            st.none()
            | st.text(min_size=128, max_size=128).map(lambda t: _ASCII_TABLE + t)
            | st.text(min_size=256, max_size=256)
            | st.text(max_size=300)
        )
    return (op, *texts, *params, table)


@st.composite
def plans(draw: st.DrawFn) -> list[tuple[object, ...]]:
    """The columns of a plan: a real one (xlsx.native's, for a workbook's encoder), perhaps
    with one field changed, or any."""
    if draw(st.integers(0, 3)) == 0:
        return draw(st.lists(plan_columns(), max_size=4))
    wanted = draw(st.lists(writer_columns(), min_size=1, max_size=4))
    encoder = _encoder(wanted)
    columns: list[tuple[object, ...]] = []
    for i, column in enumerate(wanted):
        made = native._column(encoder, i, column.cell_type)
        if made is None:
            continue
        columns.append((*made, column.table))
    if columns and draw(st.booleans()):
        j = draw(st.integers(0, len(columns) - 1))
        field = draw(st.integers(0, 12))
        value = draw(
            _OP if field == 0 else _TEXTS if field < 6 else _PARAM if field < 12 else st.text()
        )
        columns[j] = (*columns[j][:field], value, *columns[j][field + 1 :])
    return columns


@fuzz(200)
@given(
    columns=plans(),
    data=st.binary(max_size=64),
    cell_values=st.lists(st.tuples(_PARAM, st.integers(-3, 80)), max_size=40),
    rows=st.integers(0, 3) | st.integers(-1, 10),
    first=st.integers(1, 10**6) | st.integers(-2, 2**63 - 1),
    room=st.integers(-1, 10**6),
)
def test_a_plan_of_any_columns_and_cells_of_any_values(
    columns: list[tuple[object, ...]],
    data: bytes,
    cell_values: list[tuple[int, int]],
    rows: int,
    first: int,
    room: int,
) -> None:
    try:
        plan = _module("xlsx._rowxml").plan(columns)
    except _REFUSED as exc:
        event(f"plan refused: {str(exc).split(':')[-1].strip()[:30]}")
        return
    cells = b"".join(_CELL.pack(min(max(v, -(2**63)), 2**63 - 1), n, 0) for v, n in cell_values)
    try:
        xml, done, stop = _module("xlsx._rowxml").encode(plan, data, cells, rows, first, room)
    except _REFUSED as exc:
        event(f"encode refused: {str(exc).split(':')[0][:30]}")
        return
    event(f"encoded, stop {stop}")
    assert 0 <= done <= rows
    assert stop in (
        primitive_cells.STOP_DONE,
        primitive_cells.STOP_ROOM,
        primitive_cells.STOP_DECLINED,
    )
    assert stop != primitive_cells.STOP_DONE or done == rows
    assert len(xml) <= max(room, 0)
    assert xml.count(b"<row ") == done
