"""Spreading downloads over several export APIs: what each is known to be, which is tried first.

The rules, in order:

1. An API that is **down** (a connection to it failed: refused, or not made within the
   connect timeout) is not chosen. A download that meets the failure marks it down on the
   spot and goes to the next API at once: nothing reached the failed one, and no byte has gone
   to our client yet. Only the background readiness check (``bff.health``) brings it back.
   With a single API there is no other to go to: it is neither checked nor skipped, but
   tried by every request, as a relay to one API always was (knowing it down would only turn
   its recovery into an interval of 502s), and a connection that succeeds marks it up again.
2. **Ready** APIs (their ``/readyz`` answered 200, or not checked yet) come before APIs that
   are reachable but **not ready** (``/readyz`` answered 503 or nothing in time). When none is
   ready, the not-ready ones are still tried: the check is up to one interval old, and the
   API's own answer (typically 503 + ``Retry-After`` with its reason: every connection busy,
   database unavailable, shutting down) is the better one to relay.
3. Among equals, the API with the fewest downloads running through this BFF; ties go round
   robin, starting after the API chosen last.

A download that an API answers ``503 SHUTTING_DOWN`` (it is draining after SIGTERM: it took
nothing and started nothing) goes to the next API the same way, and that API counts as not
ready until its next check; with no other API left the 503 is relayed. When no API is left to
try, the request fails with ``UpstreamUnavailable`` (our 502).
Everything here runs on the event loop: no locks, and a choice and its count happen without
an ``await`` between them, so concurrent requests see each other's choices.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import aiohttp

from bff.errors import UpstreamConnectFailed, UpstreamUnavailable
from bff.proxy import Upstream, read_bounded

log = logging.getLogger("bff")

UP: Final = "up"  # reachable and ready (or not checked yet)
NOT_READY: Final = "not_ready"  # reachable; /readyz answered other than 200, or not in time
DOWN: Final = "down"  # no connection could be made

# Why an API counted a failure (bff_upstream_failures_total's ``reason``).
FAILED_CONNECT: Final = "connect"  # a download's or HEAD's connection failed
FAILED_CHECK_DOWN: Final = "check_unreachable"  # a readiness check could not connect
FAILED_CHECK_NOT_READY: Final = "check_not_ready"  # a readiness check got no 200
FAILURE_REASONS: Final = (FAILED_CONNECT, FAILED_CHECK_DOWN, FAILED_CHECK_NOT_READY)

# The API's code for a request it refused because it is draining (server.errors.ShuttingDown).
SHUTTING_DOWN: Final = "SHUTTING_DOWN"
# A 503 whose code is looked at is read whole first: the API's JSON errors are ~100 bytes; a
# longer (or unsized) 503 is not the API's drain answer and is relayed unread.
_MAX_READ_503: Final = 4096


@dataclass(eq=False)
class Target:
    """One export API as the balancer sees it."""

    api: Upstream
    index: int  # position in the configured list: the round-robin order
    state: str = UP
    reason: str = "not checked yet"
    active: int = 0  # downloads running through this BFF
    downloads: Counter[str] = field(default_factory=Counter)  # by outcome
    failures: Counter[str] = field(default_factory=Counter)  # by reason

    @property
    def url(self) -> str:
        return self.api.base_url


class Balancer:
    def __init__(self, apis: Sequence[Upstream]) -> None:
        assert apis, "at least one API"
        self.targets = [Target(api, index) for index, api in enumerate(apis)]
        self._next = 0  # round robin: ties start from this index

    @property
    def checked(self) -> bool:
        """Whether readiness is checked in the background: with more than one API only."""
        return len(self.targets) > 1

    def pick(self, tried: Collection[Target] = ()) -> Target | None:
        """The API to try next (rules above), or None when every one is down or tried."""
        candidates = [
            t for t in self.targets if (t.state != DOWN or not self.checked) and t not in tried
        ]
        if not candidates:
            return None
        count = len(self.targets)
        best = min(
            candidates,
            key=lambda t: (t.state != UP, t.active, (t.index - self._next) % count),
        )
        self._next = (best.index + 1) % count
        return best

    def observe(self, target: Target, state: str, reason: str) -> None:
        """Record what a readiness check found; a check that failed counts as a failure."""
        if state == DOWN:
            target.failures[FAILED_CHECK_DOWN] += 1
        elif state == NOT_READY:
            target.failures[FAILED_CHECK_NOT_READY] += 1
        self._set(target, state, reason)

    def connected(self, target: Target) -> None:
        if target.state == DOWN:
            self._set(target, UP, "a connection succeeded")

    def shutting_down(self, target: Target) -> None:
        """It answered 503 SHUTTING_DOWN: not ready (a check brings it back, if ever)."""
        self._set(target, NOT_READY, "shutting down")

    def untried(self, tried: Collection[Target]) -> bool:
        """Whether :meth:`pick` would find another API (without moving the round robin)."""
        return any((t.state != DOWN or not self.checked) and t not in tried for t in self.targets)

    def connect_failed(self, target: Target, reason: str) -> None:
        target.failures[FAILED_CONNECT] += 1
        self._set(target, DOWN, reason)

    def _set(self, target: Target, state: str, reason: str) -> None:
        previous, target.state, target.reason = target.state, state, reason
        if state == previous:
            return
        if state == DOWN:
            others = "the others" if len(self.targets) > 1 else "none"
            log.warning("API %s is down (%s): downloads go to %s", target.url, reason, others)
        elif state == NOT_READY:
            log.info("API %s is not ready (%s): tried after ready ones", target.url, reason)
        else:
            log.info("API %s is up (%s)", target.url, reason)

    def lease(self, *, download: bool = True) -> Lease:
        return Lease(self, download=download)


class Lease:
    """One request's use of an API: which one it went to, and (for a download) counted in that
    API's active downloads from the moment it is chosen until :meth:`release`."""

    def __init__(self, balancer: Balancer, *, download: bool) -> None:
        self._balancer = balancer
        self._download = download
        self.target: Target | None = None  # the API last tried: the one that answered
        self._counted: Target | None = None  # whose active downloads count this one
        # The body of the answer returned by :meth:`open`, when it was read to find its code
        # (a download's 503): the relay sends these bytes, as the response's are consumed.
        self.prefetched: bytes | None = None

    async def open(
        self, path_and_query: str, headers: Mapping[str, str], *, method: str = "GET"
    ) -> aiohttp.ClientResponse:
        """The first API in the balancer's order that accepts a connection sends its status
        and headers; raises ``UpstreamUnavailable`` when none accepts, ``UpstreamTimeout``
        (with :attr:`target` set) when the one that accepted is too slow to answer."""
        tried: list[Target] = []
        while (target := self._balancer.pick(tried)) is not None:
            tried.append(target)
            self._hold(target)
            self.prefetched = None
            try:
                response = await target.api.open(path_and_query, headers, method=method)
            except UpstreamConnectFailed as exc:
                self.release()
                self.target = None
                self._balancer.connect_failed(target, connect_reason(exc))
                continue
            self._balancer.connected(target)
            draining = self._download and method == "GET" and await self._draining(response)
            if draining and self._balancer.untried(tried):
                response.close()
                self.release()
                self.target = None
                self._balancer.shutting_down(target)
                continue
            return response
        raise UpstreamUnavailable("The export service is unreachable.")

    async def _draining(self, response: aiohttp.ClientResponse) -> bool:
        """Whether a download's answer is the API's 503 SHUTTING_DOWN (its body then read
        into :attr:`prefetched`)."""
        size = response.content_length
        if response.status != 503 or size is None or size > _MAX_READ_503:
            return False
        try:
            self.prefetched = await read_bounded(response, _MAX_READ_503)
        except BaseException:
            response.close()
            raise
        try:
            code = json.loads(self.prefetched)["error"]["code"]
        except (ValueError, TypeError, KeyError):
            return False
        return bool(code == SHUTTING_DOWN)

    def record(self, outcome: str) -> None:
        """How the download ended, counted on the API it went to (if it reached one)."""
        if self._download and self.target is not None:
            self.target.downloads[outcome] += 1

    def release(self) -> None:
        """No longer running on its API (idempotent)."""
        if self._counted is not None:
            self._counted.active -= 1
            self._counted = None

    def _hold(self, target: Target) -> None:
        self.target = target
        if self._download:
            target.active += 1
            self._counted = target


def connect_reason(exc: BaseException) -> str:
    """Words for the log on why a connection to an API failed (``exc`` or its cause)."""
    cause = exc.__cause__ if isinstance(exc, UpstreamConnectFailed) else exc
    if isinstance(cause, aiohttp.ConnectionTimeoutError):
        return "connect timed out"
    if isinstance(cause, OSError) and cause.errno:
        return f"connect failed: {os.strerror(cause.errno).lower()}"
    return "connect failed"
