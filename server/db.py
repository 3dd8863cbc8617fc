"""pytds connections that one thread owns and can interrupt from inside their own reads.

pytds blocks in ``recv_into`` while the database is silent (a slow first row, a stalled
stream), and cancelling from another thread breaks the connection (docs/driver.md: ``Invalid TDS
marker`` / ``EBADF``). So the socket pytds reads from is a :class:`WatchedSocket`: its reads
wait in slices of ``poll_interval_s`` and, between slices, on the owning thread itself:

- if the export was cancelled (client gone, shutdown) or the phase's silence limit passed
  (first row, between rows), it sends a TDS attention through pytds' own ``put_cancel`` and
  keeps reading: the server answers with a DONE carrying the ATTN flag, pytds consumes it and
  the connection stays usable (the same thing pytds does when a first-packet read times out);
- if no acknowledgement arrives within ``cancel_timeout_s``, it shuts the socket down and
  raises :class:`DatabaseStalled`; the connection is then discarded. This is the watchdog,
  run by the only thread allowed to touch the connection.

Why not pytds' own ``timeout=``: it raises ``TimeoutError`` out of whatever read was waiting.
At a token boundary pytds copes (measured against the dev server, which flushes at row
boundaries: the next ``fetchone`` goes on correctly), and before the first packet it sends
an attention itself; but a real server fills whole packets, so a wait often starts in the
middle of a row, where the half-parsed token would be lost. After login these reads never
raise a timeout into pytds.

Two pytds internals are used, both only here: the session (``_tds_socket.main_session``) for
``put_cancel``/``state``/``in_cancel``, and ``tds_base.TDS_IDLE``.
"""

from __future__ import annotations

import contextlib
import enum
import select
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any

import pytds
from pytds import tds_base, tds_types

from server.config import DbSettings
from server.dbtls import Encrypt, EncryptionError, TlsSettings, TlsTransport
from server.errors import DatabaseError, DatabaseProtocolError, DatabaseUnavailable, ExportError
from tdsrows import StreamError

# Error numbers SQL Server answers a login with when it will not accept it (bad credentials,
# locked or expired login, database not accessible): a configuration problem, not an outage.
_LOGIN_ERRORS = frozenset({18452, 18456, 18486, 18487, 18488, 4060})
APP_NAME = "xlsx-stream-export"


class DatabaseStalled(OSError):
    """A read that never finished: the server ignored an attention, or a login took too long.

    An ``OSError`` but deliberately not a ``ConnectionError``/``TimeoutError``: pytds retries
    logins after those (sleeping out the login budget); anything else ends the attempt at once.
    """


class Attention(enum.StrEnum):
    """Why an attention (MS-TDS 2.2.1.7) was sent on a connection; the text goes into logs and
    error messages."""

    CANCELLED = "cancelled"  # the download ended early, or its connection is being settled
    FIRST_ROW_TIMEOUT = "first-row timeout"  # the query produced nothing in time
    ROW_TIMEOUT = "between-rows timeout"  # the rows stopped coming
    READINESS_TIMEOUT = "readiness check"  # SELECT 1 was not answered in time


