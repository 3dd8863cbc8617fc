"""Optional bearer-token check (RFC 6750). Tokens are compared in constant time and never logged."""

from __future__ import annotations

import hmac
from collections.abc import Iterable

# Same realm on every challenge so clients can cache credentials per realm.
REALM = "xlsx-export"


class BearerAuth:
    """Accepts ``Authorization: Bearer <token>`` for any configured token; none configured = off."""

    def __init__(self, tokens: Iterable[str]) -> None:
        self._tokens = tuple(token.encode("utf-8") for token in tokens)

    @property
    def enabled(self) -> bool:
        return bool(self._tokens)

    def allows(self, authorization: str | None) -> bool:
        if not self._tokens:
            return True
        presented = _bearer(authorization)
        if presented is None:
            return False
        candidate = presented.encode("utf-8")
        # Compare against every token, never stopping early, so timing says nothing about
        # which token (or which prefix) matched.
        ok = False
        for token in self._tokens:
            ok |= hmac.compare_digest(candidate, token)
        return ok

    @staticmethod
    def challenge(authorization: str | None) -> str:
        """The ``WWW-Authenticate`` value: RFC 6750 says no error code when no token was sent."""
        if _bearer(authorization) is None:
            return f'Bearer realm="{REALM}"'
        return f'Bearer realm="{REALM}", error="invalid_token"'


def _bearer(authorization: str | None) -> str | None:
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        return None
    return token
