"""The fault wrapper around a row source, without a socket: what the streaming loop is told."""

from __future__ import annotations

from dataclasses import dataclass

from sql.devserver.faults import Chunk, Drop, Fail, Faults, Pause, steps


@dataclass
class Numbers:
    """A row source of ``count`` one-byte rows (byte = row number % 256), at most 7 per chunk."""

    count: int

    def encode(self, first: int, limit: int) -> tuple[int, bytes]:
        n = min(limit, 7)
        return n, bytes(i % 256 for i in range(first, first + n))


def rows_of(found: list[object]) -> bytes:
    return b"".join(s.payload for s in found if isinstance(s, Chunk))


def test_without_faults_the_rows_come_in_chunks_only() -> None:
    found = list(steps(Numbers(30), Faults(), rows_per_chunk=10))
    assert all(isinstance(s, Chunk) for s in found)
    assert rows_of(found) == bytes(range(30))


def test_chunks_end_exactly_where_an_error_is_due() -> None:
    found = list(steps(Numbers(100), Faults(error_after_rows=23), rows_per_chunk=10))
    assert found[-1] == Fail(23, 8134, "Divide by zero error encountered.")
    assert rows_of(found) == bytes(range(23))


def test_a_drop_comes_before_an_error_due_at_the_same_row() -> None:
    found = list(steps(Numbers(100), Faults(error_after_rows=5, drop_after_rows=5), 10))
    assert found[-1] == Drop(5)
    assert rows_of(found) == bytes(range(5))


def test_faults_at_row_zero_come_before_any_row() -> None:
    found = list(steps(Numbers(100), Faults(first_row_delay=0.5, error_after_rows=0), 10))
    assert found == [Pause(0.5), Fail(0, 8134, "Divide by zero error encountered.")]


def test_row_delays_fall_between_every_n_rows_but_not_after_the_last() -> None:
    found = list(steps(Numbers(30), Faults(row_delay=0.1, row_delay_every=10), 100))
    kinds = [type(s).__name__ if not isinstance(s, Chunk) else s.rows for s in found]
    assert kinds == [7, 3, "Pause", 7, 3, "Pause", 7, 3]
    assert rows_of(found) == bytes(range(30))


def test_faults_are_read_live_while_rows_stream() -> None:
    faults = Faults()
    stream = steps(Numbers(1000), faults, 10)
    first = next(stream)
    assert isinstance(first, Chunk)
    faults.error_after_rows = 12
    rest = list(stream)
    assert isinstance(rest[-1], Fail)
    assert rest[-1].rows_sent == 12


def test_row_bytes_are_sent_once_after_their_row_and_the_rows_go_on() -> None:
    faults = Faults(row_bytes_after_rows=12, row_bytes=b"\xd1bad")
    found = list(steps(Numbers(30), faults, 10))
    assert rows_of(found) == bytes(range(12)) + b"\xd1bad" + bytes(range(12, 30))
    assert Chunk(1, b"\xd1bad") in found
    before_any = list(steps(Numbers(3), Faults(row_bytes_after_rows=0, row_bytes=b"x"), 10))
    assert rows_of(before_any) == b"x" + bytes(range(3))
    after_all = list(steps(Numbers(3), Faults(row_bytes_after_rows=3, row_bytes=b"x"), 10))
    assert rows_of(after_all) == bytes(range(3)) + b"x"
