"""Who may use what the BFF relays (downloads and the report catalog), and how a refusal reads.

Both relayed endpoints admit the same requests: an ``Origin`` the CORS allowlist accepts
(``bff.cors``) and, when tokens are configured, a valid bearer token (``bff.auth``). Checking
them here, once, keeps the two from drifting apart: a client that may download may read the
catalog, and one refused a download is refused the catalog in the same words. The API's
failures to answer (unreachable, too slow) become refusals here too, for the same reason.

A :class:`Refusal` is what to answer, not yet an answer: a download also records it in its
tracked state and its metrics outcome, the catalog only answers it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from aiohttp import web

from bff.auth import BearerAuth
from bff.cors import CorsPolicy
from bff.errors import UpstreamTimeout, UpstreamUnavailable

FORBIDDEN_ORIGIN_MESSAGE = "This origin may not use this API."


@dataclass(frozen=True)
class Refusal:
    """A JSON error answer in the API's shape, with the download outcome it counts as
    (one of ``bff.metrics.OUTCOMES``) and any headers it needs."""

    status: int
    code: str
    message: str
    outcome: str
    headers: Mapping[str, str] = field(default_factory=dict)


def own_origin(request: web.BaseRequest) -> str:
    """The origin our own page is served from: never refused by the CORS allowlist."""
    return f"{request.scheme}://{request.host}"


class Gate:
    """The CORS allowlist and the bearer tokens, applied to one request."""

    def __init__(self, cors: CorsPolicy, auth: BearerAuth) -> None:
        self._cors = cors
        self._auth = auth

    def check(self, request: web.BaseRequest) -> Refusal | None:
        """Why this request may not use a relayed endpoint, or None when it may. The origin
        first: a page that may not call us at all learns nothing about our tokens."""
        if not self._cors.allows(request.headers.get("Origin"), own_origin(request)):
            return Refusal(403, "ORIGIN_NOT_ALLOWED", FORBIDDEN_ORIGIN_MESSAGE, "forbidden_origin")
        return self.authenticate(request)

    def authenticate(self, request: web.BaseRequest) -> Refusal | None:
        """The bearer-token check alone (``/metrics`` has no CORS: it is not for browsers)."""
        authorization = request.headers.get("Authorization")
        if self._auth.allows(authorization):
            return None
        return Refusal(
            401,
            "UNAUTHORIZED",
            "A valid bearer token is required.",
            "unauthorized",
            {"WWW-Authenticate": self._auth.challenge(authorization)},
        )

    def response_headers(self, request: web.BaseRequest) -> dict[str, str]:
        """The CORS headers an admitted request's answer carries (none for our own page)."""
        return self._cors.response_headers(request.headers.get("Origin"), own_origin(request))


def upstream_refusal(exc: UpstreamTimeout | UpstreamUnavailable) -> Refusal:
    """No usable answer from the API: 504 when it was too slow, else 502."""
    if isinstance(exc, UpstreamTimeout):
        return Refusal(504, "PROXY_TIMEOUT", str(exc), "proxy_timeout")
    return Refusal(502, "PROXY_ERROR", str(exc), "proxy_error")
