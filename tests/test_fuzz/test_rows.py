"""The compiled scanner (``_rowscan.scan``), the tuple builder (``_rowscan.tuples``) and the
compiled row writer on real streams (``_rowxml.encode`` through ScannedFill), fuzzed against the
generated Python decoder and the per-value reference decoder.

Invariants, on every stream and mutation of it (wire.py):

- cells: a NULL is length -1 and value 0, a number length 0, a bool 0 or 1, the reserved word 0;
  a text cell's offset and length lie inside the data; rows start where the Python decoder says;
- the scanner and the Python decoder agree on every row the scanner writes, on where and why
  both stop (a token that is not a row, INCOMPLETE, FULL), on every SLOW row (whole: the
  reference decoder reads exactly its bytes) and on every MALFORMED one (the Python decoder
  raises the StreamError that names it, after the same rows);
- scanned tuples are the generated decoder's tuples, or its error after the same rows;
- the XML the compiled fill writes is the generated fill's, or its error after the same text;
- every prefix of a stream (a packet can end anywhere) gives the rows that end inside it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

import xlsx
from server.rowsource import XlsxRowText
from tdsrows import scan, stops, values
from tdsrows.genfill import CompiledText
from tdsrows.layout import Kind, Layout
from tdsrows.scan import RowScanner
from tdsrows.scanfill import ScannedFill
from tdsrows.values import RAW_KINDS
from tests.test_fuzz.budget import fuzz
from tests.test_fuzz.wire import TUPLED, Stream, layouts, mutate, mutations, streams
from tests.test_tdsrows.support import comparable
from tests.test_tdsrows.test_rowscan import (
    RAW,
    assert_same,
    assert_same_tuples,
    python_decode,
    scanner_decode,
)
from xlsx.cells import CellEncoder
from xlsx.names import column_letter
from xlsx.rows import RowEncoder
from xlsx.spec import WriteStats

pytestmark = pytest.mark.compiled

_ORIGIN = dt.date(1, 1, 1)
_DATETIME_ORIGIN = dt.date(1900, 1, 1)
_BATCHES = st.sampled_from([1, 2, 3, scan.BATCH_ROWS])


@fuzz(150)
@given(stream=streams(), changes=mutations(), batch=_BATCHES)
def test_the_scanner_and_the_python_decoders_agree_on_mutated_streams(
    stream: Stream, changes: Any, batch: int
) -> None:
    data = mutate(stream, changes)
    got = assert_same(stream.layout, data, batch_rows=batch)  # the tuple builder too
    event(f"scan: {'rows, ' if got.rows else ''}{'SLOW, ' if got.slow else ''}{_STOPS[got.stop]}")


_STOPS: dict[int, str] = {
    stops.INCOMPLETE: "INCOMPLETE",
    stops.FULL: "FULL",
    stops.MALFORMED: "MALFORMED",
}
_STOPS.update((token, "a token") for token in range(256))


@fuzz(30)
@given(stream=streams(), changes=mutations(most=2))
def test_every_prefix_of_a_stream_gives_the_rows_that_end_inside_it(
    stream: Stream, changes: Any
) -> None:
    data = mutate(stream, changes)
    scanner = RowScanner(stream.layout, RAW, batch_rows=4)
    whole = python_decode(stream.layout, data)
    ends = [*whole.starts[1:], whole.pos]
    for cut in range(len(data) + 1):
        prefix = data[:cut]
        expected = python_decode(stream.layout, prefix)
        got = scanner_decode(scanner, stream.layout, prefix)
        assert comparable(got.rows) == comparable(expected.rows), cut
        assert (got.pos, got.stop, got.error) == (expected.pos, expected.stop, expected.error)
        # A prefix never has a row the whole bytes do not have.
        complete = sum(1 for end in ends if end <= cut) if whole.rows else 0
        assert comparable(got.rows) == comparable(whole.rows[: len(got.rows)]), cut
        assert len(got.rows) <= max(complete, len(whole.rows)), cut


@fuzz(100)
@given(
    stream=streams(layouts(kinds=TUPLED)),
    changes=mutations(),
    batch=_BATCHES,
    start=st.integers(0, 2**16),
    raw=st.sampled_from([frozenset(), RAW, frozenset({Kind.DATE, Kind.DECIMAL})]),
)
def test_scanned_tuples_are_the_generated_decoder_s_from_any_row(
    stream: Stream, changes: Any, batch: int, start: int, raw: frozenset[Kind]
) -> None:
    data = mutate(stream, changes)
    pos = stream.tokens[start % len(stream.tokens)] if start % 3 else 0
    rows, result = assert_same_tuples(
        stream.layout, data, min(pos, len(data)), batch_rows=batch, raw_kinds=raw
    )
    event(f"tuples: {'rows, ' if rows else ''}{_stop_name(result)}")


def _stop_name(result: tuple[object, ...]) -> str:
    """How a decode ended, for the run's statistics."""
    if isinstance(result[0], type):
        return result[0].__name__
    stop = result[1]
    return _STOPS.get(stop, "a token") if isinstance(stop, int) else "?"


