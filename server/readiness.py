"""``/readyz``: a round trip to the database, answered within the readiness timeout.

Ready means a ``SELECT 1`` came back on a pooled connection (or a new login), not merely that
a pooled socket looks open: a frozen database keeps its sockets open and answers nothing. The
round trip runs in a worker process (``server.worker.round_trip``), which owns the connections.

The answer does not wait for it past the timeout: a database that does not answer gets its 503
in time, and the round trip finishes on its own (its read sends a TDS attention after the same
timeout, and gives the connection up when that goes unanswered too). One round trip at a time:
requests arriving while one is running share it, so a probe storm (or a frozen database) never
ties up more than one of the pool's connections.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from server.errors import DatabaseUnavailable


class ReadinessProbe:
    def __init__(self, run: Callable[[], Awaitable[None]], *, timeout_s: float) -> None:
        """``run``: one round trip; returns when the database answered, raises the export's
        error otherwise."""
        self._run = run
        self._timeout_s = timeout_s
        self._running: asyncio.Future[None] | None = None

    async def check(self) -> None:
        """Return when the database answered; raise the export's error otherwise."""
        if self._running is None or self._running.done():
            running = asyncio.ensure_future(self._run())
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
