"""Waiting for a condition in tests: one helper, in a blocking and an asynchronous variant.

Timing tests never sleep a fixed time and then assert: they poll for the condition that says
the thing happened, with a deadline generous enough for a loaded machine, and fail with a
message naming what never happened. Both variants take the same arguments:

    poll(lambda: server.stats.attentions == 1, what="an attention")
    await apoll(lambda: api.pool.in_use == 0, within=60, what="the pool idle")

and return the condition's first truthy value. (``apoll``: ``a`` for async, as in ``anext``.)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")

# Far above anything a condition needs on an idle machine (milliseconds to a second or two),
# far below pytest's per-test timeout (180 s), so a wait that fails says what it waited for.
DEFAULT_WITHIN_S = 30.0
# Short enough not to add noticeable latency to a test, long enough not to busy-spin a core of
# a 2-core machine that the code under test needs.
INTERVAL_S = 0.02


def poll(condition: Callable[[], T], *, within: float = DEFAULT_WITHIN_S, what: str) -> T:
    """Call ``condition()`` until it returns a truthy value, blocking this thread; return it.

    Fails the test after ``within`` seconds with "timed out after ... waiting for {what}".
    """
    __tracebackhide__ = True
    deadline = time.monotonic() + within
    while not (value := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within:g} s waiting for {what}")
        time.sleep(INTERVAL_S)
    return value


async def apoll(condition: Callable[[], T], *, within: float = DEFAULT_WITHIN_S, what: str) -> T:
    """:func:`poll` for a coroutine: sleeps on the event loop, so the loop's own tasks
    (a server under test, say) keep running while it waits."""
    __tracebackhide__ = True
    deadline = time.monotonic() + within
    while not (value := condition()):
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within:g} s waiting for {what}")
        await asyncio.sleep(INTERVAL_S)
    return value
