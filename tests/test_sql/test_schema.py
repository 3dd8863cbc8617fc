"""sql/schema.sql parses as T-SQL and returns what the dev server sends (sqlglot, tsql dialect)."""

from __future__ import annotations

import datetime
import decimal
import functools
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import sqlglot
from sqlglot import exp

from sql import report_data as rd
from sql import sales_data as sd
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
def select_with(*aliases: str, computed: bool = False) -> exp.Select:
    """The first SELECT of schema.sql whose projections have all these names (``computed``:
    and every projection is an expression named with AS)."""
    for statement in parse_batches():
        for select in statement.find_all(exp.Select):
            if set(aliases) <= {e.alias_or_name for e in select.expressions} and (
                not computed or all(isinstance(e, exp.Alias) for e in select.expressions)
            ):
                return select
    raise AssertionError(f"no SELECT of {aliases} in schema.sql")


def result_select() -> exp.Select:
    return select_with("ColInt")


def normalized(type_text: str) -> str:
    return exp.DataType.build(type_text, dialect="tsql").sql("tsql")


def test_the_script_creates_database_and_procedure() -> None:
    statements = parse_batches()
    creates = [s for s in statements if isinstance(s, exp.Create)]
    procedures = [c.this.this.name for c in creates if c.args.get("kind") == "PROCEDURE"]
    assert procedures == ["spGenerateData", "spSalesOrders"]
    text = SCHEMA.read_text(encoding="utf-8")
    assert "CREATE DATABASE ExportDemo" in text
    assert "SET NOCOUNT ON" in text
    assert "SET NOCOUNT OFF" in text  # spSalesOrders: counts and a PRINT before its rows
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


Env = Mapping[str, Any]  # the values of the columns an expression reads, by name


def _eval(node: exp.Expression, n: Env) -> Any:
    if isinstance(node, exp.Column):
        return n[node.name]
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
        assert tuple(_eval(p, {"n": n}) for p in projections) == rd.row_values(n), n


# -- spSalesOrders ----------------------------------------------------------------------------


def orders_cte() -> exp.Select:
    """The CTE that computes an order's columns from n."""
    return select_with("OrderId", "Customer", "UnitPrice", computed=True)


def orders_insert() -> exp.Select:
    """The SELECT of INSERT INTO #Orders: the CTE's columns and Amount."""
    insert = next(i for s in parse_batches() for i in s.find_all(exp.Insert))
    select = insert.expression
    assert isinstance(select, exp.Select)
    return select


def summary_select() -> exp.Select:
    return select_with("Orders", "Amount")


def test_the_sales_procedure_checks_and_counts_as_sales_data_says() -> None:
    text = SCHEMA.read_text(encoding="utf-8")
    procedure = text[text.index("dbo.spSalesOrders") :]
    for message in (sd.NULL_MESSAGE, sd.ORDER_MESSAGE, sd.BOUNDS_MESSAGE, sd.LENGTH_MESSAGE):
        assert f"THROW 50000, N'{message}', 1;" in procedure
    assert f"CAST('{sd.MIN_DATE.isoformat()}' AS DATE)" in procedure
    assert f"CAST('{sd.MAX_DATE.isoformat()}' AS DATE)" in procedure
    assert f"DATEDIFF(DAY, @From, @To) + 1 > {sd.MAX_DAYS}" in procedure
    # @First and @Count: the range's first order and its number of orders.
    assert procedure.count(f"AS BIGINT) * {sd.ORDERS_PER_DAY};") == 2
    assert f"CAST('{sd.EPOCH.isoformat()}' AS DATE), @From)" in procedure
    assert "@Region NVARCHAR(20) = NULL" in procedure
    assert "WHERE @Region IS NULL OR Region = @Region" in procedure
    assert not re.search(r"\bWHILE\b|\bCURSOR\b", procedure, re.IGNORECASE)  # set-based
    start, end = sd.PRINT_FORMAT.split("{count}")[0], sd.PRINT_FORMAT.split("{end}")[1]
    assert f"PRINT CONCAT(N'{start}', @Orders, N' orders from '" in procedure
    assert f"N' to ', CONVERT(CHAR(10), @To, 23), N'{end}');" in procedure
    assert sd.PRINT_FORMAT == "Sales orders: {count} orders from {start} to {end}."


def test_the_orders_table_and_the_results_have_sales_datas_columns_and_types() -> None:
    table = next(
        c.this
        for s in parse_batches()
        for c in s.find_all(exp.Create)
        if c.args.get("kind") == "TABLE" and c.this.this.name == "Orders"  # #Orders
    )
    defs = [(d.name, d.args["kind"].sql("tsql")) for d in table.find_all(exp.ColumnDef)]
    assert defs == [(name, normalized(typ)) for name, typ in sd.ORDER_COLUMNS]
    # The CTE computes each column in the table's type; the result sets read the table.
    computed = [(p.alias, p.this.to.sql("tsql")) for p in orders_cte().expressions]
    assert computed == [(name, normalized(typ)) for name, typ in sd.ORDER_COLUMNS[:-1]]
    amount = orders_insert().expressions[-1]
    assert (amount.alias, amount.this.to.sql("tsql")) == ("Amount", normalized("DECIMAL(12,2)"))
    results = [
        [p.alias_or_name for p in s.expressions]
        for s in parse_batches()[-1].find_all(exp.Select)
        if any(t.name == "Orders" and t.this.args.get("temporary") for t in s.find_all(exp.Table))
    ]
    assert [n for n, _ in sd.ORDER_COLUMNS] in results
    assert [n for n, _ in sd.SUMMARY_COLUMNS] in results


def test_the_summary_is_typed_as_sales_data_says() -> None:
    region, orders, quantity, amount = summary_select().expressions
    assert region.name == "Region"
    assert isinstance(orders.this, exp.Coalesce) and isinstance(orders.this.this, exp.Count)  # noqa: PT018
    assert [c.to.sql("tsql") for c in quantity.find_all(exp.Cast)] == [normalized("BIGINT")]
    assert [c.to.sql("tsql") for c in amount.find_all(exp.Cast)] == [normalized("DECIMAL(18,2)")]
    assert dict(sd.SUMMARY_COLUMNS)["Orders"] == "INT"  # COUNT(*) is an INT


@pytest.mark.parametrize(
    "numbers",
    [
        range(4000),  # the first 100 days: every formula's period, a leap day ahead
        range(60_760, 60_840),  # 2024-02-28 .. 2024-03-01
        range(
            len(sd.order_numbers(sd.MIN_DATE, sd.MAX_DATE)) - 400,
            len(sd.order_numbers(sd.MIN_DATE, sd.MAX_DATE)),
        ),
    ],
    ids=["first-orders", "leap-day", "last-orders"],
)
def test_the_script_computes_the_orders_the_dev_server_sends(numbers: range) -> None:
    """The CTE's formulas and the INSERT's Amount, evaluated with SQL Server's rules, equal
    sales_data.order_row(n)."""
    cte = [(p.alias, p.this) for p in orders_cte().expressions]
    insert = orders_insert().expressions
    for n in numbers:
        computed = {name: _eval(formula, {"n": n}) for name, formula in cte}
        row = tuple(_eval(p.this if isinstance(p, exp.Alias) else p, computed) for p in insert)
        assert row == sd.order_row(n), n


def test_the_grants_a_reporting_role_needs_name_every_procedure() -> None:
    text = SCHEMA.read_text(encoding="utf-8")
    for procedure in ("spGenerateData", "spSalesOrders"):
        assert f"--   GRANT EXECUTE ON OBJECT::dbo.{procedure} TO report_exporter;" in text
