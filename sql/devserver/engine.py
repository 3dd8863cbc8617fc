"""The TDS replies of the dev server: what goes on the wire for each request, pure.

:class:`Session` keeps one connection's state (database, transaction) and builds the reply to a
login, a SQL batch, an RPC or a transaction-manager request as a :data:`Reply`: token payloads
(bytes) and :class:`Rows` placeholders that the I/O shell streams with backpressure.  What a
batch or RPC *means* is :mod:`sql.devserver.tsql`'s; this module only turns its statements and
errors into tokens.  The shapes follow SQL Server's: a procedure's result set is COLMETADATA,
ROW/NBCROW..., DONEINPROC (MORE|COUNT); counts (DONEINPROC), messages (INFO) and more result
sets may come before and after; then RETURNSTATUS, the RETURNVALUEs of OUTPUT parameters and
DONEPROC.  Every DONE* but the message's last has MORE.  :func:`procedure_reply` turns a
procedure's tokens and row sources, in order, into a reply.
"""

from __future__ import annotations

import dataclasses
import functools
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from sql import sales_data
from sql.devserver import columns, echo, requests, sales, sqltypes, tokens, tsql
from sql.devserver.errors import SpecError
from sql.devserver.resultset import ReportEncoder, ReportRows, colmetadata
from sql.devserver.rowsource import FirstRows, RowSource
from sql.devserver.script import Count, Info, Message
from sql.devserver.tsql import ROW_COUNT_MESSAGE as ROW_COUNT_MESSAGE
from sql.devserver.tsql import StatementError

# spDevServerStats' columns: the server's counters as BIGINT NOT NULL, in this order.
STATS_COLUMNS = (
    "connections_total",
    "connections_open",
    "logins_failed",
    "requests",
    "rows_sent",
    "attentions",
    "attentions_answered",
    "backpressure_pauses",
    "tls_handshakes",
    "tls_failures",
    "encryption_refused",
)
RETURN_STATUS_AFTER_ERROR = -6  # what SQL Server returns from a procedure a statement error ended

# TDS versions the server agrees to (LOGINACK echoes the highest not above the client's).
# DATE and DATETIME2 need 7.3; ALL_HEADERS needs 7.2.
TDS_VERSIONS = (0x74000004, 0x730B0003, 0x730A0003)


@dataclass(frozen=True, slots=True)
class Rows:
    """Stream the rows of ``source``, then ``trailer``; on a mid-stream error send
    :meth:`Session.error_trailer` instead and skip the ``skip_on_error`` parts that follow (the
    rest of the procedure: an error inside a SELECT ends it).  ``last`` says whether the
    procedure ends the message; ``proc`` names the procedure the rows come from."""

    source: RowSource
    trailer: bytes
    proc: str
    last: bool = False
    skip_on_error: int = 0

    @property
    def count(self) -> int:
        return self.source.count


Reply = list[bytes | Rows]


@dataclass(frozen=True, slots=True)
class Credentials:
    user: str
    password: str
    database: str


def error_token(exc: StatementError) -> bytes:
    return tokens.error(exc.number, exc.text, state=exc.state, proc=exc.proc, line=exc.line)


def _done_with_more_cleared(payload: bytes) -> bytes:
    """Clear MORE on the payload's trailing DONE* token (13 bytes: token, status, cmd, rows)."""
    if len(payload) < 13 or payload[-13] not in (tokens.DONE, tokens.DONEPROC, tokens.DONEINPROC):
        return payload + tokens.done(tokens.DONE, tokens.DONE_FINAL)
    status = int.from_bytes(payload[-12:-10], "little") & ~tokens.DONE_MORE
    return payload[:-12] + status.to_bytes(2, "little") + payload[-10:]