class WatchedSocket:
    """The transport pytds reads from (its ``TransportProtocol`` plus ``setsockopt``)."""

    def __init__(
        self,
        sock: socket.socket,
        *,
        poll_interval_s: float,
        cancel_timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        sock.settimeout(poll_interval_s)
        self._sock = sock
        self._poll_interval_s = poll_interval_s
        self._cancel_timeout_s = cancel_timeout_s
        self._clock = clock
        # What pytds asked for with settimeout(): the login budget, then None.
        self._requested_timeout: float | None = None
        # Set by the owner once logged in; until then a silence only counts against the budget.
        self._send_attention: Callable[[], None] | None = None
        self._cancel_requested: Callable[[], bool] = _never
        self._silence_limit_s: float | None = None
        self._silence_reason = Attention.ROW_TIMEOUT  # set by watch() with the limit
        self.attention_reason: Attention | None = None
        self._attention_at = 0.0

    # -- owner's controls ------------------------------------------------------------------

    def attach(self, send_attention: Callable[[], None]) -> None:
        self._send_attention = send_attention

    def watch(
        self,
        cancel_requested: Callable[[], bool],
        *,
        silence_limit_s: float | None,
        reason: Attention,
    ) -> None:
        """From now on, interrupt a read on cancellation or after ``silence_limit_s`` silent."""
        self._cancel_requested = cancel_requested
        self._silence_limit_s = silence_limit_s
        self._silence_reason = reason

    def attention_sent(self, reason: Attention) -> None:
        """Record that an attention is on its way (sent here, or by pytds' ``cancel()``)."""
        if self.attention_reason is None:
            self.attention_reason = reason
            self._attention_at = self._clock()

    def reset(self) -> None:
        """Back to an idle connection's state, before the pool lends it again."""
        self._cancel_requested = _never
        self._silence_limit_s = None
        self.attention_reason = None

    def has_pending_input(self) -> bool:
        """True if the peer closed or sent something unasked: an idle connection must not."""
        fd = self._sock.fileno()
        if fd < 0:  # closed
            return True
        # poll, not select: select() cannot watch descriptors >= 1024 (FD_SETSIZE).
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        return bool(poller.poll(0))

    def shutdown(self) -> None:
        """Wake any blocked read and end the connection (from any thread: no TDS involved)."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)

    # -- pytds' transport protocol -----------------------------------------------------------

    def settimeout(self, timeout: float | None) -> None:
        self._requested_timeout = timeout

    def gettimeout(self) -> float | None:
        return self._requested_timeout

    def setsockopt(self, *args: Any) -> None:
        self._sock.setsockopt(*args)

    def close(self) -> None:
        self._sock.close()

    def sendall(self, data: bytes, flags: int = 0) -> None:
        # Requests and attentions are a few hundred bytes: a send that cannot finish within
        # the cancel timeout means the server stopped reading altogether.
        self._sock.settimeout(self._cancel_timeout_s)
        try:
            self._sock.sendall(data, flags)
        except TimeoutError as exc:
            self.shutdown()
            raise DatabaseStalled("the database stopped accepting data") from exc
        finally:
            self._sock.settimeout(self._poll_interval_s)

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        started = self._clock()
        while True:
            try:
                return self._sock.recv_into(buffer, nbytes, flags)
            except TimeoutError:
                self._on_silence(started)

    def recv(self, size: int, flags: int = 0) -> bytes:
        started = self._clock()
        while True:
            try:
                return self._sock.recv(size, flags)
            except TimeoutError:
                self._on_silence(started)

    def _on_silence(self, started: float) -> None:
        now = self._clock()
        if self.attention_reason is not None:
            if now - self._attention_at >= self._cancel_timeout_s:
                self.shutdown()
                raise DatabaseStalled(
                    f"no answer to a cancel ({self.attention_reason}) "
                    f"within {self._cancel_timeout_s:g} s"
                )
            return
        if self._send_attention is None:
            budget = self._requested_timeout
            if budget is not None and now - started >= budget:
                raise DatabaseStalled(f"no answer from the database within {budget:g} s")
            return
        if self._cancel_requested():
            reason = Attention.CANCELLED
        elif self._silence_limit_s is not None and now - started >= self._silence_limit_s:
            reason = self._silence_reason
        else:
            return
        self.attention_sent(reason)
        self._send_attention()


def _never() -> bool:
    return False


class DbConnection:
    """One logged-in pytds connection and the socket it reads from."""

    def __init__(self, conn: Any, sock: WatchedSocket, *, created_at: float) -> None:
        self._conn = conn
        self._session = conn._tds_socket.main_session
        self.socket = sock
        self.created_at = created_at
        self.idle_since = created_at
        sock.attach(self._session.put_cancel)

    def cursor(self) -> Any:
        return self._conn.cursor()

    def is_idle(self) -> bool:
        """The last request was read to its end: a new one can be sent right away."""
        return bool(self._session.state == tds_base.TDS_IDLE and not self._session.in_cancel)

    def is_healthy(self) -> bool:
        """Cheap check before lending: protocol idle and nothing (not even EOF) on the socket."""
        return self.is_idle() and not self.socket.has_pending_input()

    def close(self) -> None:
        try:
            self._conn.close()
        except Exception:  # closing a dead connection may fail in many ways; it is gone anyway
            self.socket.close()


def connect(
    settings: DbSettings,
    *,
    poll_interval_s: float,
    cancel_timeout_s: float,
    receive_buffer: int | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> DbConnection:
    """Open a TCP connection and log in. ``receive_buffer``: the bytes the socket's receive
    buffer holds (None: the kernel's own, which grows to megabytes while an export's client
    holds the rows back).

    Raises :class:`DatabaseUnavailable` (503, retry later) when the database cannot be reached
    or stops answering, and :class:`DatabaseError` (500) when it answers but refuses the login:
    retrying a wrong password or a missing database only repeats the failure.
    """
    where = f"{settings.host}:{settings.port}"
    try:
        raw = socket.create_connection(
            (settings.host, settings.port), timeout=settings.login_timeout_s
        )
    except OSError as exc:
        raise DatabaseUnavailable(
            "the database cannot be reached", detail=f"connect to {where}: {detail_of(exc)}"
        ) from exc
    if receive_buffer is not None:  # Linux doubles the value given (socket(7))
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, max(receive_buffer // 2, 1))
    sock = WatchedSocket(raw, poll_interval_s=poll_interval_s, cancel_timeout_s=cancel_timeout_s)
    try:
        # pytds speaks plain TDS to this transport, which does the encryption (server.dbtls).
        transport = TlsTransport(sock, tls_settings(settings), settings.host)
        conn = pytds.connect(
            dsn=settings.host,
            port=settings.port,
            user=settings.user,
            password=settings.password,
            database=settings.database,
            sock=transport,
            autocommit=True,  # read-only exports; pytds would otherwise send BEGIN TRAN first
            login_timeout=settings.login_timeout_s,
            disable_connect_retry=True,
            blocksize=settings.packet_size,
            appname=APP_NAME,
        )
    except Exception as exc:
        sock.close()
        if is_server_error(exc):  # the server answered the login with an ERROR token
            raise _login_refused(_error_number(exc)) from exc
        encryption = _encryption_error(exc)
        if encryption is not None:
            raise DatabaseUnavailable(
                encryption.message, detail=f"login at {where}: {detail_of(exc)}"
            ) from exc
        raise DatabaseUnavailable(
            f"cannot log in to the database: {_what(exc)}",
            detail=f"login at {where}: {detail_of(exc)}",
        ) from exc
    return DbConnection(conn, sock, created_at=clock())


def tls_settings(settings: DbSettings) -> TlsSettings:
    return TlsSettings(
        encrypt=Encrypt(settings.encrypt),
        ca_file=settings.ca_file,
        host_name=settings.host_name_in_certificate,
        trust_server_certificate=settings.trust_server_certificate,
    )


def _encryption_error(exc: BaseException) -> EncryptionError | None:
    """The encryption failure behind ``exc`` (pytds may wrap what the transport raised)."""
    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None:
            return None
        if isinstance(seen, EncryptionError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def rpc_parameters(arguments: Mapping[str, tuple[str, object]]) -> dict[str, Any]:
    """Typed RPC parameters for ``cursor.callproc``: each procedure parameter name -> pytds'
    ``Param`` of the SQL type the catalog declares (not one guessed from the Python value), so
    the value reaches the procedure as that type's data and never as SQL text."""
    return {
        name: tds_base.Param(
            name=name, type=tds_types.sql_type_by_declaration(declaration), value=value
        )
        for name, (declaration, value) in arguments.items()
    }


def _error_number(exc: BaseException) -> int:
    return int(getattr(exc, "msg_no", 0) or 0)


def is_server_error(exc: BaseException) -> bool:
    """An error the server reported with an ERROR token: the connection itself is fine."""
    return isinstance(exc, tds_base.DatabaseError) and _error_number(exc) != 0


def _login_refused(number: int) -> DatabaseError:
    # Only the number: the server's text names the login, and the password is never ours to echo.
    return DatabaseError(f"the database refused the login (error {number})")


# pytds InterfaceErrors that are about the connection or the cursor, not about the bytes.
_CLOSED_MESSAGES = frozenset({"Connection closed", "Cursor is closed"})


def is_protocol_error(exc: BaseException) -> bool:
    """Bytes from the database that the protocol does not allow, as the row path
    (:class:`tdsrows.StreamError`: the column and the problem) or pytds (an InterfaceError such
    as an unknown token) found them: neither the server's error nor a lost connection."""
    if isinstance(exc, StreamError):
        return True
    return (
        isinstance(exc, tds_base.InterfaceError)
        and not isinstance(exc, tds_base.ClosedConnectionError)
        and str(exc.args[0] if exc.args else "") not in _CLOSED_MESSAGES
    )


def translate(exc: BaseException) -> ExportError:
    """A driver or socket exception as the error the client is told about."""
    if isinstance(exc, ExportError):
        return exc
    if is_protocol_error(exc):
        return DatabaseProtocolError(
            "the database sent data the TDS protocol does not allow", detail=str(exc)
        )
    number = _error_number(exc)
    if number in _LOGIN_ERRORS:  # e.g. 4060 from a ``use [db]`` the login sent
        return _login_refused(number)
    if is_server_error(exc):
        return DatabaseError(f"the database reported error {number}")
    return DatabaseUnavailable(f"lost the database connection: {_what(exc)}", detail=detail_of(exc))


def _what(exc: BaseException) -> str:
    """What went wrong with the connection, in words of our own: a client never sees our
    class names, the database's address or the operating system's error text (those are
    :func:`detail_of`'s, for the log)."""
    if isinstance(exc, DatabaseStalled | TimeoutError):
        return "the database stopped answering"
    return "the connection broke off"


def detail_of(exc: BaseException) -> str:
    """The exception as the log shows it: its class and text (the OS's words, the driver's)."""
    return f"{type(exc).__name__}: {exc}"
