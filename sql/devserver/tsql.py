"""The T-SQL the dev server understands: what a SQL batch or an RPC means, and the errors SQL
Server raises for it.

Pure and free of TDS: batch text and parsed RPCs in, :data:`Statement` values out (or a
:class:`StatementError` carrying SQL Server's number and message).  :mod:`sql.devserver.engine`
turns statements into reply tokens and keeps the session's state.

The procedures (:data:`PROCEDURES`) are found as SQL Server finds them (``name``, ``dbo.name``,
``db.dbo.name``, brackets, any case) and their arguments bound as SQL Server binds them:
positional or ``@name =``, with errors 201, 2812, 8144, 8145 and 8146; ``@RowCount`` is
converted to INT (8114, 8115) and range-checked like ``schema.sql``'s ``THROW 50000``.
"""

from __future__ import annotations

import decimal
import re
from collections.abc import Mapping
from dataclasses import dataclass

from sql import report_data as rd
from sql.devserver import requests
from sql.devserver.errors import DevServerError

GENERATE_DATA = "spGenerateData"
ROW_COUNT_PARAM = "@RowCount"
SERVER_STATS = "spDevServerStats"
COLUMNS = "spColumns"
SPEC_PARAM = "@Spec"
# Each procedure's parameters, in order.
PROCEDURES: dict[str, tuple[str, ...]] = {
    GENERATE_DATA: (ROW_COUNT_PARAM,),
    SERVER_STATS: (),
    COLUMNS: (SPEC_PARAM,),
}
SP_EXECUTESQL_ID = 10  # well-known procedure ids (MS-TDS 2.2.6.6): 10 = sp_executesql
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
# The message the T-SQL's THROW raises (schema.sql says exactly the same).
ROW_COUNT_MESSAGE = f"@RowCount must be between 1 and {rd.MAX_ROW_COUNT}."
THROW_NUMBER = 50000
UNSUPPORTED_NUMBER = 50001  # user-defined range: a dev-server limitation, not a SQL error
_SHOWN_STATEMENT = 60  # characters of an unsupported statement quoted back
_SHOWN_ARGUMENT = 40  # ... of an argument with a syntax error


class StatementError(DevServerError):
    """A statement SQL Server would refuse: the number, message and origin of its ERROR."""

    def __init__(
        self, number: int, text: str, state: int = 1, proc: str = "", line: int = 1
    ) -> None:
        super().__init__(text)
        self.number = number
        self.text = text
        self.state = state
        self.proc = proc
        self.line = line


def thrown(proc: str, text: str) -> StatementError:
    """What a procedure's ``THROW 50000, text, 1`` raises (reported at line 0, as SQL Server
    reports a THROW in a procedure called over RPC)."""
    return StatementError(THROW_NUMBER, text, proc=proc, line=0)


def no_transaction(commit: bool) -> StatementError:
    """COMMIT/ROLLBACK without BEGIN TRANSACTION."""
    number, verb = (3902, "COMMIT") if commit else (3903, "ROLLBACK")
    return StatementError(
        number, f"The {verb} TRANSACTION request has no corresponding BEGIN TRANSACTION."
    )


# -- statements -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SetOption:
    """``SET <option> ...``: accepted, changes nothing."""


@dataclass(frozen=True, slots=True)
class UseDatabase:
    database: str  # the server's one database


@dataclass(frozen=True, slots=True)
class SelectInteger:
    value: int


@dataclass(frozen=True, slots=True)
class BeginTransaction:
    pass


@dataclass(frozen=True, slots=True)
class EndTransaction:
    commit: bool  # COMMIT, else ROLLBACK
    only_if_open: bool  # IF @@TRANCOUNT > 0 ...


@dataclass(frozen=True, slots=True)
class GenerateData:
    """``EXEC dbo.spGenerateData @RowCount``: the report's rows 1..row_count."""

    row_count: int


@dataclass(frozen=True, slots=True)
class ServerStats:
    """``EXEC dbo.spDevServerStats``: the server's counters."""


@dataclass(frozen=True, slots=True)
class Columns:
    """``EXEC dbo.spColumns @Spec``: the result set the JSON spec describes."""

    spec: str


Variables = Mapping[str, tuple[object, str]]  # lower-cased @name: (value, SQL type name)


@dataclass(frozen=True, slots=True)
class ExecuteSql:
    """The RPC ``sp_executesql``: statements with parameters."""

    text: str
    variables: Variables


Call = GenerateData | ServerStats | Columns
Statement = SetOption | UseDatabase | SelectInteger | BeginTransaction | EndTransaction | Call

