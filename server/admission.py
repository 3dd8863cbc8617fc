"""The service's export concurrency limit, decided at once in the HTTP process.

Every export and every readiness check holds a slot from the moment it is admitted until its
worker has given its database connection back; ``--pool-max`` slots in all, across every
worker. Past the limit the answer is 503 ``TOO_MANY_EXPORTS`` at once, never a wait behind
someone else's million-row export. Used on the event loop only.
"""

from __future__ import annotations

from server.errors import ShuttingDown, TooManyExports


class Admission:
    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"the limit must be at least 1, got {limit}")
        self.limit = limit
        self.taken = 0
        self._closed = False

    def take(self) -> None:
        """Hold a slot (give it back with :meth:`give_back`), or raise the 503 that says why not."""
        if self._closed:
            raise ShuttingDown("the service is shutting down")
        if self.taken >= self.limit:
            raise TooManyExports(
                f"all {self.limit} database connections are busy; try again shortly"
            )
        self.taken += 1

    def give_back(self) -> None:
        if self.taken <= 0:
            raise RuntimeError("a slot was given back that was never taken")
        self.taken -= 1

    def check(self) -> None:
        """What :meth:`take` would answer now, holding nothing (``HEAD``)."""
        self.take()
        self.give_back()

    def close(self) -> None:
        """No more slots: every later :meth:`take` is ``SHUTTING_DOWN``."""
        self._closed = True
