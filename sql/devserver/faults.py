"""Fault injection: a wrapper around a row source that adds delays, a mid-stream error, a
dropped connection or a row of the test's own bytes (a malformed one, as a broken or hostile
server sends), for tests of what clients do when the database misbehaves.

:func:`steps` turns a :class:`~sql.devserver.rowsource.RowSource` into what the streaming loop
executes: :class:`Chunk` (rows to write), :class:`Pause` (deliver what is written, then wait),
:class:`Fail` (a statement error ends the rows) and :class:`Drop` (deliver what is written,
then close the socket).  With no faults set it yields chunks only.  ``Faults`` is read live at
every step, so a test can change it while rows stream.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass

from sql.devserver.rowsource import RowSource

DIVIDE_BY_ZERO = (8134, "Divide by zero error encountered.")


@dataclass
class Faults:
    """Fault injection, read live by the server (tests change fields at runtime)."""

    first_row_delay: float = 0.0  # seconds before the first row (after COLMETADATA)
    row_delay: float = 0.0  # sleep this long ...
    row_delay_every: int = 0  # ... after every N rows (0: never)
    error_after_rows: int | None = None  # ERROR 8134 after row N
    drop_after_rows: int | None = None  # close the socket abruptly after row N
    refuse_logins: bool = False  # answer every login with error 18456
    login_delay: float = 0.0  # seconds before answering a login
    # A result set whose rows never end: rows past its count keep coming (until an attention).
    endless_rows: bool = False
    # The rows of a result set stop after row N and its end follows as usual: its DONE still
    # counts every row it has, so the count disagrees with the rows sent.
    end_after_rows: int | None = None
    # A ROW or NBCROW token of the test's own making, sent as is after row N of a result (0:
    # before the first), once; the rows go on after it. Nothing checks it: a value of a length
    # its column cannot have, text longer than declared ... is what a client must refuse.
    row_bytes_after_rows: int | None = None
    row_bytes: bytes = b""


@dataclass(frozen=True, slots=True)
class Chunk:
    """ROW/NBCROW tokens of ``rows`` rows."""

    rows: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Pause:
    """Deliver what is written so far, then wait ``seconds`` (an ATTENTION ends the wait)."""

    seconds: float


@dataclass(frozen=True, slots=True)
class Fail:
    """A statement error after ``rows_sent`` rows ends the result."""

    rows_sent: int
    number: int
    text: str


@dataclass(frozen=True, slots=True)
class Drop:
    """Deliver what is written, then close the connection without ending the reply."""

    rows_sent: int


Step = Chunk | Pause | Fail | Drop


def steps(source: RowSource, faults: Faults, rows_per_chunk: int) -> Iterator[Step]:
    """The rows of ``source`` in chunks of at most ``rows_per_chunk``, with the faults
    ``faults`` asks for: chunks end exactly where a fault is due."""
    if faults.first_row_delay > 0:
        yield Pause(faults.first_row_delay)
    sent = 0
    count = source.count
    if faults.end_after_rows is not None:
        count = min(count, faults.end_after_rows)
    if faults.endless_rows:
        count = sys.maxsize  # the demo report makes a row from its number, for any number
    injected = False
    while True:
        if not injected and faults.row_bytes_after_rows == sent:
            injected = True
            yield Chunk(1, faults.row_bytes)
        if (fault := _due(faults, sent)) is not None:
            yield fault
            return
        if sent >= count:
            return
        every = faults.row_delay_every if faults.row_delay > 0 else 0
        if sent and every and sent % every == 0:
            yield Pause(faults.row_delay)
        stop = min(count, sent + rows_per_chunk)
        inject = None if injected else faults.row_bytes_after_rows
        for limit in (faults.error_after_rows, faults.drop_after_rows, inject):
            if limit is not None and sent < limit:
                stop = min(stop, limit)
        if every:
            stop = min(stop, (sent // every + 1) * every)
        rows, payload = source.encode(sent, stop - sent)
        sent += rows
        yield Chunk(rows, payload)


def _due(faults: Faults, sent: int) -> Fail | Drop | None:
    """The drop or error due after ``sent`` rows (a drop first: it ends everything)."""
    if faults.drop_after_rows is not None and sent == faults.drop_after_rows:
        return Drop(sent)
    if faults.error_after_rows is not None and sent == faults.error_after_rows:
        number, text = DIVIDE_BY_ZERO
        return Fail(sent, number, text)
    return None
