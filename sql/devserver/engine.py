"""What the dev server answers: the pure decision logic behind every request.

Given a protocol event and the session state, :class:`Session` returns a :data:`Reply`: token
payloads (bytes) and :class:`Rows` placeholders that the I/O shell streams with backpressure.
The shapes follow SQL Server's: a procedure's result set is COLMETADATA, ROW/NBCROW...,
DONEINPROC (MORE|COUNT), RETURNSTATUS, DONEPROC; every DONE* but the message's last has MORE.
"""

from __future__ import annotations

import dataclasses
import decimal
import functools
import re
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sql import report_data as rd
from sql.devserver import columns, requests, tokens
from sql.devserver.errors import SpecError
from sql.devserver.resultset import ReportEncoder, ReportRows, colmetadata
from sql.devserver.rowsource import RowSource

PROC_NAME = "spGenerateData"
PARAM_NAME = "@RowCount"
# The server's counters as one row of BIGINT NOT NULL columns, in this order (no parameters).
STATS_PROC_NAME = "spDevServerStats"
STATS_COLUMNS = (
    "connections_total",
    "connections_open",
    "logins_failed",
    "requests",
    "rows_sent",
    "attentions",
    "attentions_answered",
    "backpressure_pauses",
)
# A result set described by its one NVARCHAR(MAX) parameter (sql/devserver/columns.py).
COLUMNS_PROC_NAME = "spColumns"
SPEC_PARAM_NAME = "@Spec"
# Each procedure's parameters, in order.
PROCEDURES: dict[str, tuple[str, ...]] = {
    PROC_NAME: (PARAM_NAME,),
    STATS_PROC_NAME: (),
    COLUMNS_PROC_NAME: (SPEC_PARAM_NAME,),
}
SP_EXECUTESQL_ID = 10  # well-known procedure ids (MS-TDS 2.2.6.6): 10 = sp_executesql
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
# The message the T-SQL's THROW raises (schema.sql says exactly the same).
ROW_COUNT_MESSAGE = f"@RowCount must be between 1 and {rd.MAX_ROW_COUNT}."
THROW_NUMBER = 50000
UNSUPPORTED_NUMBER = 50001  # user-defined range: a dev-server limitation, not a SQL error
RETURN_STATUS_AFTER_ERROR = -6  # what SQL Server returns from a procedure a statement error ended

# TDS versions the server agrees to (LOGINACK echoes the highest not above the client's).
# DATE and DATETIME2 need 7.3; ALL_HEADERS needs 7.2.
TDS_VERSIONS = (0x74000004, 0x730B0003, 0x730A0003)


@dataclass(frozen=True, slots=True)
class Rows:
    """Stream the rows of ``source``, then ``trailer``; on a mid-stream error send
    :meth:`Session.error_trailer` instead (``last`` says whether it ends the message;
    ``proc`` names the procedure the rows come from)."""

    source: RowSource
    trailer: bytes
    proc: str
    last: bool = False

    @property
    def count(self) -> int:
        return self.source.count


Reply = list[bytes | Rows]


@dataclass(frozen=True, slots=True)
class Credentials:
    user: str
    password: str
    database: str


class _StatementError(Exception):
    def __init__(
        self, number: int, text: str, state: int = 1, proc: str = "", line: int = 1
    ) -> None:
        super().__init__(text)
        self.number = number
        self.text = text
        self.state = state
        self.proc = proc
        self.line = line

    def token(self) -> bytes:
        return tokens.error(
            self.number, self.text, state=self.state, proc=self.proc, line=self.line
        )


def _done_with_more_cleared(payload: bytes) -> bytes:
    """Clear MORE on the payload's trailing DONE* token (13 bytes: token, status, cmd, rows)."""
    if len(payload) < 13 or payload[-13] not in (tokens.DONE, tokens.DONEPROC, tokens.DONEINPROC):
        return payload + tokens.done(tokens.DONE, tokens.DONE_FINAL)
    status = int.from_bytes(payload[-12:-10], "little") & ~tokens.DONE_MORE
    return payload[:-12] + status.to_bytes(2, "little") + payload[-10:]


