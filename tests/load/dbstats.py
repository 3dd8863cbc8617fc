"""The TDS dev server's own counters, read over TDS like any query.

The dev server answers ``EXEC dbo.spDevServerStats`` with one row of BIGINT counters
(connections_total, connections_open, logins_failed, requests, rows_sent, attentions,
attentions_answered, backpressure_pauses). A real SQL Server has no such procedure; the
harness then reports the database side as not measured.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytds

STATS_PROCEDURE = "dbo.spDevServerStats"
# A local login takes milliseconds; 10 s still ends a run whose database is gone.
LOGIN_TIMEOUT_S = 10


@dataclass(frozen=True)
class DbTarget:
    host: str
    port: int
    user: str
    password: str
    database: str


def read_stats(target: DbTarget) -> dict[str, int]:
    """The counters as a name -> value mapping, on a connection of our own (which the
    counters include: one connection and one request per call, open while it runs)."""
    with (
        pytds.connect(
            dsn=target.host,
            port=target.port,
            user=target.user,
            password=target.password,
            database=target.database,
            autocommit=True,
            login_timeout=LOGIN_TIMEOUT_S,
        ) as connection,
        connection.cursor() as cursor,
    ):
        cursor.callproc(STATS_PROCEDURE, ())
        row = cursor.fetchone()
        names = [str(column[0]) for column in cursor.description]
        while cursor.nextset():
            pass
    if row is None:
        raise ValueError(f"{STATS_PROCEDURE} returned no row")
    return {name: int(value) for name, value in zip(names, row, strict=True)}


def try_read_stats(target: DbTarget) -> tuple[dict[str, int] | None, str]:
    """(counters, "") or (None, why not): a database without the procedure (a real SQL
    Server, an older dev server) is reported as not measured rather than failing the run."""
    try:
        return read_stats(target), ""
    except (pytds.Error, OSError, ValueError) as exc:
        return None, f"{STATS_PROCEDURE} not readable: {exc}"
