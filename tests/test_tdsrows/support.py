"""One spec, decoded twice over TCP: by pytds' own code and by the fast row path."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from sql.devserver.columns import Column, spec_json
from tdsrows import FastRows, Kind

PROC = "dbo.spColumns"


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
    conn: Any, spec: str, *, raw_kinds: frozenset[Kind] = frozenset()
) -> tuple[list[tuple[Any, ...]], FastRows]:
    """The rows as the fast path decodes them, and the FastRows that did it."""
    with conn.cursor() as cursor:
        cursor.callproc(PROC, (spec,))
        fast = FastRows.open(cursor, raw_kinds=raw_kinds)
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
    """pytds and the fast path give identical rows (values, types, Decimal exponents)."""
    spec = spec_json(columns, rows, **options)
    expected = pytds_rows(conn, spec)
    got, _ = fast_rows(conn, spec)
    assert len(got) == len(expected)
    assert comparable(got) == comparable(expected)
    return got
