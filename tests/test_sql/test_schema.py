"""sql/schema.sql parses as T-SQL and returns what the dev server sends (sqlglot, tsql dialect)."""

from __future__ import annotations

import datetime
import decimal
import functools
import re
from pathlib import Path
from typing import Any

import pytest
import sqlglot
from sqlglot import exp

from sql import report_data as rd
from sql.devserver import DevServer
from sql.devserver.engine import ROW_COUNT_MESSAGE
from tests.devclient import dev_connect

SCHEMA = Path(rd.__file__).with_name("schema.sql")


def parse_batches() -> list[exp.Expression]:
    text = SCHEMA.read_text(encoding="utf-8")
    batches = [b for b in re.split(r"(?im)^\s*GO\s*$", text) if b.strip()]
    out: list[exp.Expression] = []
    for batch in batches:
        out.extend(e for e in sqlglot.parse(batch, read="tsql") if isinstance(e, exp.Expression))
    return out


@functools.cache  # parsed once; read, never changed
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


# pytds' cursor.description type codes (its tds_base constants) as SQL type names; the size,
# precision and scale come from the rest of the description.
_DESCRIPTION_TYPES = {
    56: "INT",
    127: "BIGINT",
    106: "DECIMAL",
    167: "VARCHAR",
    231: "NVARCHAR",
    40: "DATE",
    42: "DATETIME2",
    50: "BIT",
    62: "FLOAT",
}


def _wire_type(description: tuple[Any, ...]) -> str:
    """The SQL type a column has on the wire, from pytds' decoding of COLMETADATA."""
    _, code, _, size, precision, scale, _ = description
    name = _DESCRIPTION_TYPES[code]
    if name == "DECIMAL":
        return f"DECIMAL({precision},{scale})"
    if name in ("VARCHAR", "NVARCHAR"):
        return f"{name}({int(size)})"
    if name == "DATETIME2":
        return f"DATETIME2({precision})"  # pytds reports a DATETIME2's scale as its precision
    return name


def test_the_script_and_the_dev_server_agree_on_columns_types_and_nullability(
    devserver_thread: DevServer,
) -> None:
    """The schema as a real client sees it on the dev server's wire, against the T-SQL."""
    in_script = []
    for projection in result_select().expressions:
        nullable = projection.find(exp.Null) is not None  # a CASE ... THEN NULL branch
        in_script.append((projection.alias, projection.this.to.sql("tsql"), nullable))
    with (
        dev_connect(devserver_thread.port) as conn,
        conn.cursor() as cur,
    ):
        cur.callproc("dbo.spGenerateData", (1,))
        on_wire = [(d[0], normalized(_wire_type(d)), bool(d[6])) for d in cur.description]
        cur.fetchall()
    assert on_wire == in_script


# -- the T-SQL's values, evaluated ----------------------------------------------------------
# A small evaluator for exactly the T-SQL the SELECT uses (sqlglot's tree of it), with SQL
# Server's semantics where they differ from Python's: % and integer / truncate toward zero,
# CAST checks the target type's range and rounds DECIMAL to its scale, BIT is 0/1.

_INT_RANGES = {"INT": 2**31, "BIGINT": 2**63}


def _truncating(a: int, b: int, op: str) -> int:
    quotient = abs(a) // abs(b) * (1 if (a >= 0) == (b >= 0) else -1)
    return quotient if op == "/" else a - b * quotient


