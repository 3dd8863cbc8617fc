"""``/readyz``: a round trip to the database, answered within the readiness timeout.

Ready means a ``SELECT 1`` came back on a pooled connection (or a new login), not merely that
a pooled socket looks open: a frozen database keeps its sockets open and answers nothing.

The round trip runs on a worker thread (pytds blocks). The answer does not wait for it past
the timeout: a database that does not answer gets its 503 in time, and the thread finishes
on its own (its read sends a TDS attention after the same timeout, and gives the connection
up when that goes unanswered too). One round trip at a time: requests arriving while one is
running share it, so a probe storm (or a frozen database) never ties up more than one of the
pool's connections.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from server.db import DbConnection, is_server_error
from server.errors import DatabaseError, DatabaseUnavailable
from server.pool import ConnectionPool

PROBE_QUERY = "SELECT 1"
_REASON = "readiness check"


def _never() -> bool:
    return False


def round_trip(pool: ConnectionPool[DbConnection], timeout_s: float) -> None:
    """Lease a connection, run ``SELECT 1``, give the connection back if still clean. Raises
    the export's own errors: 503 busy or unreachable, 500 login refused. Blocking."""
    lease = pool.lease()
    conn: DbConnection | None = None
    clean = False
    try:
        conn, _ = lease.acquire()
        conn.socket.reset()
        conn.socket.watch(_never, silence_limit_s=timeout_s, reason=_REASON)
        cursor = conn.cursor()
        try:
            cursor.execute(PROBE_QUERY)
            rows = cursor.fetchall()
        except Exception as exc:
            if is_server_error(exc):
                raise DatabaseError("the database answered a test query with an error") from exc
            raise DatabaseUnavailable("the database did not answer a test query") from exc
        if conn.socket.attention_reason is not None or rows != [(1,)]:
            raise DatabaseUnavailable(f"the database did not answer within {timeout_s:g} s")
        clean = conn.is_idle()
    finally:
        lease.release(conn, reusable=clean)


class ReadinessProbe:
    def __init__(
        self,
        pool: ConnectionPool[DbConnection],
        *,
        timeout_s: float,
        run: Callable[[ConnectionPool[DbConnection], float], None] = round_trip,
    ) -> None:
        self._pool = pool
        self._timeout_s = timeout_s
        self._run = run
        self._running: asyncio.Future[None] | None = None

    async def check(self) -> None:
        """Return when the database answered; raise the export's error otherwise."""
        if self._running is None or self._running.done():
            running = asyncio.ensure_future(
                asyncio.to_thread(self._run, self._pool, self._timeout_s)
            )
            # Every waiter may have given up before it ends: retrieve the outcome regardless,
            # so a late failure is never reported as "exception was never retrieved".
            running.add_done_callback(_consume)
            self._running = running
        try:
            await asyncio.wait_for(asyncio.shield(self._running), self._timeout_s)
        except TimeoutError:
            raise DatabaseUnavailable(
                f"the database did not answer within {self._timeout_s:g} s"
            ) from None


def _consume(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()