def finish_reply(parts: Reply) -> Reply:
    """Make the reply's last DONE* token final (no MORE), and mark the Rows of the procedure
    that ends the reply (a mid-stream error's DONEPROC is then the last token)."""
    if not parts:
        return [tokens.done(tokens.DONE, tokens.DONE_FINAL)]
    end = len(parts) - 1
    for i, part in enumerate(parts):
        if isinstance(part, Rows) and i + part.skip_on_error == end:
            parts[i] = dataclasses.replace(part, last=True)
    last = parts[-1]
    if isinstance(last, Rows):
        parts[-1] = dataclasses.replace(last, trailer=_done_with_more_cleared(last.trailer))
    else:
        parts[-1] = _done_with_more_cleared(last)
    return parts


def procedure_reply(proc: str, items: Sequence[bytes | RowSource]) -> Reply:
    """A procedure's reply from its tokens and row sources in the order they go out: each
    source becomes a :class:`Rows` whose trailer is the tokens up to the next source, and which
    knows how many parts of the procedure follow it (skipped if its rows end in an error)."""
    head = bytearray()
    sources: list[tuple[RowSource, bytearray]] = []
    for item in items:
        if isinstance(item, bytes):
            (sources[-1][1] if sources else head).extend(item)
        else:
            sources.append((item, bytearray()))
    parts: Reply = [bytes(head)] if head else []
    for i, (source, trailer) in enumerate(sources):
        parts.append(Rows(source, bytes(trailer), proc, skip_on_error=len(sources) - 1 - i))
    return parts


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
    return bytes(meta) + row + _done_select(1) + _proc_end()


def _done_count(count: int, curcmd: int) -> bytes:
    """DONEINPROC with a row count: a statement of the procedure (SET NOCOUNT OFF)."""
    return tokens.done(tokens.DONEINPROC, tokens.DONE_MORE | tokens.DONE_COUNT, curcmd, count)


def _done_select(count: int) -> bytes:
    """What follows a result set's rows: DONEINPROC with the row count."""
    return _done_count(count, tokens.CMD_SELECT)


def _proc_end(status: int = 0, return_values: bytes = b"") -> bytes:
    """What ends a procedure: RETURNSTATUS, its RETURNVALUEs, DONEPROC (MORE set:
    :func:`finish_reply` clears it on a message's last token)."""
    return (
        tokens.returnstatus(status)
        + return_values
        + tokens.done(tokens.DONEPROC, tokens.DONE_MORE, tokens.CMD_EXECUTE)
    )


def statement_error(proc: str, rows_sent: int, number: int, text: str, *, last: bool) -> bytes:
    """A statement error after ``rows_sent`` rows, where SQL Server raises it: inside the
    SELECT (DONEINPROC with ERROR), after which the procedure returns (``last``: its DONEPROC
    ends the message)."""
    status = tokens.DONE_ERROR | (0 if last else tokens.DONE_MORE)
    return (
        tokens.error(number, text, proc=proc)
        + tokens.done(
            tokens.DONEINPROC,
            tokens.DONE_MORE | tokens.DONE_ERROR | tokens.DONE_COUNT,
            tokens.CMD_SELECT,
            rows_sent,
        )
        + tokens.returnstatus(RETURN_STATUS_AFTER_ERROR)
        + tokens.done(tokens.DONEPROC, status, tokens.CMD_EXECUTE)
    )


def _info(message: Message, proc: str) -> bytes:
    return tokens.info(message.number, message.text, severity=message.severity, proc=proc)


def _sales_orders(call: tsql.SalesOrders) -> Reply:
    """INSERT INTO #Orders (its count), PRINT, SELECT the orders, SELECT the summary."""
    orders = sales.order_rows(call.start, call.end, call.region)
    summary = sales.summary_rows(call.start, call.end, call.region)
    text = sales_data.print_message(orders.count, call.start, call.end)
    return procedure_reply(
        tsql.SALES_ORDERS,
        [
            _done_count(orders.count, tokens.CMD_INSERT)
            + tokens.info(0, text, proc=tsql.SALES_ORDERS),
            sales.ORDER_COLMETADATA,
            orders,
            _done_select(orders.count) + summary.colmetadata,
            summary,
            _done_select(summary.count) + _proc_end(),
        ],
    )


