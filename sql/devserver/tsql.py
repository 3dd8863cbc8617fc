"""The T-SQL the dev server understands: what a SQL batch or an RPC means, and the errors SQL
Server raises for it.

Pure and free of TDS: batch text and parsed RPCs in, :data:`Statement` values out (or a
:class:`StatementError` carrying SQL Server's number and message).  :mod:`sql.devserver.engine`
turns statements into reply tokens and keeps the session's state.

The procedures (:data:`PROCEDURES`, a table of name -> binder) are found as SQL Server finds
them (``name``, ``dbo.name``, ``db.dbo.name``, brackets, any case) and their arguments bound as
SQL Server binds them (:func:`bind`): positional or ``@name =``, optional parameters left out
or passed as DEFAULT, with errors 119, 201, 2812, 8144, 8145 and 8146; values are converted to
the parameter's type as SQL Server converts them (8114, 8115, 206, 241) and checked like
``schema.sql``'s ``THROW 50000``.  Arguments are :class:`~sql.devserver.requests.RpcParam`
whether they came in an RPC or as literals of ``EXEC`` in a batch.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from sql import report_data as rd
from sql import sales_data as sd
from sql.devserver import collations, requests, sqltypes
from sql.devserver.errors import DevServerError, SpecError
from sql.devserver.script import SCRIPT_PARAM as SCRIPT_PARAM
from sql.devserver.script import Script, parse_script

GENERATE_DATA = "spGenerateData"
ROW_COUNT_PARAM = "@RowCount"
SERVER_STATS = "spDevServerStats"
COLUMNS = "spColumns"
SPEC_PARAM = "@Spec"
SALES_ORDERS = "spSalesOrders"
FROM_PARAM, TO_PARAM, REGION_PARAM = "@From", "@To", "@Region"
ECHO = "spEcho"
SCRIPT = "spScript"
# spEcho's parameters at most: a row of that many columns is any test's need, and the bound
# keeps a hostile call from asking for SQL Server's 2,100.
MAX_ECHO_PARAMS = 64
SP_EXECUTESQL_ID = 10  # well-known procedure ids (MS-TDS 2.2.6.6): 10 = sp_executesql
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
BIGINT_MIN, BIGINT_MAX = -(2**63), 2**63 - 1
MAX_NUMERIC_DIGITS = 38  # a larger integer literal is not a number T-SQL can hold
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


@dataclass(frozen=True, slots=True)
class SalesOrders:
    """``EXEC dbo.spSalesOrders @From, @To, @Region``: a checked date range (sql.sales_data)."""

    start: datetime.date
    end: datetime.date
    region: str | None


@dataclass(frozen=True, slots=True)
class Echo:
    """``EXEC dbo.spEcho ...``: one row of the arguments, typed and valued as they came."""

    params: tuple[requests.RpcParam, ...]


@dataclass(frozen=True, slots=True)
class RunScript:
    """``EXEC dbo.spScript @Script, ...``: the parsed script, and for each of its outputs that
    the caller passed by reference (OUTPUT), the argument's position in the call."""

    script: Script
    ordinals: Mapping[str, int]  # lower-cased output name: position of the by-ref argument


Variables = Mapping[str, requests.RpcParam]  # sp_executesql's parameters by lower-cased @name


@dataclass(frozen=True, slots=True)
class ExecuteSql:
    """The RPC ``sp_executesql``: statements with parameters."""

    text: str
    variables: Variables


Call = GenerateData | ServerStats | Columns | SalesOrders | Echo | RunScript
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
            return PROCEDURES[proc](_batch_args(m["args"] or "", variables))
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
            variables = {p.name.lower(): p for p in params[2:]}
            return ExecuteSql(params[0].value, variables)
        if rpc.proc_id is not None:
            raise StatementError(
                UNSUPPORTED_NUMBER,
                f"The dev server does not implement system procedure id {rpc.proc_id}.",
            )
        proc = self._procedure(rpc.proc_name or "")
        return PROCEDURES[proc](rpc.params)

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


def _batch_args(text: str, variables: Variables) -> list[requests.RpcParam]:
    """The arguments of ``EXEC proc <args>``: literals (NULL, integers, '...' and N'...'
    strings) and @variables of sp_executesql, each optionally ``@name =``."""
    args: list[requests.RpcParam] = []
    for raw in _split_outside_quotes(text, ",") if text.strip() else []:
        m = _ARG.match(raw)
        if m is None:
            raise StatementError(102, f"Incorrect syntax near '{raw[:_SHOWN_ARGUMENT]}'.")
        name, value_text = m["name"] or "", m["value"]
        if value_text.startswith("@"):
            if value_text.lower() not in variables:
                raise StatementError(137, f'Must declare the scalar variable "{value_text}".')
            args.append(dataclasses.replace(variables[value_text.lower()], name=name, status=0))
        else:
            args.append(_literal(name, value_text))
    return args