def finish_reply(parts: Reply) -> Reply:
    """Make the reply's last DONE* token final (no MORE)."""
    if not parts:
        return [tokens.done(tokens.DONE, tokens.DONE_FINAL)]
    last = parts[-1]
    if isinstance(last, Rows):
        parts[-1] = dataclasses.replace(
            last, trailer=_done_with_more_cleared(last.trailer), last=True
        )
    else:
        parts[-1] = _done_with_more_cleared(last)
    return parts


# -- SQL batch statements -------------------------------------------------------------------

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


def _no_counters() -> Mapping[str, int]:
    return {}


def _stats_result(counters: Mapping[str, int]) -> bytes:
    """spDevServerStats' result set: COLMETADATA with INT8 (BIGINT NOT NULL) columns, one ROW,
    then the procedure's DONEINPROC/RETURNSTATUS/DONEPROC."""
    meta = bytearray(struct.pack("<BH", tokens.COLMETADATA, len(STATS_COLUMNS)))
    for name in STATS_COLUMNS:
        meta += struct.pack("<IHB", 0, 0, tokens.INT8) + tokens.b_varchar(name)
    row = struct.pack(
        f"<B{len(STATS_COLUMNS)}q", tokens.ROW, *(counters.get(n, 0) for n in STATS_COLUMNS)
    )
    return bytes(meta) + row + _proc_trailer(1)


def _proc_trailer(count: int) -> bytes:
    """What follows a procedure's one result set: DONEINPROC with the row count, RETURNSTATUS 0,
    DONEPROC (MORE set: :func:`finish_reply` clears it on a message's last token)."""
    return (
        tokens.done(
            tokens.DONEINPROC, tokens.DONE_MORE | tokens.DONE_COUNT, tokens.CMD_SELECT, count
        )
        + tokens.returnstatus(0)
        + tokens.done(tokens.DONEPROC, tokens.DONE_MORE, tokens.CMD_EXECUTE)
    )