_NAME = r"(?:\[[^\]]+\]|[A-Za-z_#@][\w@$#]*)"
_EXEC = re.compile(
    rf"^EXEC(?:UTE)?\s+(?P<name>(?:{_NAME}\s*\.\s*){{0,2}}{_NAME})(?:\s+(?P<args>.*))?$",
    re.IGNORECASE | re.DOTALL,
)
_ARG = re.compile(
    r"^(?:(?P<name>@\w+)\s*=\s*)?(?P<value>NULL|[-+]?\d+|N?'(?:[^']|'')*'|@\w+)$", re.IGNORECASE
)
_USE = re.compile(rf"^USE\s+(?P<db>{_NAME})$", re.IGNORECASE)
_SET = re.compile(r"^SET\s+\w+", re.IGNORECASE)
_SELECT_INT = re.compile(r"^SELECT\s+(?P<value>[-+]?\d+)$", re.IGNORECASE)
_BEGIN = re.compile(r"^BEGIN\s+TRAN(?:SACTION)?$", re.IGNORECASE)
_END_TRAN = re.compile(
    r"^(?P<guard>IF\s+@@TRANCOUNT\s*>\s*0\s+)?(?P<verb>COMMIT|ROLLBACK)"
    r"(?:\s+(?:TRAN(?:SACTION)?|WORK))?$",
    re.IGNORECASE,
)

Argument = tuple[str, object, str]  # (@name or "" when positional, value, SQL type name)


class Interpreter:
    """Reads batches and RPCs against a server whose one database is ``database``."""

    def __init__(self, database: str) -> None:
        self.database = database

    def batch(
        self, text: str, variables: Variables | None = None
    ) -> list[Statement | StatementError]:
        """Each statement of a batch, or the error it raises (a batch goes on after one)."""
        out: list[Statement | StatementError] = []
        for statement in split_statements(text):
            try:
                out.append(self.statement(statement, variables or {}))
            except StatementError as exc:
                out.append(exc)
        return out

    def statement(self, statement: str, variables: Variables) -> Statement:
        if _SET.match(statement):
            return SetOption()
        if m := _USE.match(statement):
            db = _unquote(m["db"])
            if db.lower() != self.database.lower():
                raise StatementError(
                    911,
                    f"Database '{db}' does not exist. "
                    "Make sure that the name is entered correctly.",
                )
            return UseDatabase(self.database)
        if m := _SELECT_INT.match(statement):
            value = int(m["value"])
            if not INT_MIN <= value <= INT_MAX:
                raise StatementError(8115, "Arithmetic overflow error converting to int.")
            return SelectInteger(value)
        if _BEGIN.match(statement):
            return BeginTransaction()
        if m := _END_TRAN.match(statement):
            return EndTransaction(m["verb"].upper() == "COMMIT", bool(m["guard"]))
        if m := _EXEC.match(statement):
            proc = self._procedure(m["name"])  # an unknown procedure before its arguments
            return _call(proc, _batch_args(m["args"] or "", variables))
        shown = statement
        if len(shown) > _SHOWN_STATEMENT:
            shown = statement[: _SHOWN_STATEMENT - 3] + "..."
        raise StatementError(
            UNSUPPORTED_NUMBER,
            f"The dev server does not support this statement: {shown} "
            f"(it runs EXEC of {', '.join('dbo.' + p for p in PROCEDURES)}, SET, USE, "
            "SELECT <integer> and transaction statements).",
        )

    def rpc(self, rpc: requests.Rpc) -> Call | ExecuteSql:
        if rpc.proc_id == SP_EXECUTESQL_ID or (
            rpc.proc_name is not None and _proc_parts(rpc.proc_name)[-1].lower() == "sp_executesql"
        ):
            params = rpc.params
            if not params or not isinstance(params[0].value, str):
                raise StatementError(
                    214, "Procedure expects parameter '@statement' of type 'ntext/nchar/nvarchar'."
                )
            variables = {p.name.lower(): (p.value, p.type_name) for p in params[2:]}
            return ExecuteSql(params[0].value, variables)
        if rpc.proc_id is not None:
            raise StatementError(
                UNSUPPORTED_NUMBER,
                f"The dev server does not implement system procedure id {rpc.proc_id}.",
            )
        proc = self._procedure(rpc.proc_name or "")
        return _call(proc, [(p.name, p.value, p.type_name) for p in rpc.params])

    def _procedure(self, name: str) -> str:
        """The procedure's canonical name, or error 2812 as SQL Server raises it."""
        parts = _proc_parts(name)
        schema_ok = len(parts) == 1 or parts[-2].lower() == "dbo"
        db_ok = len(parts) < 3 or parts[-3].lower() == self.database.lower()
        known = {p.lower(): p for p in PROCEDURES}
        proc = known.get(parts[-1].lower())
        if len(parts) > 3 or not (schema_ok and db_ok) or proc is None:
            raise StatementError(2812, f"Could not find stored procedure '{name}'.", state=62)
        return proc


