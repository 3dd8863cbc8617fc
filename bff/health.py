"""The background readiness check: each API's ``GET /readyz``, on an interval, fed to the balancer.

One task per API, so a slow API never delays the check of another. The checks have their own
small session: they must not wait behind downloads for a pooled connection, and a download
must never reuse a connection a check left idle (or the other way round).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

import aiohttp

from bff.balancer import DOWN, NOT_READY, UP, Balancer, Target, connect_reason
from bff.proxy import DEFAULT_KEEPALIVE_S

log = logging.getLogger("bff")

READY_PATH = "/readyz"
# A /readyz answer is a few dozen bytes of JSON; anything longer is not the API's.
MAX_ANSWER_BYTES = 4096


def judge(status: int, body: bytes) -> tuple[str, str]:
    """(state, reason) from a /readyz answer: 200 is ready, anything else is not, with the
    API's error code as the reason when it sent one."""
    if status == 200:
        return UP, "ready"
    try:
        code = str(json.loads(body)["error"]["code"])
    except (ValueError, KeyError, TypeError):
        code = ""
    return NOT_READY, f"{READY_PATH} answered {status}" + (f" {code}" if code else "")


class HealthChecker:
    def __init__(self, balancer: Balancer, *, interval_s: float, timeout_s: float) -> None:
        self._balancer = balancer
        self._interval_s = interval_s
        self._timeout_s = timeout_s
        self._session: aiohttp.ClientSession | None = None
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        if not self._balancer.checked:
            return  # one API: nothing to choose between (see bff.balancer)
        # Two limits of timeout_s each: no connection within it means down (as for a
        # download), a connection that then sends nothing within it means not ready.
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=len(self._balancer.targets), keepalive_timeout=DEFAULT_KEEPALIVE_S
            ),
            timeout=aiohttp.ClientTimeout(
                total=None, sock_connect=self._timeout_s, sock_read=self._timeout_s
            ),
            cookie_jar=aiohttp.DummyCookieJar(),
            raise_for_status=False,
        )
        self._tasks = [
            asyncio.create_task(self._watch(target), name=f"readiness {target.url}")
            for target in self._balancer.targets
        ]

    async def close(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _watch(self, target: Target) -> None:
        while True:
            try:
                state, reason = await self.check(target)
            except Exception:  # a bug here must not end this API's checks for good
                log.exception("readiness check of %s failed", target.url)
            else:
                self._balancer.observe(target, state, reason)
            await asyncio.sleep(self._interval_s)

    async def check(self, target: Target) -> tuple[str, str]:
        assert self._session is not None, "HealthChecker.start() was not called"
        try:
            async with self._session.get(target.url + READY_PATH) as response:
                body = await response.content.read(MAX_ANSWER_BYTES)
                return judge(response.status, body)
        except (aiohttp.ConnectionTimeoutError, aiohttp.ClientConnectorError) as exc:
            # Caught first: a connect timeout is also a TimeoutError.
            return DOWN, f"{READY_PATH}: {connect_reason(exc)}"
        except TimeoutError:
            return NOT_READY, f"{READY_PATH}: no answer within {self._timeout_s:g} s"
        except (aiohttp.ClientError, OSError) as exc:
            return NOT_READY, f"{READY_PATH}: the connection broke before an answer ({exc})"