def _echo(call: tsql.Echo) -> Reply:
    """One row of the arguments; no result set for no arguments (a SELECT needs a column)."""
    if not call.params:
        return [_proc_end()]
    try:
        result = echo.result(call.params)
    except SpecError as exc:
        raise tsql.thrown(tsql.ECHO, str(exc)) from None
    return [result + _done_select(1) + _proc_end()]


def _script(call: tsql.RunScript) -> Reply:
    """The script's steps in order; an error after some rows of a result ends the procedure
    there (its later steps, return status and outputs are not sent)."""
    script = call.script
    proc = tsql.SCRIPT
    items: list[bytes | RowSource] = []
    for step in script.steps:
        if isinstance(step, Count):
            items.append(_done_count(step.rows, tokens.CMD_INSERT))
        elif isinstance(step, Info):
            items.append(_info(step.message, proc))
        else:
            items.append(step.result.colmetadata)
            if (error := step.error_after_rows) is not None:
                items.append(FirstRows(step.result, error.rows))
                items.append(
                    statement_error(proc, error.rows, error.number, error.text, last=False)
                )
                return procedure_reply(proc, items)
            items.append(step.result)
            if step.info_after_rows is not None:
                items.append(_info(step.info_after_rows, proc))
            items.append(_done_select(step.result.count))
    # OUTPUT parameters the caller passed by reference, large (PLP) ones last as SQL Server
    # orders them (MS-TDS 2.2.7.19).
    returned = sorted(
        (o for o in script.outputs if o.name.lower() in call.ordinals),
        key=lambda o: o.type.framing(True) is sqltypes.Framing.PLP,
    )
    values = b"".join(
        tokens.returnvalue(
            call.ordinals[o.name.lower()], o.name, o.type.type_info(True), o.value_cell()
        )
        for o in returned
    )
    items.append(_proc_end(script.return_status, values))
    return procedure_reply(proc, items)