def _split_outside_quotes(text: str, separators: str) -> list[str]:
    """``text`` split at any of ``separators`` outside '...' strings, parts stripped."""
    out: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in text:
        if ch == "'":
            quoted = not quoted
        if not quoted and ch in separators:
            out.append("".join(current))
            current = []
        else:
            current.append(ch)
    out.append("".join(current))
    return [part.strip() for part in out]


def split_statements(text: str) -> list[str]:
    """Statements of a batch: split at semicolons and line breaks outside quotes."""
    return [s for s in _split_outside_quotes(text, ";\r\n") if s and s.upper() != "GO"]


def _unquote(name: str) -> str:
    name = name.strip()
    return name[1:-1] if name.startswith("[") and name.endswith("]") else name


def _proc_parts(name: str) -> list[str]:
    return [_unquote(p) for p in re.split(r"\s*\.\s*(?![^\[]*\])", name.strip())]


def _call(proc: str, args: list[Argument]) -> Call:
    """A call of ``proc`` with its arguments bound and checked."""
    values = _bind(proc, args)
    if proc == SERVER_STATS:
        return ServerStats()
    if proc == COLUMNS:
        spec, _type_name = values[0]
        if spec is None:
            raise thrown(COLUMNS, f"{SPEC_PARAM} is NULL.")
        return Columns(spec if isinstance(spec, str) else str(spec))
    return GenerateData(_row_count(*values[0]))


def _batch_args(text: str, variables: Variables) -> list[Argument]:
    """The arguments of ``EXEC proc <args>``: literals (NULL, integers, '...' and N'...'
    strings) and @variables of sp_executesql, each optionally ``@name =``."""
    args: list[Argument] = []
    for raw in _split_outside_quotes(text, ",") if text.strip() else []:
        m = _ARG.match(raw)
        if m is None:
            raise StatementError(102, f"Incorrect syntax near '{raw[:_SHOWN_ARGUMENT]}'.")
        value_text = m["value"]
        value: object
        type_name = "int"
        if value_text.upper() == "NULL":
            value = None
        elif value_text.startswith("@"):
            if value_text.lower() not in variables:
                raise StatementError(137, f'Must declare the scalar variable "{value_text}".')
            value, type_name = variables[value_text.lower()]
        elif value_text[0] in "nN'":
            value, type_name = value_text.lstrip("nN")[1:-1].replace("''", "'"), "varchar"
        else:
            value = int(value_text)
            type_name = "int" if INT_MIN <= value <= INT_MAX else "bigint"
        args.append((m["name"] or "", value, type_name))
    return args


def _bind(proc: str, args: list[Argument]) -> list[tuple[object, str]]:
    """The arguments bound to ``proc``'s parameters the way SQL Server binds them: (value,
    type name) per parameter, or the error SQL Server raises (201, 8144, 8145, 8146)."""
    params = PROCEDURES[proc]
    if not params and args:
        raise StatementError(
            8146, f"Procedure {proc} has no parameters and arguments were supplied.", proc=proc
        )
    bound: dict[str, tuple[object, str]] = {}
    too_many = StatementError(
        8144, f"Procedure or function {proc} has too many arguments specified.", proc=proc
    )
    for position, (name, value, type_name) in enumerate(args):
        if name:
            param = next((p for p in params if p.lower() == name.lower()), None)
            if param is None:
                raise StatementError(
                    8145, f"{name} is not a parameter for procedure {proc}.", proc=proc
                )
        elif position < len(params):
            param = params[position]
        else:
            raise too_many
        if param in bound:
            raise too_many
        bound[param] = (value, type_name)
    for param in params:
        if param not in bound:
            raise StatementError(
                201,
                f"Procedure or function '{proc}' expects parameter '{param}', "
                "which was not supplied.",
                proc=proc,
            )
    return [bound[p] for p in params]


def _row_count(value: object, type_name: str) -> int:
    """@RowCount INT as SQL Server converts it, then the T-SQL's range check (THROW)."""
    count = _to_int(value, type_name)
    if count is None or not 1 <= count <= rd.MAX_ROW_COUNT:
        raise thrown(GENERATE_DATA, ROW_COUNT_MESSAGE)
    return count


def _to_int(value: object, type_name: str) -> int | None:
    """SQL Server's implicit conversion of a parameter value to INT (8114/8115 on failure)."""
    if value is None:
        return None
    result: int
    if isinstance(value, bool | int):
        result = int(value)
    elif isinstance(value, float | decimal.Decimal):
        result = int(value)  # float/decimal to int truncates toward zero, as in SQL Server
    elif isinstance(value, str):
        try:
            result = int(value.strip())
        except ValueError:
            raise StatementError(8114, f"Error converting data type {type_name} to int.") from None
    else:
        raise StatementError(206, f"Operand type clash: {type_name} is incompatible with int")
    if not INT_MIN <= result <= INT_MAX:
        raise StatementError(
            8115, "Arithmetic overflow error converting expression to data type int."
        )
    return result
