"""The compiled row writer (``_rowxml.encode``) and its float formatter (``fast_repr``), fuzzed
against the Python encoders.

Plans are the ones ``xlsx.native.plan_rows`` builds from a workbook's row encoder (random
column meanings and number formats, byte tables of any characters beyond ASCII); cells hold any
int64, any double's bits, any text bytes. Invariants: every row the compiled code writes is the
Python encoder's XML for the same values; a declined row is left whole (the Python encoder
writes it and the compiled code resumes after it); a row beyond the room is never written; the
formatter gives ``repr``'s digits or leaves the double to CPython.
"""

from __future__ import annotations

import datetime as dt
import struct
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

import primitive_cells
import xlsx
from primitive_cells import CellType
from tdsrows.values import ntext_value
from tests.test_fuzz.budget import fuzz
from xlsx import native
from xlsx.cells import CellEncoder
from xlsx.dates import second_decimals
from xlsx.rows import RowEncoder
from xlsx.spec import WriteStats

pytestmark = pytest.mark.compiled

_INT64 = (-(2**63), 2**63 - 1)
_FORMATS = [None, "0.00", "yyyy-mm-dd hh:mm:ss", "hh:mm:ss.000", "ss.0"]
_ORIGINS = [dt.date(1, 1, 1), dt.date(1900, 1, 1)]
_ASCII = "".join(map(chr, range(128)))


@dataclass(frozen=True)
class WriterColumn:
    cell_type: CellType
    meaning: xlsx.IntMeaning | None
    number_format: str | None
    table: str | None  # BYTE_TEXT: the characters of the bytes beyond ASCII


@st.composite
def writer_columns(draw: st.DrawFn) -> WriterColumn:
    cell_type = draw(st.sampled_from(list(CellType)))
    meaning: xlsx.IntMeaning | None = None
    if cell_type is CellType.INT64:
        meaning = draw(
            st.none()
            | st.integers(0, 12).map(xlsx.ScaledDecimal)
            | st.sampled_from(_ORIGINS).map(xlsx.DayCount)
            | st.builds(
                xlsx.TickCount,
                st.sampled_from([1, 1000, 10**3, 10**5, 10**7]),
                st.sampled_from(_ORIGINS),
            )
        )
    table = None
    if cell_type is CellType.BYTE_TEXT and draw(st.booleans()):
        high = draw(st.text(min_size=128, max_size=128) | st.just("é" * 127 + "\ud800"))
        table = _ASCII + high
    return WriterColumn(cell_type, meaning, draw(st.sampled_from(_FORMATS)), table)


def _encoder(columns: list[WriterColumn]) -> RowEncoder:
    width = len(columns)
    letters = [chr(ord("A") + i) for i in range(width)]
    styles = [7 if c.number_format else 0 for c in columns]
    decimals = [second_decimals(c.number_format) if c.number_format else 0 for c in columns]
    meanings = [c.meaning for c in columns]
    return RowEncoder(CellEncoder(letters, styles, WriteStats(), decimals, meanings))


def _int_cells(meaning: xlsx.IntMeaning | None) -> st.SearchStrategy[int]:
    edges = st.sampled_from([0, 1, -1, 2**53 - 1, 2**53, -(2**53), *_INT64])
    near = st.integers(-(10**16), 10**16)
    if isinstance(meaning, xlsx.DayCount):
        near = st.integers(690_000, 700_000) | st.integers(0, 3_652_060)
    elif isinstance(meaning, xlsx.TickCount):
        per_day = 86_400 * meaning.per_second
        near = st.integers(690_000 * per_day, 3_652_060 * per_day) | st.integers(0, 10**12)
    return st.integers(*_INT64) | edges | near


@st.composite
def cell_rows(draw: st.DrawFn, columns: list[WriterColumn]) -> tuple[bytes, bytes, list[tuple]]:
    """(data, cells, the rows as Python values) for 1 to 12 rows of ``columns``."""
    data = bytearray(b"\xd1\xd1\xd1")  # text never starts at 0
    cells = bytearray()
    rows: list[tuple[Any, ...]] = []
    for _ in range(draw(st.integers(1, 12))):
        row: list[Any] = []
        for column in columns:
            kind = column.cell_type
            if draw(st.integers(0, 7)) == 0:
                cells += struct.pack("<qii", 0, -1, 0)
                row.append(None)
            elif kind is CellType.INT64:
                v = draw(_int_cells(column.meaning))
                cells += struct.pack("<qii", v, 0, 0)
                row.append(v)
            elif kind is CellType.DOUBLE:
                bits = draw(st.integers(*_INT64))
                cells += struct.pack("<qii", bits, 0, 0)
                row.append(struct.unpack("<d", struct.pack("<q", bits))[0])
            elif kind is CellType.BOOL:
                v = draw(st.sampled_from([0, 1]))
                cells += struct.pack("<qii", v, 0, 0)
                row.append(bool(v))
            else:
                if kind is CellType.UTF16_TEXT:
                    raw = draw(
                        st.binary(max_size=40).map(lambda b: b[: len(b) & ~1])
                        | st.text(max_size=20).map(lambda t: t.encode("utf-16-le", "surrogatepass"))
                    )
                    value = ntext_value(raw)
                else:
                    words = st.text("ab _x<&Z09 ", max_size=20).map(str.encode)
                    raw = draw(st.binary(max_size=30) | words)
                    table = column.table or raw.decode("latin-1")  # without one: any text
                    value = "".join(table[b] for b in raw) if column.table else table
                cells += struct.pack("<qii", len(data), len(raw), 0)
                data += raw
                row.append(value)
        rows.append(tuple(row))
    return bytes(data), bytes(cells), rows


