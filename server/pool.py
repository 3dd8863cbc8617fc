"""A bounded, thread-safe pool of database connections.

- Bounded: at most ``max_size`` connections are lent at once. :meth:`ConnectionPool.lease`
  never waits: when every slot is taken it raises :class:`TooManyExports` at once (the
  client gets 503 + Retry-After instead of a request parked behind someone's 1M-row export).
- Lazy: nothing is opened until a lease asks for a connection; ``min_size`` is how many idle
  connections are kept when the idle timeout would otherwise close them. Expiry runs whenever
  a connection is given back and when the owner calls :meth:`ConnectionPool.expire_idle`
  (the API does so periodically, so a burst's connections do not stay open forever).
- Health-checked on checkout without a query (an idle connection whose socket is readable
  has been closed by the server, or is out of step) and replaced after fatal errors: the
  borrower says whether the connection is still clean when it gives it back.
- Recovers by itself: a database that went away leaves dead idle connections, which fail the
  checkout check and are dropped; the next lease connects anew.

Connections are opened and checked on the borrower's (worker) thread, never on the event loop.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Generic, Protocol, TypeVar

from server.errors import ShuttingDown, TooManyExports


class Poolable(Protocol):
    idle_since: float

    def is_healthy(self) -> bool: ...

    def close(self) -> None: ...


C = TypeVar("C", bound=Poolable)


class ConnectionPool(Generic[C]):
    def __init__(
        self,
        connect: Callable[[], C],
        *,
        min_size: int,
        max_size: int,
        idle_timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 <= min_size <= max_size or max_size < 1:
            raise ValueError(
                f"need 0 <= min_size <= max_size, 1 <= max_size: {min_size=} {max_size=}"
            )
        self._connect = connect
        self.min_size = min_size
        self.max_size = max_size
        self._idle_timeout_s = idle_timeout_s
        self._clock = clock
        self._lock = threading.Lock()
        self._idle: list[C] = []  # most recently returned last
        self._in_use = 0
        self._closed = False

    @property
    def in_use(self) -> int:
        """Slots lent out (including leases still connecting)."""
        with self._lock:
            return self._in_use

    @property
    def idle(self) -> int:
        with self._lock:
            return len(self._idle)

    def lease(self) -> Lease[C]:
        """Reserve a slot now (non-blocking); the connection itself comes from the lease."""
        with self._lock:
            if self._closed:
                raise ShuttingDown("the service is shutting down")
            if self._in_use >= self.max_size:
                raise TooManyExports(
                    f"all {self.max_size} database connections are busy; try again shortly"
                )
            self._in_use += 1
        return Lease(self)

    def _checkout(self) -> tuple[C, bool]:
        """An idle healthy connection (reused=True) or a new one; called by a lease holder."""
        while True:
            with self._lock:
                candidate = self._idle.pop() if self._idle else None
            if candidate is None:
                return self._connect(), False
            if candidate.is_healthy():
                return candidate, True
            candidate.close()

    def _give_back(self, conn: C | None, *, reusable: bool) -> None:
        expired: list[C] = []
        with self._lock:
            self._in_use -= 1
            if conn is not None:
                if reusable and not self._closed:
                    conn.idle_since = self._clock()
                    self._idle.append(conn)
                else:
                    expired.append(conn)
            expired += self._expire_locked()
        for stale in expired:
            stale.close()

    def _expire_locked(self) -> list[C]:
        """Idle connections above ``min_size`` that idled longer than the timeout (oldest first)."""
        deadline = self._clock() - self._idle_timeout_s
        expired: list[C] = []
        while len(self._idle) > self.min_size and self._idle[0].idle_since <= deadline:
            expired.append(self._idle.pop(0))
        return expired

    def expire_idle(self) -> int:
        """Close idle connections above ``min_size`` that idled past the timeout; how many."""
        with self._lock:
            expired = self._expire_locked()
        for stale in expired:
            stale.close()
        return len(expired)

    def close(self) -> None:
        """Close idle connections; connections still lent out are closed when given back."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


class Lease(Generic[C]):
    """One reserved slot. Exactly one :meth:`release` per lease, on every path."""

    def __init__(self, pool: ConnectionPool[C]) -> None:
        self._pool = pool
        self._released = False

    def acquire(self) -> tuple[C, bool]:
        """Blocking (connects if needed): the connection and whether it was reused."""
        return self._pool._checkout()

    def release(self, conn: C | None, *, reusable: bool) -> None:
        if self._released:
            return
        self._released = True
        self._pool._give_back(conn, reusable=reusable)
