"""The export API's errors: each knows its HTTP status, its stable code and its extra headers.

One base, :class:`ExportError`, which is also a ``RuntimeError``; handlers turn any of them
into ``{"error": {"message": ..., "code": ...}}``. Messages are written for the person reading
the JSON: no tracebacks, no driver internals, no addresses or operating-system error text,
never a password. What only an operator needs (the database's address, the socket's error)
goes in ``detail``, which the log shows and no answer carries.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping


class ExportError(RuntimeError):
    """Base of every error the API answers with a JSON body."""

    status = 500
    code = "INTERNAL_ERROR"
    # True for 503s: the response adds a Retry-After header (its value is configuration).
    retry_later = False

    def __init__(self, message: str, *, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail

    @property
    def for_log(self) -> str:
        """The message and, in parentheses, the detail (the log's words, never a client's)."""
        return f"{self.message} ({self.detail})" if self.detail else self.message

    @property
    def headers(self) -> Mapping[str, str]:
        return {}


class InvalidParameter(ExportError, ValueError):
    """A report parameter's value breaks its rule (type, bounds, a rule between two
    parameters); the message names the parameter and the rule, never the value. A catalog
    parameter may answer with a code of its own (the demo report's ``INVALID_ROW_COUNT``)."""

    status = 400
    code = "INVALID_PARAMETER"


class MissingParameter(ExportError, ValueError):
    status = 400
    code = "MISSING_PARAMETER"


class UnknownReport(ExportError, LookupError):
    """No report of the catalog has this id."""

    status = 404
    code = "UNKNOWN_REPORT"


class UnknownParameter(ExportError, ValueError):
    """A query parameter the endpoint does not know (a misspelt ``rowcount`` would otherwise
    silently give the default row count)."""

    status = 400
    code = "UNKNOWN_PARAMETER"


class NotFound(ExportError, LookupError):
    status = 404
    code = "NOT_FOUND"


class MethodNotAllowed(ExportError):
    status = 405
    code = "METHOD_NOT_ALLOWED"

    def __init__(self, message: str, allowed: Iterable[str]) -> None:
        super().__init__(message)
        self.allowed = tuple(sorted(allowed))

    @property
    def headers(self) -> Mapping[str, str]:
        return {"Allow": ", ".join(self.allowed)}


class _RetryLater(ExportError):
    """A 503: the request was fine; the answer carries the configured ``Retry-After``."""

    status = 503
    retry_later = True


class DatabaseUnavailable(_RetryLater, ConnectionError):
    """The database cannot be reached, or stopped answering (refused, reset, timed out)."""

    code = "DATABASE_UNAVAILABLE"


class TooManyExports(_RetryLater):
    """Every pooled connection is busy with another export."""

    code = "TOO_MANY_EXPORTS"


class ShuttingDown(_RetryLater):
    """The process received SIGTERM and takes no new exports."""

    code = "SHUTTING_DOWN"


class DatabaseError(ExportError):
    """The database answered with an error: a refused login, a missing procedure, an error
    raised by the query. Retrying will not help, so no ``Retry-After``."""

    code = "DATABASE_ERROR"


class DatabaseProtocolError(ExportError):
    """The database sent bytes the TDS protocol does not allow (a value of a length its
    column's type does not have, text longer than declared, a token the driver does not know):
    a broken or hostile server, or something in between. A 502, as a gateway answers an invalid
    reply from upstream; no ``Retry-After`` (the same reply is likely again). The column and the
    problem are the ``detail``, in the log."""

    status = 502
    code = "DATABASE_PROTOCOL_ERROR"


class DatabaseTimeout(ExportError, TimeoutError):
    """The database did not send the first row in time (whether or not it then acknowledged
    the cancel: a frozen database is a timeout to the client too)."""

    status = 504
    code = "DATABASE_TIMEOUT"


class NoResultSet(ExportError):
    """The report's procedure ended without returning a result set: nothing to write. The
    catalog (or the procedure) is wrong; retrying will not help."""

    code = "NO_RESULT_SET"


class RowLimitExceeded(ExportError):
    """The procedure returned more rows than the report's row limit (found mid-stream: the
    download is broken off, never finished as a truncated workbook)."""

    code = "ROW_LIMIT_EXCEEDED"


class InternalError(ExportError):
    """A bug on our side; the details are in the log, not in the answer."""


# The errors an export's worker can report, by code: the HTTP process rebuilds them from the
# code and message a worker sends (server.channel), so that they answer as if raised here.
_FROM_WORKERS: Mapping[str, type[ExportError]] = {
    cls.code: cls
    for cls in (
        DatabaseUnavailable,
        TooManyExports,
        ShuttingDown,
        DatabaseError,
        DatabaseProtocolError,
        DatabaseTimeout,
        NoResultSet,
        RowLimitExceeded,
        InternalError,
    )
}


def error_from_code(code: str, message: str) -> ExportError:
    """The error a worker reported (``code``, ``message``); an unknown code is an internal one."""
    return _FROM_WORKERS.get(code, InternalError)(message)