def _literal(name: str, text: str) -> requests.RpcParam:
    """A literal typed as T-SQL types it: NULL is INT, an integer INT, BIGINT or
    NUMERIC(p,0) by size, 'x' VARCHAR(n) in the database's code page (a character it lacks
    becomes '?'), N'x' NVARCHAR(n); n is the length (at least 1), MAX past 8,000 bytes."""
    if text.upper() == "NULL":
        return requests.RpcParam(name, "int", None, sql_type=sqltypes.parse_type("int"))
    if text[0] in "nN'":
        unicode = text[0] in "nN"
        value = text.lstrip("nN")[1:-1].replace("''", "'")
        if unicode:
            data = value.encode("utf-16-le", "surrogatepass")
            units = len(data) // 2
            limit, kind = sqltypes.MAX_NCHAR_LENGTH, "nvarchar"
        else:
            codec = collations.DEFAULT.codec
            data = value.encode(codec, "replace")
            value = data.decode(codec)
            units = len(data)
            limit, kind = sqltypes.MAX_CHAR_LENGTH, "varchar"
        length = "max" if units > limit else str(max(units, 1))
        typ = sqltypes.parse_type(f"{kind}({length})")
        return requests.RpcParam(name, kind, value, sql_type=typ, data=data)
    number = int(text)
    digits = len(str(abs(number)))
    if INT_MIN <= number <= INT_MAX:
        declaration = "int"
    elif BIGINT_MIN <= number <= BIGINT_MAX:
        declaration = "bigint"
    elif digits <= MAX_NUMERIC_DIGITS:
        declaration = f"numeric({digits},0)"
    else:
        raise StatementError(
            1007,
            f"The number '{text}' is out of the range for numeric representation "
            f"(maximum precision {MAX_NUMERIC_DIGITS}).",
        )
    typ = sqltypes.parse_type(declaration)
    exact: object = number if typ.kind != "numeric" else decimal.Decimal(number)
    return requests.RpcParam(name, typ.kind, exact, sql_type=typ, data=typ.data(number))


# -- binding ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Parameter:
    """A procedure's declared parameter; ``optional`` ones have a default (NULL)."""

    name: str
    optional: bool = False


def _check_named_last(proc: str, args: Sequence[requests.RpcParam]) -> None:
    """Error 119: once an argument is passed as ``@name = value``, all that follow must be."""
    named = False
    for position, arg in enumerate(args, start=1):
        if arg.name:
            named = True
        elif named:
            raise StatementError(
                119,
                f"Must pass parameter number {position} and subsequent parameters as "
                "'@name = value'. After the form '@name = value' has been used, all subsequent "
                "parameters must be passed in the form '@name = value'.",
                proc=proc,
            )


def bind(
    proc: str, params: Sequence[Parameter], args: Sequence[requests.RpcParam]
) -> list[int | None]:
    """The arguments bound to ``proc``'s parameters the way SQL Server binds them: per
    parameter, the position of its argument in ``args``, or None for an optional parameter left
    out (or passed as DEFAULT); else the error SQL Server raises (119, 201, 8144, 8145, 8146)."""
    if not params and args:
        raise StatementError(
            8146, f"Procedure {proc} has no parameters and arguments were supplied.", proc=proc
        )
    _check_named_last(proc, args)
    bound: dict[str, int] = {}
    too_many = StatementError(
        8144, f"Procedure or function {proc} has too many arguments specified.", proc=proc
    )
    for position, arg in enumerate(args):
        if arg.name:
            param = next((p for p in params if p.name.lower() == arg.name.lower()), None)
            if param is None:
                raise StatementError(
                    8145, f"{arg.name} is not a parameter for procedure {proc}.", proc=proc
                )
        elif position < len(params):
            param = params[position]
        else:
            raise too_many
        if param.name in bound:
            raise too_many
        bound[param.name] = position
    out: list[int | None] = []
    for param in params:
        at = bound.get(param.name)
        if at is not None and args[at].wants_default:
            at = None
        if at is None and not param.optional:
            raise StatementError(
                201,
                f"Procedure or function '{proc}' expects parameter '{param.name}', "
                "which was not supplied.",
                proc=proc,
            )
        out.append(at)
    return out


def _bound(
    proc: str, params: Sequence[Parameter], args: Sequence[requests.RpcParam]
) -> list[requests.RpcParam | None]:
    """:func:`bind`'s arguments themselves (None: the parameter's default, NULL)."""
    return [None if i is None else args[i] for i in bind(proc, params, args)]


def _value(arg: requests.RpcParam | None) -> tuple[object, str]:
    """An argument's value and type name; a parameter left out is NULL."""
    return (None, "int") if arg is None else (arg.value, arg.type_name)


# -- the procedures -------------------------------------------------------------------------


def _generate_data(args: Sequence[requests.RpcParam]) -> Call:
    (count,) = _bound(GENERATE_DATA, (Parameter(ROW_COUNT_PARAM),), args)
    return GenerateData(_row_count(*_value(count)))


def _server_stats(args: Sequence[requests.RpcParam]) -> Call:
    bind(SERVER_STATS, (), args)
    return ServerStats()


def _columns(args: Sequence[requests.RpcParam]) -> Call:
    (spec,) = _bound(COLUMNS, (Parameter(SPEC_PARAM),), args)
    value, _type_name = _value(spec)
    if value is None:
        raise thrown(COLUMNS, f"{SPEC_PARAM} is NULL.")
    return Columns(value if isinstance(value, str) else str(value))