@functools.cache
def _report_encoder() -> ReportEncoder:
    """One encoder for every call (its per-slot encoders are built once)."""
    return ReportEncoder()


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
    _interpreter: tsql.Interpreter = field(init=False)

    def __post_init__(self) -> None:
        self._interpreter = tsql.Interpreter(self.credentials.database)

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
                tokens.error(tsql.UNSUPPORTED_NUMBER, text)
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
            tokens.error(tsql.UNSUPPORTED_NUMBER, text)
            + tokens.done(tokens.DONE, tokens.DONE_ERROR)
        ]

    def attention_done(self) -> bytes:
        return tokens.done(tokens.DONE, tokens.DONE_ATTN)

    def batch(self, text: str) -> Reply:
        return finish_reply(self._statements(self._interpreter.batch(text), in_batch=True))

    def rpc(self, rpc: requests.Rpc) -> Reply:
        try:
            call = self._interpreter.rpc(rpc)
            if isinstance(call, tsql.ExecuteSql):
                return self._sp_executesql(call)
            return finish_reply(self._call(call))
        except StatementError as exc:
            return [error_token(exc) + tokens.done(tokens.DONEPROC, tokens.DONE_ERROR)]

    def _sp_executesql(self, call: tsql.ExecuteSql) -> Reply:
        statements = self._interpreter.batch(call.text, call.variables)
        parts = self._statements(statements, in_batch=False)
        failed = any(isinstance(p, bytes) and tokens.ERROR in p[:1] for p in parts)
        parts.append(
            tokens.returnstatus(0)
            + tokens.done(tokens.DONEPROC, tokens.DONE_ERROR if failed else tokens.DONE_FINAL)
        )
        return finish_reply(parts)

    def _statements(
        self, statements: list[tsql.Statement | StatementError], *, in_batch: bool
    ) -> Reply:
        """Each statement's tokens, ending in a DONE (a batch) or DONEINPROC (sp_executesql)
        with MORE; an error is an ERROR and a DONE with ERROR, and the batch goes on."""
        done_token = tokens.DONE if in_batch else tokens.DONEINPROC
        parts: Reply = []
        for statement in statements:
            try:
                if isinstance(statement, StatementError):
                    raise statement
                parts.extend(self._statement(statement, done_token))
            except StatementError as exc:
                parts.append(
                    error_token(exc) + tokens.done(done_token, tokens.DONE_MORE | tokens.DONE_ERROR)
                )
        if not parts:
            parts.append(tokens.done(done_token, tokens.DONE_MORE))
        return parts

    def _statement(self, statement: tsql.Statement, done_token: int) -> Reply:
        more = tokens.DONE_MORE
        if isinstance(statement, tsql.SetOption):
            return [tokens.done(done_token, more, tokens.CMD_SET)]
        if isinstance(statement, tsql.UseDatabase):
            old, self.database = self.database, statement.database
            return [
                tokens.env_text(tokens.ENV_DATABASE, self.database, old)
                + tokens.info(5701, f"Changed database context to '{self.database}'.")
                + tokens.done(done_token, more)
            ]
        if isinstance(statement, tsql.SelectInteger):
            # COLMETADATA: one unnamed column, user type 0, flags 0, INTN(4).
            meta = struct.pack("<BHIH", tokens.COLMETADATA, 1, 0, 0) + b"\x26\x04" + b"\x00"
            row = bytes((tokens.ROW, 4)) + statement.value.to_bytes(4, "little", signed=True)
            return [
                meta + row + tokens.done(done_token, more | tokens.DONE_COUNT, tokens.CMD_SELECT, 1)
            ]
        if isinstance(statement, tsql.BeginTransaction):
            return [self._begin() + tokens.done(done_token, more)]
        if isinstance(statement, tsql.EndTransaction):
            if not self.transaction and statement.only_if_open:
                return [tokens.done(done_token, more)]
            return [self._end(statement.commit, False) + tokens.done(done_token, more)]
        return self._call(statement)

    def _call(self, call: tsql.Call) -> Reply:
        """A procedure's reply (without the message's final DONE)."""
        if isinstance(call, tsql.ServerStats):
            return [_stats_result(self.counters())]
        if isinstance(call, tsql.Columns):
            try:
                result = columns.parse_spec(call.spec)
            except SpecError as exc:
                raise tsql.thrown(tsql.COLUMNS, f"{tsql.SPEC_PARAM}: {exc}") from None
            return procedure_reply(
                tsql.COLUMNS,
                [result.colmetadata, result, _done_select(result.count) + _proc_end()],
            )
        if isinstance(call, tsql.SalesOrders):
            return _sales_orders(call)
        if isinstance(call, tsql.Echo):
            return _echo(call)
        if isinstance(call, tsql.RunScript):
            return _script(call)
        count = call.row_count
        rows = ReportRows(count, _report_encoder())
        return procedure_reply(
            tsql.GENERATE_DATA, [colmetadata(), rows, _done_select(count) + _proc_end()]
        )

    @staticmethod
    def error_trailer(rows: Rows, rows_sent: int, number: int, text: str) -> bytes:
        """A statement error after ``rows_sent`` rows of ``rows`` (an injected fault)."""
        return statement_error(rows.proc, rows_sent, number, text, last=rows.last)

    # -- transactions -----------------------------------------------------------------------

    def _begin(self) -> bytes:
        self._next_transaction += 1
        self.transaction = self._next_transaction
        return tokens.env_begin_tran(self.transaction)

    def _end(self, commit: bool, begin_new: bool) -> bytes:
        if not self.transaction:
            raise tsql.no_transaction(commit)
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
                raise StatementError(
                    tsql.UNSUPPORTED_NUMBER,
                    f"Transaction-manager request {tx.request} is not supported by the dev server.",
                )
        except StatementError as exc:
            return [error_token(exc) + tokens.done(tokens.DONE, tokens.DONE_ERROR)]
        return [payload + tokens.done(tokens.DONE, tokens.DONE_FINAL)]
