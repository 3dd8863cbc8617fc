"""CORS allowlist. Empty list = CORS off: no CORS headers, browsers keep their same-origin rule.

With a list, a browser request whose ``Origin`` is neither listed nor our own is refused with
403 before any database work starts (a cross-site page could otherwise start exports it cannot
read, which still costs the database).
"""

from __future__ import annotations

from collections.abc import Iterable

# How long browsers may cache a preflight answer (Chromium caps it at 2 hours anyway).
DEFAULT_PREFLIGHT_MAX_AGE_S = 600
ALLOWED_METHODS = "GET"
ALLOWED_REQUEST_HEADERS = "Authorization, X-Request-ID"
# Headers a cross-origin script may read: the filename, the id to quote in a bug report, and
# how long to wait after a 429/503.
EXPOSED_HEADERS = "Content-Disposition, X-Request-ID, Retry-After"


class CorsPolicy:
    def __init__(self, origins: Iterable[str]) -> None:
        self._origins = frozenset(origins)

    @property
    def enabled(self) -> bool:
        return bool(self._origins)

    def allows(self, origin: str | None, own_origin: str) -> bool:
        """Whether a request with this ``Origin`` may proceed (no header = not a CORS request)."""
        if not self.enabled or origin is None or origin == own_origin:
            return True
        return "*" in self._origins or origin in self._origins

    def response_headers(self, origin: str | None, own_origin: str) -> dict[str, str]:
        if not self.enabled or origin is None or origin == own_origin:
            return {}
        if not self.allows(origin, own_origin):
            return {}
        return {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Expose-Headers": EXPOSED_HEADERS,
            "Vary": "Origin",
        }

    def preflight_headers(self, origin: str) -> dict[str, str]:
        return {
            "Access-Control-Allow-Origin": origin,
            "Access-Control-Allow-Methods": ALLOWED_METHODS,
            "Access-Control-Allow-Headers": ALLOWED_REQUEST_HEADERS,
            "Access-Control-Max-Age": str(DEFAULT_PREFLIGHT_MAX_AGE_S),
            "Vary": "Origin",
        }
