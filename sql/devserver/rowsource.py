"""A result set's rows as the streaming path asks for them: encoded a chunk at a time.

The server never holds a whole result: it asks its :class:`RowSource` for the next chunk of
ROW/NBCROW tokens, frames it into packets, writes it and waits for the socket to drain before
asking again.  Every procedure that returns rows (``spGenerateData``, ``spColumns``,
``spSalesOrders``, ``spScript``) is a source, so backpressure, attention and fault injection
behave the same for all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

# Bytes of tokens a source encodes per chunk (a row larger than this is a chunk of its own): a
# few packets, so a chunk is cheap to write yet an attention never waits behind a large one.
CHUNK_BYTES = 16 * 1024


class RowSource(Protocol):
    """The rows of one result set, 0-based."""

    @property
    def count(self) -> int:
        """How many rows the result set has."""
        ...

    def encode(self, first: int, limit: int) -> tuple[int, bytes]:
        """ROW/NBCROW tokens of rows ``first``, ``first + 1``, ...: at least one row and at most
        ``limit`` (> 0), about :data:`CHUNK_BYTES`.  Returns (rows encoded, bytes)."""
        ...


@dataclass(frozen=True, slots=True)
class FirstRows:
    """The first ``count`` rows of ``source``: a result set that an error ends early."""

    source: RowSource
    count: int

    def encode(self, first: int, limit: int) -> tuple[int, bytes]:
        return self.source.encode(first, min(limit, self.count - first))
