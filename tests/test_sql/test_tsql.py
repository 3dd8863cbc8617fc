"""The T-SQL interpreter on its own: statements and SQL Server's errors, without TDS."""

from __future__ import annotations

import dataclasses
import datetime
import decimal

import pytest

from sql.devserver import requests, tsql

DB = "ExportDemo"


def one(text: str) -> tsql.Statement | tsql.StatementError:
    (only,) = tsql.Interpreter(DB).batch(text)
    return only


@pytest.mark.parametrize(
    ("text", "statement"),
    [
        ("SET NOCOUNT ON", tsql.SetOption()),
        ("use [exportdemo]", tsql.UseDatabase(DB)),
        ("SELECT -7", tsql.SelectInteger(-7)),
        ("BEGIN TRAN", tsql.BeginTransaction()),
        ("IF @@TRANCOUNT > 0 ROLLBACK", tsql.EndTransaction(commit=False, only_if_open=True)),
        ("EXEC spGenerateData 5", tsql.GenerateData(5)),
        ("EXECUTE [ExportDemo].[dbo].[spGenerateData] @RowCount = '12'", tsql.GenerateData(12)),
        ("exec DBO.SPDEVSERVERSTATS", tsql.ServerStats()),
        (
            "EXEC dbo.spColumns @Spec = N'{\"a\": [1, 2]}, ''x'''",
            tsql.Columns("{\"a\": [1, 2]}, 'x'"),
        ),
    ],
)
def test_statements(text: str, statement: tsql.Statement) -> None:
    assert one(text) == statement


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("USE master", 911),
        ("SELECT 2147483648", 8115),
        ("EXEC dbo.spNothing 1", 2812),
        ("EXEC dbo.spNothing 1 +", 2812),  # the procedure is looked up before its arguments
        ("EXEC other.spGenerateData 1", 2812),
        ("EXEC spGenerateData 1 +", 102),
        ("EXEC spGenerateData @n", 137),
        ("EXEC spGenerateData", 201),
        ("EXEC spGenerateData 1, 2", 8144),
        ("EXEC spGenerateData @RowCount = 1, @RowCount = 2", 8144),
        ("EXEC spGenerateData @Rows = 1", 8145),
        ("EXEC spDevServerStats 1", 8146),
        ("EXEC spGenerateData 'x'", 8114),
        ("EXEC spGenerateData 0", 50000),
        ("EXEC spColumns NULL", 50000),
        ("DROP TABLE t", 50001),
    ],
)
def test_errors_carry_sql_servers_numbers(text: str, number: int) -> None:
    error = one(text)
    assert isinstance(error, tsql.StatementError)
    assert error.number == number


def test_a_batch_goes_on_after_an_error() -> None:
    statements = tsql.Interpreter(DB).batch("SET XACT_ABORT ON;\nEXEC nope\nSELECT 1\nGO")
    assert [type(s) for s in statements] == [
        tsql.SetOption, tsql.StatementError, tsql.SelectInteger
    ]  # fmt: skip


def test_rpc_calls_and_sp_executesql() -> None:
    interpreter = tsql.Interpreter(DB)
    call = requests.Rpc("dbo.spGenerateData", None, (requests.RpcParam("", "int", 3),))
    assert interpreter.rpc(call) == tsql.GenerateData(3)
    by_id = requests.Rpc(
        None,
        tsql.SP_EXECUTESQL_ID,
        (
            requests.RpcParam("", "nvarchar", "EXEC spGenerateData @P1"),
            requests.RpcParam("", "nvarchar", "@P1 int"),
            requests.RpcParam("@P1", "int", 9),
        ),
    )
    executesql = interpreter.rpc(by_id)
    assert isinstance(executesql, tsql.ExecuteSql)
    assert interpreter.batch(executesql.text, executesql.variables) == [tsql.GenerateData(9)]


# -- the procedure table: binding, conversions, the new procedures ---------------------------

D = datetime.date