def _python_rows(encoder: RowEncoder, rows: list[tuple[Any, ...]], first: int) -> list[bytes]:
    """Each row's XML by the Python encoder, up to the first it raises on (an int that stands
    for no date, say), and that error as the last item."""
    out: list[Any] = []
    for n, row in enumerate(rows):
        try:
            out.append(encoder.encode(row, str(first + n)).encode())
        except (ValueError, OverflowError) as exc:
            out.append((type(exc), str(exc)))
            break
    return out


@fuzz(200)
@given(
    columns=st.lists(writer_columns(), min_size=1, max_size=6),
    data=st.data(),
    first=st.integers(1, 2**40) | st.just(1),
)
def test_compiled_rows_are_the_python_encoder_s(
    columns: list[WriterColumn], data: Any, first: int
) -> None:
    encoder = _encoder(columns)
    plan = native.plan_rows(encoder, [c.cell_type for c in columns], [c.table for c in columns])
    if plan is None:  # a column only the Python encoders write
        event("no plan")
        return
    text, cells, rows = data.draw(cell_rows(columns))
    expected = _python_rows(encoder, rows, first)
    row_bytes = len(columns) * primitive_cells.CELL_BYTES
    got: list[Any] = []
    k = written = 0
    while k < len(rows):
        xml, done, stop = plan.encode(text, cells[k * row_bytes :], len(rows) - k, first + k, 10**9)
        assert 0 <= done <= len(rows) - k
        got.append(xml)
        written += done
        k += done
        if stop == primitive_cells.STOP_DECLINED:
            python = _python_rows(encoder, [rows[k]], first + k)
            got += python
            if not isinstance(python[0], bytes):
                break  # the Python encoder raised on the row the compiled code declined
            k += 1
        else:
            assert (stop, k) == (primitive_cells.STOP_DONE, len(rows))
    texts = [x for x in expected if isinstance(x, bytes)]
    errors = [x for x in expected if not isinstance(x, bytes)]
    assert b"".join(x for x in got if isinstance(x, bytes)) == b"".join(texts)
    assert [x for x in got if not isinstance(x, bytes)] == errors
    event(f"compiled rows: {'all' if written == len(rows) else 'some' if written else 'none'}")
    if errors:
        event("the Python encoder raised")
        return
    # With less room the same rows stop before the first that does not fit, whole.
    room = data.draw(st.integers(0, len(b"".join(texts))))
    xml, done, stop = plan.encode(text, cells, len(rows), first, room)
    assert len(xml) <= room
    assert xml == b"".join(texts[:done])
    if stop == primitive_cells.STOP_ROOM:
        assert len(xml) + len(texts[done]) > room


_DOUBLES = (
    st.floats(allow_nan=False, allow_infinity=False)
    | st.integers(0, 2**64 - 1).map(lambda b: struct.unpack("<d", b.to_bytes(8, "little"))[0])
    | st.integers(-(10**15), 10**15).flatmap(
        lambda n: st.integers(0, 17).map(lambda k: n / 10**k)  # scaled decimals
    )
    | st.integers(61 * 86_400_000, 2_958_466 * 86_400_000).map(lambda ms: ms / 86_400_000)
    | st.integers(-14, 52).map(lambda e: 2.0**e)
)


@fuzz(1000)
@given(x=_DOUBLES, step=st.integers(-2, 2))
def test_the_float_formatter_gives_repr_s_digits_or_leaves_the_double_to_cpython(
    x: float, step: int
) -> None:
    fast_repr = native.fast_float_text
    assert fast_repr is not None
    bits = struct.unpack("<q", struct.pack("<d", x))[0] + step  # and its neighbours
    y = struct.unpack("<d", struct.pack("<q", max(min(bits, 2**63 - 1), -(2**63))))[0]
    for value in (x, -x, y):
        text = fast_repr(value)
        assert text is None or text == repr(value), value.hex()
        event("fast" if text is not None else "dtoa")