def row_text(layout: Layout) -> XlsxRowText:
    """The workbook's row code for a layout decoded with the export's raw kinds (what each
    int stands for, as server.rowsource tells the writer)."""
    meanings: list[xlsx.IntMeaning | None] = []
    for column in layout.columns:
        if column.kind is Kind.DECIMAL:
            meanings.append(xlsx.ScaledDecimal(column.scale))
        elif column.kind is Kind.MONEY:
            meanings.append(xlsx.ScaledDecimal(4))
        elif column.kind is Kind.DATE:
            meanings.append(xlsx.DayCount(_ORIGIN))
        elif column.kind is Kind.DATETIME2:
            meanings.append(xlsx.TickCount(10**column.scale, _ORIGIN))
        elif column.kind in (Kind.DATETIME, Kind.SMALLDATETIME):
            meanings.append(xlsx.TickCount(1000, _DATETIME_ORIGIN))
        else:
            meanings.append(None)
    width = len(layout.columns)
    letters = [column_letter(i) for i in range(width)]
    cells = CellEncoder(letters, [0] * width, WriteStats(), [0] * width, meanings)
    return XlsxRowText(RowEncoder(cells))


def _fill_outcome(fill: Any, data: bytes, limit: int) -> tuple[bytes, object]:
    """The text a fill function appends (as UTF-8) and (pos, stop, last row) or its error."""
    out: list[str | bytes] = []
    try:
        pos, stop, r, _ = fill(data, 0, out, 0, limit, 10**9)
        result: object = (pos, stop, r)
    except Exception as exc:
        result = (type(exc), str(exc))
    text = b"".join(x.encode() if isinstance(x, str) else x for x in out)
    return text, result


@fuzz(80)
@given(stream=streams(), changes=mutations(), batch=_BATCHES, limit=st.integers(1, 10))
def test_compiled_rows_are_the_generated_code_s_xml(
    stream: Stream, changes: Any, batch: int, limit: int
) -> None:
    layout = stream.layout
    data = mutate(stream, changes)
    text = row_text(layout)
    python_fill = CompiledText(layout, text, raw_kinds=RAW_KINDS).fill
    scanner = RowScanner(layout, RAW_KINDS, batch_rows=batch)
    tables = [
        values.byte_table(c.codec) if c.kind is Kind.TEXT and c.codec else None
        for c in layout.columns
    ]
    writer = text.compiled(scanner.primitives, tables)
    if writer is None:  # a column only the Python encoders write (ticks finer than a double)
        return
    compiled_fill = ScannedFill(scanner, writer, python_fill).fill
    got = _fill_outcome(compiled_fill, data, limit)
    assert got == _fill_outcome(python_fill, data, limit)
    ended = got[1][0] if isinstance(got[1], tuple) else None
    event(f"fill: {'rows, ' if got[0] else ''}{getattr(ended, '__name__', 'ok')}")
