"""A bounded hand-off from one producer thread to the event loop.

The worker thread produces; the handler, on the loop, consumes and writes to the client. Items
travel through an ``asyncio.Queue`` fed with ``call_soon_threadsafe``; the bound is a
``threading.Semaphore`` of ``capacity`` slots that a counted item (a body chunk) takes before it
is queued and that the consumer gives back once the chunk has been written to the socket. A
client that reads slowly therefore stops the worker after ``capacity`` chunks, the worker stops
reading from the database, and TCP flow control carries the pause to the database server.
Control items (start, end, failure) are not counted, so they are never stuck behind chunks.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Handoff(Generic[T]):
    def __init__(self, loop: asyncio.AbstractEventLoop, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self._loop = loop
        self._queue: asyncio.Queue[T] = asyncio.Queue()
        self._slots = threading.Semaphore(capacity)

    def put(self, item: T, *, counted: bool, stop: Callable[[], bool], poll_s: float) -> bool:
        """Producer side; False if ``stop()`` became true while waiting, or the loop is gone."""
        if counted:
            while not self._slots.acquire(timeout=poll_s):
                if stop():
                    return False
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the loop was closed: nobody will ever read this
            return False
        return True

    async def get(self) -> T:
        """Consumer side: the next item, in order."""
        return await self._queue.get()

    def consumed(self) -> None:
        """Consumer side: a counted item has been fully written; its slot is free again."""
        self._slots.release()