def _cast(value: object, to: exp.DataType) -> object:
    if value is None:
        return None
    kind = to.this.name
    params = [int(p.this.name) for p in to.expressions]
    if kind in _INT_RANGES:
        assert isinstance(value, int)
        assert -_INT_RANGES[kind] <= value < _INT_RANGES[kind], (value, kind)
        return value
    if kind == "DECIMAL":
        precision, scale = params
        assert isinstance(value, int | decimal.Decimal)
        result = decimal.Decimal(value).quantize(decimal.Decimal(1).scaleb(-scale))
        assert len(result.as_tuple().digits) <= precision, (value, to.sql("tsql"))
        return result
    if kind in ("VARCHAR", "NVARCHAR", "TEXT"):
        text = str(value)
        assert not params or len(text) <= params[0], (text, to.sql("tsql"))
        return text
    if kind == "DATE":
        assert isinstance(value, str | datetime.date)
        return datetime.date.fromisoformat(value) if isinstance(value, str) else value
    if kind == "DATETIME2":
        assert isinstance(value, str | datetime.datetime)
        moment = datetime.datetime.fromisoformat(value) if isinstance(value, str) else value
        assert moment.microsecond % 10 ** (6 - params[0]) == 0, "beyond the type's scale"
        return moment
    if kind == "BIT":
        return value != 0
    if kind == "FLOAT":
        assert isinstance(value, int | float)
        return float(value)
    raise AssertionError(f"no CAST to {kind} in the evaluator")


def _eval(node: exp.Expression, n: int) -> Any:
    if isinstance(node, exp.Column):
        assert node.name == "n"
        return n
    if isinstance(node, exp.Literal):
        return node.name if node.is_string else int(node.name)
    if isinstance(node, exp.National):
        return node.name
    if isinstance(node, exp.Null):
        return None
    if isinstance(node, exp.Paren):
        return _eval(node.this, n)
    if isinstance(node, exp.Cast):
        return _cast(_eval(node.this, n), node.to)
    if isinstance(node, exp.Case):
        for branch in node.args["ifs"]:
            if _eval(branch.this, n):
                return _eval(branch.args["true"], n)
        default = node.args.get("default")
        return None if default is None else _eval(default, n)
    if isinstance(node, exp.In):
        return _eval(node.this, n) in [_eval(e, n) for e in node.expressions]
    if isinstance(node, exp.Concat):
        return "".join("" if v is None else str(v) for v in (_eval(e, n) for e in node.expressions))
    if isinstance(node, exp.Right):
        return _eval(node.this, n)[-_eval(node.expression, n) :]
    if isinstance(node, exp.Anonymous) and node.name.upper() == "CHOOSE":
        index, *choices = node.expressions
        return _eval(choices[_eval(index, n) - 1], n)
    if isinstance(node, exp.DateAdd):
        unit = node.unit.name.upper() if node.unit else ""
        step = {
            "DAY": datetime.timedelta(days=1),
            "MILLISECOND": datetime.timedelta(milliseconds=1),
        }
        return _eval(node.this, n) + step[unit] * _eval(node.expression, n)
    if isinstance(node, exp.Add | exp.Sub | exp.Mul | exp.Mod | exp.Div):
        a, b = _eval(node.this, n), _eval(node.expression, n)
        if isinstance(node, exp.Add):
            return a + b
        if isinstance(node, exp.Sub):
            return a - b
        if isinstance(node, exp.Mul):
            return a * b
        if isinstance(a, int) and isinstance(b, int):
            return _truncating(a, b, "%" if isinstance(node, exp.Mod) else "/")
        assert isinstance(node, exp.Div)
        return a / (decimal.Decimal(b) if isinstance(a, decimal.Decimal) else b)
    raise AssertionError(f"the evaluator does not know {type(node).__name__}: {node.sql('tsql')}")


@pytest.mark.parametrize(
    "rows",
    # Past every period the formulas have (NULL slots, n % 8, dates), and the largest row.
    [range(1, 4001), range(rd.MAX_ROW_COUNT - 500, rd.MAX_ROW_COUNT + 1)],
    ids=["first-rows", "last-rows"],
)
def test_the_script_computes_the_values_the_dev_server_sends(rows: range) -> None:
    """Every formula of schema.sql, evaluated with SQL Server's rules, equals row_values(n)."""
    projections = [p.this for p in result_select().expressions]
    for n in rows:
        assert tuple(_eval(p, n) for p in projections) == rd.row_values(n), n