@dataclass
class Session:
    """One logged-in session's state and the answers it gives.

    ``counters`` reads the server's counters (by :data:`STATS_COLUMNS` name) when
    ``spDevServerStats`` runs.
    """

    credentials: Credentials
    counters: Callable[[], Mapping[str, int]] = _no_counters
    database: str = ""
    transaction: int = 0  # current transaction descriptor, 0 when none
    _next_transaction: int = field(default=0x1000)

    # -- login ------------------------------------------------------------------------------

    def login(self, login: requests.Login) -> tuple[bool, bytes, int]:
        """(accepted, reply payload, packet size to use from now on)."""
        creds = self.credentials
        user_ok = login.user.lower() == creds.user.lower() and login.password == creds.password
        if not user_ok:
            return False, self.login_refused(login.user), 0
        if login.database and login.database.lower() != creds.database.lower():
            text = (
                f'Cannot open database "{login.database}" requested by the login. The login failed.'
            )
            payload = (
                tokens.message(tokens.ERROR, 4060, text, severity=11)
                + tokens.message(
                    tokens.ERROR, 18456, f"Login failed for user '{login.user}'.", severity=14
                )
                + tokens.done(tokens.DONE, tokens.DONE_ERROR)
            )
            return False, payload, 0
        version = next((v for v in TDS_VERSIONS if v <= login.tds_version), None)
        if version is None:
            text = "The dev server speaks TDS 7.3 and 7.4 only; configure the client for TDS 7.3+."
            return (
                False,
                tokens.error(UNSUPPORTED_NUMBER, text)
                + tokens.done(tokens.DONE, tokens.DONE_ERROR),
                0,
            )
        # 0 means "server default"; otherwise clamp into the range MS-TDS allows.
        size = login.packet_size or 4096
        size = max(512, min(size, 32767))
        self.database = creds.database
        payload = (
            tokens.env_text(tokens.ENV_DATABASE, self.database, "master")
            + tokens.info(5701, f"Changed database context to '{self.database}'.")
            + tokens.env_collation()
            + tokens.env_text(tokens.ENV_LANGUAGE, "us_english", "")
            + tokens.info(5703, "Changed language setting to us_english.")
            + tokens.loginack(version)
            + tokens.env_text(tokens.ENV_PACKET_SIZE, str(size), str(4096))
            + tokens.done(tokens.DONE, tokens.DONE_FINAL)
        )
        return True, payload, size

    @staticmethod
    def login_refused(user: str) -> bytes:
        """SQL Server's answer to a bad user name or password (class 14, state 1 to clients)."""
        return tokens.message(
            tokens.ERROR, 18456, f"Login failed for user '{user}'.", severity=14
        ) + tokens.done(tokens.DONE, tokens.DONE_ERROR)

    # -- requests ---------------------------------------------------------------------------

    def bad_request(self, reason: str) -> Reply:
        text = reason or "request ignored"
        return [
            tokens.error(UNSUPPORTED_NUMBER, text) + tokens.done(tokens.DONE, tokens.DONE_ERROR)
        ]

    def attention_done(self) -> bytes:
        return tokens.done(tokens.DONE, tokens.DONE_ATTN)

    def rpc(self, rpc: requests.Rpc) -> Reply:
        if rpc.proc_id == SP_EXECUTESQL_ID or (
            rpc.proc_name is not None and _proc_parts(rpc.proc_name)[-1].lower() == "sp_executesql"
        ):
            return self._sp_executesql(rpc.params)
        if rpc.proc_id is not None:
            return self._rpc_error(
                _StatementError(
                    UNSUPPORTED_NUMBER,
                    f"The dev server does not implement system procedure id {rpc.proc_id}.",
                )
            )
        try:
            return finish_reply(
                self._call(
                    rpc.proc_name or "", [(p.name, p.value, p.type_name) for p in rpc.params]
                )
            )
        except _StatementError as exc:
            return self._rpc_error(exc)

    def _rpc_error(self, exc: _StatementError) -> Reply:
        return [exc.token() + tokens.done(tokens.DONEPROC, tokens.DONE_ERROR)]

    def _sp_executesql(self, params: tuple[requests.RpcParam, ...]) -> Reply:
        if not params or not isinstance(params[0].value, str):
            return self._rpc_error(
                _StatementError(
                    214, "Procedure expects parameter '@statement' of type 'ntext/nchar/nvarchar'."
                )
            )
        variables = {p.name.lower(): (p.value, p.type_name) for p in params[2:]}
        parts = self._statements(params[0].value, variables, in_batch=False)
        failed = any(isinstance(p, bytes) and tokens.ERROR in p[:1] for p in parts)
        parts.append(
            tokens.returnstatus(0)
            + tokens.done(tokens.DONEPROC, tokens.DONE_ERROR if failed else tokens.DONE_FINAL)
        )
        return finish_reply(parts)

    def batch(self, text: str) -> Reply:
        return finish_reply(self._statements(text, {}, in_batch=True))

    def _statements(
        self, text: str, variables: dict[str, tuple[object, str]], *, in_batch: bool
    ) -> Reply:
        done_token = tokens.DONE if in_batch else tokens.DONEINPROC
        parts: Reply = []
        for statement in split_statements(text):
            try:
                parts.extend(self._statement(statement, variables, in_batch, done_token))
            except _StatementError as exc:
                parts.append(
                    exc.token() + tokens.done(done_token, tokens.DONE_MORE | tokens.DONE_ERROR)
                )
        if not parts:
            parts.append(tokens.done(done_token, tokens.DONE_MORE))
        return parts

    def _statement(
        self,
        statement: str,
        variables: dict[str, tuple[object, str]],
        in_batch: bool,
        done_token: int,
    ) -> Reply:
        more = tokens.DONE_MORE
        if _SET.match(statement):
            return [tokens.done(done_token, more, tokens.CMD_SET)]
        if m := _USE.match(statement):
            db = _unquote(m["db"])
            if db.lower() != self.credentials.database.lower():
                raise _StatementError(
                    911,
                    f"Database '{db}' does not exist. "
                    "Make sure that the name is entered correctly.",
                )
            old, self.database = self.database, self.credentials.database
            return [
                tokens.env_text(tokens.ENV_DATABASE, self.database, old)
                + tokens.info(5701, f"Changed database context to '{self.database}'.")
                + tokens.done(done_token, more)
            ]
        if m := _SELECT_INT.match(statement):
            value = int(m["value"])
            if not INT_MIN <= value <= INT_MAX:
                raise _StatementError(8115, "Arithmetic overflow error converting to int.")
            # COLMETADATA: one unnamed column, user type 0, flags 0, INTN(4).
            meta = struct.pack("<BHIH", tokens.COLMETADATA, 1, 0, 0) + b"\x26\x04" + b"\x00"
            row = bytes((tokens.ROW, 4)) + value.to_bytes(4, "little", signed=True)
            return [
                meta + row + tokens.done(done_token, more | tokens.DONE_COUNT, tokens.CMD_SELECT, 1)
            ]
        if _BEGIN.match(statement):
            return [self._begin() + tokens.done(done_token, more)]
        if m := _END_TRAN.match(statement):
            if not self.transaction and m["guard"]:
                return [tokens.done(done_token, more)]
            return [self._end(m["verb"].upper() == "COMMIT", False) + tokens.done(done_token, more)]
        if m := _EXEC.match(statement):
            return self._call(m["name"], self._batch_args(m["args"] or "", variables))
        shown = statement if len(statement) <= 60 else statement[:57] + "..."
        raise _StatementError(
            UNSUPPORTED_NUMBER,
            f"The dev server does not support this statement: {shown} "
            f"(it runs EXEC of {', '.join('dbo.' + p for p in PROCEDURES)}, SET, USE, "
            "SELECT <integer> and transaction statements).",
        )

    # -- the procedure ----------------------------------------------------------------------

    def _call(self, name: str, args: list[tuple[str, object, str]]) -> Reply:
        """A procedure call's reply parts (without the message's final DONE)."""
        proc = self._check_proc(name)
        values = _bind(proc, args)
        if proc == STATS_PROC_NAME:
            return [_stats_result(self.counters())]
        if proc == COLUMNS_PROC_NAME:
            result = _columns_result(*values[0])
            return [result.colmetadata, Rows(result, _proc_trailer(result.count), proc)]
        count = _row_count(*values[0])
        return [
            colmetadata(),
            Rows(ReportRows(count, _report_encoder()), _proc_trailer(count), proc),
        ]

    def _check_proc(self, name: str) -> str:
        """The procedure's canonical name, or error 2812 as SQL Server raises it."""
        parts = _proc_parts(name)
        schema_ok = len(parts) == 1 or parts[-2].lower() == "dbo"
        db_ok = len(parts) < 3 or parts[-3].lower() == self.credentials.database.lower()
        known = {p.lower(): p for p in PROCEDURES}
        proc = known.get(parts[-1].lower())
        if len(parts) > 3 or not (schema_ok and db_ok) or proc is None:
            raise _StatementError(2812, f"Could not find stored procedure '{name}'.", state=62)
        return proc

    @staticmethod
    def _batch_args(
        text: str, variables: dict[str, tuple[object, str]]
    ) -> list[tuple[str, object, str]]:
        args: list[tuple[str, object, str]] = []
        for raw in _split_outside_quotes(text, ",") if text.strip() else []:
            m = _ARG.match(raw)
            if m is None:
                raise _StatementError(102, f"Incorrect syntax near '{raw[:40]}'.")
            value_text = m["value"]
            value: object
            type_name = "int"
            if value_text.upper() == "NULL":
                value = None
            elif value_text.startswith("@"):
                if value_text.lower() not in variables:
                    raise _StatementError(137, f'Must declare the scalar variable "{value_text}".')
                value, type_name = variables[value_text.lower()]
            elif value_text[0] in "nN'":
                value, type_name = value_text.lstrip("nN")[1:-1].replace("''", "'"), "varchar"
            else:
                value = int(value_text)
                type_name = "int" if INT_MIN <= value <= INT_MAX else "bigint"
            args.append((m["name"] or "", value, type_name))
        return args

    @staticmethod
    def error_trailer(rows: Rows, rows_sent: int, number: int, text: str) -> bytes:
        """A statement error after ``rows_sent`` rows, where SQL Server raises it: inside the
        SELECT (DONEINPROC with ERROR), after which the procedure returns."""
        status = tokens.DONE_ERROR | (0 if rows.last else tokens.DONE_MORE)
        return (
            tokens.error(number, text, proc=rows.proc)
            + tokens.done(
                tokens.DONEINPROC,
                tokens.DONE_MORE | tokens.DONE_ERROR | tokens.DONE_COUNT,
                tokens.CMD_SELECT,
                rows_sent,
            )
            + tokens.returnstatus(RETURN_STATUS_AFTER_ERROR)
            + tokens.done(tokens.DONEPROC, status, tokens.CMD_EXECUTE)
        )

    # -- transactions -----------------------------------------------------------------------

    def _begin(self) -> bytes:
        self._next_transaction += 1
        self.transaction = self._next_transaction
        return tokens.env_begin_tran(self.transaction)

    def _end(self, commit: bool, begin_new: bool) -> bytes:
        if not self.transaction:
            number, verb = (3902, "COMMIT") if commit else (3903, "ROLLBACK")
            raise _StatementError(
                number, f"The {verb} TRANSACTION request has no corresponding BEGIN TRANSACTION."
            )
        kind = tokens.ENV_COMMIT_TRAN if commit else tokens.ENV_ROLLBACK_TRAN
        out = tokens.env_end_tran(kind, self.transaction)
        self.transaction = 0
        if begin_new:
            out += self._begin()
        return out

    def transaction_request(self, tx: requests.Transaction) -> Reply:
        try:
            if tx.request == requests.TM_BEGIN_XACT:
                payload = self._begin()
            elif tx.request in (requests.TM_COMMIT_XACT, requests.TM_ROLLBACK_XACT):
                payload = self._end(tx.request == requests.TM_COMMIT_XACT, tx.begin_new)
            else:
                raise _StatementError(
                    UNSUPPORTED_NUMBER,
                    f"Transaction-manager request {tx.request} is not supported by the dev server.",
                )
        except _StatementError as exc:
            return [exc.token() + tokens.done(tokens.DONE, tokens.DONE_ERROR)]
        return [payload + tokens.done(tokens.DONE, tokens.DONE_FINAL)]


