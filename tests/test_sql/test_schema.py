"""sql/schema.sql parses as T-SQL and returns what the dev server sends (sqlglot, tsql dialect)."""

from __future__ import annotations

import re
from pathlib import Path

import sqlglot
from sqlglot import exp

from sql import report_data as rd
from sql.devserver.engine import ROW_COUNT_MESSAGE

SCHEMA = Path(rd.__file__).with_name("schema.sql")


def parse_batches() -> list[exp.Expression]:
    text = SCHEMA.read_text(encoding="utf-8")
    batches = [b for b in re.split(r"(?im)^\s*GO\s*$", text) if b.strip()]
    out: list[exp.Expression] = []
    for batch in batches:
        out.extend(e for e in sqlglot.parse(batch, read="tsql") if isinstance(e, exp.Expression))
    return out


def result_select() -> exp.Select:
    for statement in parse_batches():
        for select in statement.find_all(exp.Select):
            if any(isinstance(e, exp.Alias) and e.alias == "ColInt" for e in select.expressions):
                return select
    raise AssertionError("no SELECT with the report's columns in schema.sql")


def normalized(type_text: str) -> str:
    return exp.DataType.build(type_text, dialect="tsql").sql("tsql")


def test_the_script_creates_database_and_procedure() -> None:
    statements = parse_batches()
    creates = [s for s in statements if isinstance(s, exp.Create)]
    assert any(s.args.get("kind") == "PROCEDURE" for s in creates)
    text = SCHEMA.read_text(encoding="utf-8")
    assert "CREATE DATABASE ExportDemo" in text
    assert "SET NOCOUNT ON" in text
    assert re.search(r"\bTHROW\s+50000\b", text)
    assert f"N'{ROW_COUNT_MESSAGE}'" in text
    assert f"@RowCount > {rd.MAX_ROW_COUNT}" in text
    assert not re.search(r"\bWHILE\b|\bCURSOR\b", text, re.IGNORECASE)  # set-based


def test_columns_and_types_match_report_data() -> None:
    select = result_select()
    got = []
    for projection in select.expressions:
        assert isinstance(projection, exp.Alias)
        cast = projection.this
        assert isinstance(cast, exp.Cast), projection.alias
        got.append((projection.alias, cast.to.sql("tsql")))
    assert got == [(c.name, normalized(c.sql_type)) for c in rd.COLUMNS]


def test_null_slots_match_report_data() -> None:
    select = result_select()
    for projection, column in zip(select.expressions, rd.COLUMNS, strict=True):
        slots: set[int] = set()
        for in_ in projection.find_all(exp.In):
            slots.update(int(v.name) for v in in_.expressions)
        assert slots == set(column.null_slots), column.name


def test_text_values_match_report_data() -> None:
    select = result_select()
    nvarchar = select.expressions[5]
    choose = [s.this for s in nvarchar.find_all(exp.Literal) if s.is_string] or [
        s.name for s in nvarchar.find_all(exp.National)
    ]
    assert tuple(choose) == rd.NVARCHAR_VALUES
