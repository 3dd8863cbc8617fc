"""Waiting on the dev server's counters: conditions polled with a generous deadline, not sleeps."""

from __future__ import annotations

import time
from collections.abc import Callable

from sql.devserver import DevServer

# Generous: the machine is shared and loaded; a condition that holds returns at once anyway.
DEADLINE = 20.0
POLL = 0.01
# How long rows_sent must stay still to count as "production stopped".
STILL = 0.2


def wait_for(condition: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(POLL)


def production_stopped(server: DevServer, timeout: float = DEADLINE) -> int:
    """Waits until the server pauses on a client that does not read and its rows_sent stays
    still; returns rows_sent then."""
    wait_for(lambda: server.stats.backpressure_pauses > 0, "a backpressure pause", timeout)
    deadline = time.monotonic() + timeout
    previous = -1
    while (now := server.stats.rows_sent) != previous:
        if time.monotonic() > deadline:
            raise AssertionError("the server kept producing")
        previous = now
        time.sleep(STILL)
    return now
