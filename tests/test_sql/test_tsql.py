"""The T-SQL interpreter on its own: statements and SQL Server's errors, without TDS."""

from __future__ import annotations

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
