"""Per-client cap on concurrent downloads.

A client is the TCP peer address, not ``X-Forwarded-For``: that header is written by whoever
sends the request, so trusting it would let any client claim to be many clients (or someone
else). Behind a reverse proxy every request shares the proxy's address; put the limit in the
proxy there, or turn this one off.
"""

from __future__ import annotations


class ClientLimiter:
    def __init__(self, max_per_client: int) -> None:
        self._max = max_per_client
        self._active: dict[str, int] = {}

    @property
    def enabled(self) -> bool:
        return self._max > 0

    def try_acquire(self, client: str) -> bool:
        if not self.enabled:
            return True
        count = self._active.get(client, 0)
        if count >= self._max:
            return False
        self._active[client] = count + 1
        return True

    def release(self, client: str) -> None:
        if not self.enabled:
            return
        count = self._active.get(client, 0) - 1
        # Drop idle clients so the table only ever holds clients with a running download.
        if count <= 0:
            self._active.pop(client, None)
        else:
            self._active[client] = count

    def active(self, client: str) -> int:
        return self._active.get(client, 0)
