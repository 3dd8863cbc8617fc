"""Where an export's rows come from: the fast row path, or pytds' own decoding.

The fast path (:mod:`tdsrows`) decodes the rows of the result set with code generated for its
columns, a packet at a time; pytds keeps everything else (the procedure call, errors, the
attention handshake). A result set it cannot decode (a MAX type, sql_variant, ...) or a
configuration that turns it off falls back to ``cursor.fetchmany``, decided per result set and
logged once per export at DEBUG.

Dates and datetime2 values arrive from the fast path as ints (days and ticks since
0001-01-01), which the writer turns into serials without building ``date``/``datetime`` objects
(``xlsx.Column.ints``); :meth:`RowSource.int_meanings` tells the writer what they stand for.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from typing import Any, Final

import xlsx
from tdsrows import FastRows, Kind, UnsupportedLayout

logger = logging.getLogger("server.export")

# What the fast path hands over as ints: the kinds whose objects cost the most to build and
# whose serials are a little integer arithmetic (DECIMAL stays a Decimal: its str() is C code,
# quicker than any text made from the scaled int in Python).
RAW_KINDS: Final = frozenset({Kind.DATE, Kind.DATETIME2})
# Day 0 of TDS DATE and DATETIME2 values (MS-TDS 2.2.5.5.1.8).
_TDS_DAY_ZERO: Final = dt.date(1, 1, 1)


class RowSource:
    """The rows of one cursor's current result set, in batches, for one export's thread."""

    def __init__(self, cursor: Any, *, fast: bool, batch_rows: int, label: str) -> None:
        self._cursor = cursor
        self._batch_rows = batch_rows
        self._fast: FastRows | None = None
        if not fast:
            return
        try:
            self._fast = FastRows.open(cursor, raw_kinds=RAW_KINDS)
        except UnsupportedLayout as exc:
            logger.debug("%s: rows decoded by pytds (%s)", label, exc)

    @property
    def fast(self) -> bool:
        return self._fast is not None

    def fetch(self, limit: int | None = None) -> list[Any]:
        """The next rows ([] at the end of the result set); ``limit`` caps a pytds batch."""
        if self._fast is not None:
            return self._fast.fetch()
        return list(self._cursor.fetchmany(limit or self._batch_rows))

    def settle(self) -> None:
        """Bring the connection back to idle after the export stopped reading (attention sent
        now if none is on its way; the rows still in flight skipped, not decoded)."""
        if self._fast is not None and not self._fast.finished:
            self._fast.drain_cancelled()
        else:
            self._cursor.cancel()

    def int_meanings(self) -> Sequence[xlsx.IntMeaning | None] | None:
        """Per column, what an int from :meth:`fetch` stands for (None: the fast path is off)."""
        if self._fast is None:
            return None
        meanings: list[xlsx.IntMeaning | None] = []
        for column in self._fast.layout.columns:
            if column.kind is Kind.DATE and Kind.DATE in RAW_KINDS:
                meanings.append(xlsx.DayCount(_TDS_DAY_ZERO))
            elif column.kind is Kind.DATETIME2 and Kind.DATETIME2 in RAW_KINDS:
                meanings.append(xlsx.TickCount(10**column.scale, _TDS_DAY_ZERO))
            else:
                meanings.append(None)
        return meanings