@functools.cache
def _report_encoder() -> ReportEncoder:
    """One encoder for every call (its per-slot plans are built once)."""
    return ReportEncoder()


def _bind(proc: str, args: list[tuple[str, object, str]]) -> list[tuple[object, str]]:
    """The arguments bound to ``proc``'s parameters the way SQL Server binds them: (value,
    type name) per parameter, or the error SQL Server raises (201, 8144, 8145, 8146)."""
    params = PROCEDURES[proc]
    if not params and args:
        raise _StatementError(
            8146, f"Procedure {proc} has no parameters and arguments were supplied.", proc=proc
        )
    bound: dict[str, tuple[object, str]] = {}
    too_many = _StatementError(
        8144, f"Procedure or function {proc} has too many arguments specified.", proc=proc
    )
    for position, (name, value, type_name) in enumerate(args):
        if name:
            param = next((p for p in params if p.lower() == name.lower()), None)
            if param is None:
                raise _StatementError(
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
            raise _StatementError(
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
        raise _StatementError(THROW_NUMBER, ROW_COUNT_MESSAGE, proc=PROC_NAME, line=0)
    return count


def _columns_result(value: object, _type_name: str) -> columns.ColumnsResult:
    """@Spec NVARCHAR(MAX) read as a spColumns spec; a spec error is the procedure's THROW."""
    if value is None:
        raise _StatementError(
            THROW_NUMBER, f"{SPEC_PARAM_NAME} is NULL.", proc=COLUMNS_PROC_NAME, line=0
        )
    try:
        return columns.parse_spec(value if isinstance(value, str) else str(value))
    except SpecError as exc:
        raise _StatementError(
            THROW_NUMBER, f"{SPEC_PARAM_NAME}: {exc}", proc=COLUMNS_PROC_NAME, line=0
        ) from None


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
            raise _StatementError(8114, f"Error converting data type {type_name} to int.") from None
    else:
        raise _StatementError(206, f"Operand type clash: {type_name} is incompatible with int")
    if not INT_MIN <= result <= INT_MAX:
        raise _StatementError(
            8115, "Arithmetic overflow error converting expression to data type int."
        )
    return result