_SALES_PARAMS = (Parameter(FROM_PARAM), Parameter(TO_PARAM), Parameter(REGION_PARAM, True))


def _sales_orders(args: Sequence[requests.RpcParam]) -> Call:
    """@From DATE, @To DATE, @Region NVARCHAR(20) = NULL, converted, then the T-SQL's checks."""
    start, end, region = _bound(SALES_ORDERS, _SALES_PARAMS, args)
    start_date, end_date = _to_date(*_value(start)), _to_date(*_value(end))
    region_text = _to_nvarchar(*_value(region), sd.REGION_LENGTH)
    try:
        sd.check_range(start_date, end_date)
    except ValueError as exc:
        raise thrown(SALES_ORDERS, str(exc)) from None
    assert start_date is not None  # check_range refuses NULL
    assert end_date is not None
    return SalesOrders(start_date, end_date, region_text)


def _echo(args: Sequence[requests.RpcParam]) -> Call:
    """Any arguments, any names: no binding but SQL Server's rule 119 on their order."""
    _check_named_last(ECHO, args)
    if len(args) > MAX_ECHO_PARAMS:
        raise thrown(ECHO, f"{ECHO} takes at most {MAX_ECHO_PARAMS} parameters, not {len(args)}.")
    return Echo(tuple(args))


def _script(args: Sequence[requests.RpcParam]) -> Call:
    """@Script NVARCHAR(MAX), then the script's outputs as optional parameters (default NULL)
    in the order the script lists them: the script is read first, as it declares them."""
    script_arg = next((a for a in args if a.name.lower() == SCRIPT_PARAM.lower()), None)
    if script_arg is None and args and not args[0].name:
        script_arg = args[0]
    text, _type_name = _value(script_arg)
    if script_arg is None or script_arg.wants_default:
        # No script: the error binding against @Script alone gives (8145 for a name that is
        # none of the procedure's, else 201).
        bind(SCRIPT, (Parameter(SCRIPT_PARAM),), args)
    if text is None:
        raise thrown(SCRIPT, f"{SCRIPT_PARAM} is NULL.")
    try:
        script = parse_script(text if isinstance(text, str) else str(text))
    except SpecError as exc:
        raise thrown(SCRIPT, f"{SCRIPT_PARAM}: {exc}") from None
    outputs = tuple(Parameter(o.name, optional=True) for o in script.outputs)
    positions = bind(SCRIPT, (Parameter(SCRIPT_PARAM), *outputs), args)
    ordinals = {
        output.name.lower(): position
        for output, position in zip(outputs, positions[1:], strict=True)
        if position is not None and args[position].by_ref
    }
    return RunScript(script, ordinals)


# Each procedure, by its canonical name: what binds its arguments and makes its call.
PROCEDURES: dict[str, Callable[[Sequence[requests.RpcParam]], Call]] = {
    GENERATE_DATA: _generate_data,
    SERVER_STATS: _server_stats,
    COLUMNS: _columns,
    SALES_ORDERS: _sales_orders,
    ECHO: _echo,
    SCRIPT: _script,
}


# -- conversions ----------------------------------------------------------------------------


def _row_count(value: object, type_name: str) -> int:
    """@RowCount INT as SQL Server converts it, then the T-SQL's range check (THROW)."""
    count = _to_int(value, type_name)
    if count is None or not 1 <= count <= rd.MAX_ROW_COUNT:
        raise thrown(GENERATE_DATA, ROW_COUNT_MESSAGE)
    return count


def _clash(type_name: str, target: str) -> StatementError:
    return StatementError(206, f"Operand type clash: {type_name} is incompatible with {target}")


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
        raise _clash(type_name, "int")
    if not INT_MIN <= result <= INT_MAX:
        raise StatementError(
            8115, "Arithmetic overflow error converting expression to data type int."
        )
    return result


def _to_date(value: object, type_name: str) -> datetime.date | None:
    """SQL Server's implicit conversion of a parameter value to DATE: a date, the date of a
    date and time, or text in an ISO 8601 form (241 when it is none); numbers clash (206)."""
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, datetime.date):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return datetime.date.fromisoformat(text)
        except ValueError:
            pass
        try:
            return datetime.datetime.fromisoformat(text).date()
        except ValueError:
            raise StatementError(
                241, "Conversion failed when converting date and/or time from character string."
            ) from None
    raise _clash(type_name, "date")


def _to_nvarchar(value: object, type_name: str, length: int) -> str | None:
    """SQL Server's implicit conversion of a parameter value to NVARCHAR(length): text, or a
    number or date as text, cut to ``length`` characters without an error (as a procedure's
    parameter is)."""
    if value is None:
        return None
    if isinstance(value, bool):
        text = "1" if value else "0"
    elif isinstance(value, str | int | decimal.Decimal | float):
        text = str(value)
    elif isinstance(value, datetime.date):
        text = value.isoformat(sep=" ") if isinstance(value, datetime.datetime) else str(value)
    else:
        raise _clash(type_name, "nvarchar")
    return text[:length]
