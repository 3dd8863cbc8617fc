"""One spec, decoded over TCP by pytds' own code and by the fast row path, both ways.

The fast path's fetch() decodes through the compiled scanner and tuple builder where they
read every column, else through the generated Python decoder; ``FETCH_WAYS`` names the two
(``compiled=True``/``False`` of FastRows.open), and :func:`assert_same` checks both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pytest

from sql.devserver.columns import Column, spec_json
from tdsrows import FastRows, Kind
from tdsrows.results import scanned_decode_available

PROC = "dbo.spColumns"
# FastRows.open(compiled=...): the compiled fetch where the layout allows it, and the
# generated decoder always.
FETCH_WAYS = (True, False)
FETCH_IDS = ("compiled", "generated")
# The same as parameters of a test: the compiled one needs the extensions (marker "compiled").
FETCH_PARAMS = [
    pytest.param(True, id="compiled", marks=pytest.mark.compiled),
    pytest.param(False, id="generated"),
]


def pytds_rows(conn: Any, spec: str) -> list[tuple[Any, ...]]:
    """The rows as pytds decodes them (its fetchmany, the API's fallback path)."""
    with conn.cursor() as cursor:
        cursor.callproc(PROC, (spec,))
        rows: list[tuple[Any, ...]] = []
        while batch := cursor.fetchmany(1000):
            rows.extend(tuple(r) for r in batch)
        while cursor.nextset():
            pass
    return rows


def fast_rows(
    conn: Any, spec: str, *, raw_kinds: frozenset[Kind] = frozenset(), compiled: bool = True
) -> tuple[list[tuple[Any, ...]], FastRows]:
    """The rows as the fast path decodes them, and the FastRows that did it (``compiled``:
    through the compiled scanner wherever it reads the layout, checked)."""
    with conn.cursor() as cursor:
        cursor.callproc(PROC, (spec,))
        fast = FastRows.open(cursor, raw_kinds=raw_kinds, compiled=compiled)
        assert fast.compiled_fetch == (compiled and scanned_decode_available(fast.layout))
        rows: list[tuple[Any, ...]] = []
        while batch := fast.fetch():
            rows.extend(batch)
        while cursor.nextset():
            pass
        assert cursor.return_value == 0
    return rows, fast


def comparable(rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
    """Rows with NaN made equal to NaN (and -0.0 told from 0.0), types kept apart."""

    def key(value: Any) -> Any:
        if isinstance(value, float):
            return ("float", "nan" if math.isnan(value) else value.hex())
        return (type(value).__name__, value if not hasattr(value, "as_tuple") else str(value))

    return [tuple(key(v) for v in row) for row in rows]


def assert_same(
    conn: Any, columns: Sequence[Column], rows: Sequence[Sequence[object]], **options: Any
) -> list[tuple[Any, ...]]:
    """pytds and the fast path, fetching both ways, give identical rows (values, types,
    Decimal exponents); the rows of the compiled way."""
    spec = spec_json(columns, rows, **options)
    expected = pytds_rows(conn, spec)
    results = [fast_rows(conn, spec, compiled=compiled)[0] for compiled in FETCH_WAYS]
    for got in results:
        assert len(got) == len(expected)
        assert comparable(got) == comparable(expected)
    return results[0]