@pytest.mark.parametrize(
    ("text", "statement"),
    [
        (
            "EXEC spSalesOrders '2024-01-01', '20240102'",
            tsql.SalesOrders(D(2024, 1, 1), D(2024, 1, 2), None),
        ),
        (
            "EXEC dbo.spSalesOrders @To = '2024-01-02', @Region = N'East', @From = '2024-01-01'",
            tsql.SalesOrders(D(2024, 1, 1), D(2024, 1, 2), "East"),
        ),
        (
            "EXEC spSalesOrders '2024-01-01', '2024-01-01', N'" + "x" * 25 + "'",
            tsql.SalesOrders(D(2024, 1, 1), D(2024, 1, 1), "x" * 20),  # NVARCHAR(20) cuts
        ),
        (
            "EXEC spSalesOrders '2024-01-01T10:00:00', '2024-01-01', 5",
            tsql.SalesOrders(D(2024, 1, 1), D(2024, 1, 1), "5"),
        ),
    ],
)
def test_sales_orders_calls(text: str, statement: tsql.Statement) -> None:
    assert one(text) == statement


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("EXEC spGenerateData @RowCount = 1, 2", 119),
        ("EXEC spSalesOrders '2024-01-02', '2024-01-01'", 50000),
        ("EXEC spSalesOrders 'yesterday', '2024-01-01'", 241),
        ("EXEC spSalesOrders 1, '2024-01-01'", 206),
        ("EXEC spEcho " + ", ".join(["1"] * 65), 50000),
        ("EXEC spEcho 1, 100000000000000000000000000000000000000000", 1007),
        ('EXEC spScript N\'{"steps": [{"nope": 1}]}\'', 50000),
    ],
)
def test_more_errors_carry_sql_servers_numbers(text: str, number: int) -> None:
    error = one(text)
    assert isinstance(error, tsql.StatementError)
    assert error.number == number


def test_an_unsupported_statement_names_every_procedure() -> None:
    error = one("DROP TABLE x")
    assert isinstance(error, tsql.StatementError)
    for proc in tsql.PROCEDURES:
        assert f"dbo.{proc}" in error.text
    assert {"spSalesOrders", "spEcho", "spScript"} <= set(tsql.PROCEDURES)


def test_default_takes_the_parameters_default_or_is_201_without_one() -> None:
    interpreter = tsql.Interpreter(DB)
    day = requests.RpcParam("", "date", D(2024, 1, 1))
    default = requests.RpcParam("@Region", "nvarchar", None, status=requests.DEFAULT_VALUE)
    call = interpreter.rpc(requests.Rpc("spSalesOrders", None, (day, day, default)))
    assert call == tsql.SalesOrders(D(2024, 1, 1), D(2024, 1, 1), None)
    no_from = dataclasses.replace(default, name="@From")
    with pytest.raises(tsql.StatementError) as info:
        interpreter.rpc(
            requests.Rpc("spSalesOrders", None, (no_from, dataclasses.replace(day, name="@To")))
        )
    assert info.value.number == 201


def test_literals_are_typed_as_tsql_types_them() -> None:
    statement = one(
        "EXEC spEcho 1, 3000000000, 100000000000000000000, 'x', N'', N'🚀', NULL, 'é€東'"
    )
    assert isinstance(statement, tsql.Echo)
    declared = [p.sql_type.declaration for p in statement.params if p.sql_type is not None]
    assert declared == [
        "int", "bigint", "numeric(21,0)", "varchar(1)", "nvarchar(1)", "nvarchar(2)", "int",
        "varchar(3)",
    ]  # fmt: skip
    assert statement.params[2].value == decimal.Decimal(10**20)
    assert statement.params[-1].value == "é€?"  # the code page has no 東
    assert statement.params[-1].data == b"\xe9\x80?"


def test_script_outputs_bind_by_name_or_position_and_only_by_reference_return() -> None:
    interpreter = tsql.Interpreter(DB)
    text = (
        '{"steps": [{"output": {"name": "@A", "type": "int", "value": 1}},'
        ' {"output": {"name": "@B", "type": "int", "value": 2}}]}'
    )
    script = requests.RpcParam("", "nvarchar", text)
    by_ref = requests.RpcParam("", "int", None, status=requests.BY_REF_VALUE)
    named = dataclasses.replace(by_ref, name="@B")
    call = interpreter.rpc(requests.Rpc("spScript", None, (script, by_ref)))
    assert isinstance(call, tsql.RunScript)
    assert call.ordinals == {"@a": 1}
    named_script = dataclasses.replace(script, name="@Script")
    call = interpreter.rpc(requests.Rpc("spScript", None, (named, named_script)))
    assert isinstance(call, tsql.RunScript)
    assert call.ordinals == {"@b": 0}
    by_value = dataclasses.replace(named, status=0)
    call = interpreter.rpc(requests.Rpc("spScript", None, (script, by_value)))
    assert isinstance(call, tsql.RunScript)
    assert call.ordinals == {}
    with pytest.raises(tsql.StatementError) as info:  # positional after named
        interpreter.rpc(requests.Rpc("spScript", None, (named, script)))
    assert info.value.number == 119
