"""Streaming properties: early first chunk, bounded chunks, errors propagate, flat memory."""

import datetime as dt
import gc
import io
import random
import tracemalloc
import zipfile
from collections.abc import Iterator

import pytest

import xlsx
from tests.test_xlsx.support import FIXED_TIME, read_calamine

HEADER = ["id", "code", "amount", "day"]


def noisy_rows(n: int, pulled: list[int]) -> Iterator[tuple[object, ...]]:
    """Rows that compress poorly (random hex), counting how many were pulled."""
    rnd = random.Random(n)
    for i in range(n):
        pulled[0] = i + 1
        yield (i, rnd.randbytes(12).hex(), rnd.random() * 1000, dt.date(2024, 1, 1))


def test_first_chunk_comes_long_before_the_rows_end() -> None:
    pulled = [0]
    total = 40_000
    chunks = xlsx.stream_xlsx(HEADER, noisy_rows(total, pulled), modified_at=FIXED_TIME)
    first = next(chunks)
    assert first.startswith(b"PK\x03\x04")
    assert 0 < pulled[0] < total / 4
    rest = b"".join(chunks)
    assert pulled[0] == total
    assert len(read_calamine(first + rest)["Report"]) == total + 1


def test_chunks_are_bounded_and_never_empty() -> None:
    pulled = [0]
    sizes = [
        len(c) for c in xlsx.stream_xlsx(HEADER, noisy_rows(30_000, pulled), modified_at=FIXED_TIME)
    ]
    assert len(sizes) > 5
    assert all(size == xlsx.OUTPUT_CHUNK for size in sizes[:-1])
    assert 0 < sizes[-1] <= xlsx.OUTPUT_CHUNK


def test_stats_are_updated_while_streaming() -> None:
    stats = xlsx.WriteStats()
    pulled = [0]
    chunks = xlsx.stream_xlsx(
        HEADER, noisy_rows(30_000, pulled), modified_at=FIXED_TIME, stats=stats
    )
    next(chunks)
    assert 0 < stats.rows <= pulled[0] < 30_000
    assert stats.bytes_out == xlsx.OUTPUT_CHUNK
    assert stats.sheets == 1
    total = xlsx.OUTPUT_CHUNK + sum(len(c) for c in chunks)
    assert (stats.rows, stats.bytes_out) == (30_000, total)


def test_an_error_in_the_row_iterator_propagates() -> None:
    class Boom(Exception):
        pass

    def rows() -> Iterator[tuple[int]]:
        for i in range(20_000):
            yield (i,)
        raise Boom("database went away")

    chunks = xlsx.stream_xlsx(["n"], rows(), modified_at=FIXED_TIME)
    received: list[bytes] = []
    with pytest.raises(Boom, match="database went away"):
        received.extend(chunks)  # keeps what arrived before the error
    assert received


def test_arguments_are_checked_before_any_row_is_pulled() -> None:
    pulled = [0]
    with pytest.raises(xlsx.XlsxValueError):
        xlsx.stream_xlsx(HEADER, noisy_rows(10, pulled), sheet_name="bad/name")
    chunks = xlsx.stream_xlsx(HEADER, noisy_rows(10, pulled))
    assert pulled[0] == 0  # nothing is pulled until the output is iterated
    next(chunks)
    assert pulled[0] == 10


def _peak_bytes(n: int) -> int:
    pulled = [0]
    gc.collect()
    tracemalloc.start()
    try:
        for _ in xlsx.stream_xlsx(HEADER, noisy_rows(n, pulled), modified_at=FIXED_TIME):
            pass
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_stays_flat() -> None:
    small = _peak_bytes(20_000)
    large = _peak_bytes(200_000)
    # A batch of XML, its encoded copy, the compressor's window and one output chunk: a few MB,
    # whatever the number of rows.
    assert large < 4 * 2**20
    assert large < small + 256 * 2**10


def test_closing_early_stops_pulling_rows() -> None:
    pulled = [0]
    chunks = xlsx.stream_xlsx(HEADER, noisy_rows(100_000, pulled), modified_at=FIXED_TIME)
    next(chunks)
    seen = pulled[0]
    chunks.close()  # type: ignore[attr-defined]  # a generator, typed as an Iterator
    assert seen < 100_000
    assert pulled[0] == seen


def test_closing_early_finalizes_an_inline_row_generator_at_once() -> None:
    # The export server passes its row generator inline and relies on closing the output to
    # finalize it (its `finally` releases the database cursor): nothing inside the writer may
    # keep a reference, not even in a cycle that only the garbage collector would break.
    events: list[str] = []

    def rows() -> Iterator[tuple[object, ...]]:
        try:
            yield from noisy_rows(100_000, [0])
        finally:
            events.append("row source finalized")

    chunks = xlsx.stream_xlsx(HEADER, rows(), modified_at=FIXED_TIME)
    next(chunks)
    gc.disable()
    try:
        chunks.close()  # type: ignore[attr-defined]
        assert events == ["row source finalized"]
    finally:
        gc.enable()
    with pytest.raises(StopIteration):
        next(chunks)


@pytest.mark.parametrize("fail_after", [0, 1, 30_000])
def test_nothing_is_yielded_after_an_error_in_the_rows(fail_after: int) -> None:
    class Boom(Exception):
        pass

    def rows() -> Iterator[tuple[object, ...]]:
        yield from noisy_rows(fail_after, [0])
        raise Boom

    chunks = xlsx.stream_xlsx(HEADER, rows(), modified_at=FIXED_TIME)
    received: list[bytes] = []
    with pytest.raises(Boom):
        received.extend(chunks)
    if fail_after < 1000:
        # Less than one output chunk was ready: a caller that has sent nothing yet can still
        # answer with an error instead of a broken download.
        assert received == []
    else:
        assert received
    # Never a complete zip (no central directory), so never mistaken for a whole workbook.
    assert not zipfile.is_zipfile(io.BytesIO(b"".join(received)))
    with pytest.raises(StopIteration):
        next(chunks)
