"""How far a running export is, by its request id: ``GET /progress/{request_id}``.

The BFF tracks the page's downloads by ticket and passes the ticket as the download's
``X-Request-ID``; the page's progress bar wants rows, which only the API knows (each frame of
an export's channel says how many rows it has read, :attr:`server.relay.Relay.rows`). So the
BFF's status handler asks the API that serves the download for this small answer::

    {"rows": 420000, "bytes": 33554432, "state": "streaming"}

``state`` is ``waiting`` (admitted, no byte sent yet: the procedure is running), ``streaming``
or ``finished`` (both halves of the export are over, whatever the outcome). An export that has
finished stays answerable for :data:`LINGER_S`, so a client that sees the download's end can
still read its final row count; at most :data:`MAX_FINISHED` finished ones are remembered.

Counts and that state are all it tells: not the report, its parameters, the client or the
outcome (the BFF knows its own download's outcome). Any other id, one that is not well formed,
or one that two running exports share (two clients sent the same ``X-Request-ID``), is a
``404 NOT_FOUND``. Nothing here holds a byte of any download.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from httpedge.request_id import is_well_formed
from server.errors import NotFound
from server.relay import Relay

PROGRESS_PREFIX: Final = "/progress/"
# A client polls while the download runs and asks once more right after it ends: half a
# minute is far more than that takes, and short enough that the table stays small.
LINGER_S: Final = 30.0
# Finished exports remembered at once: more than a busy API ends within LINGER_S.
MAX_FINISHED: Final = 1024

WAITING: Final = "waiting"
STREAMING: Final = "streaming"
FINISHED: Final = "finished"


@dataclass(frozen=True)
class Progress:
    rows: int
    bytes: int
    state: str

    def to_json(self) -> dict[str, object]:
        return {"rows": self.rows, "bytes": self.bytes, "state": self.state}


def progress_of(relay: Relay) -> Progress:
    """A running export's progress as its relay knows it."""
    state = WAITING if relay.first_byte_s is None else STREAMING
    return Progress(relay.rows, relay.bytes_sent, state)


class ProgressBoard:
    """The running exports (``running()``, the API's own set of relays) and the recently
    finished ones, looked up by request id."""

    def __init__(
        self,
        running: Callable[[], Iterable[Relay]],
        *,
        linger_s: float = LINGER_S,
        max_finished: int = MAX_FINISHED,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._running = running
        self._linger_s = linger_s
        self._max_finished = max_finished
        self._clock = clock
        # request id -> (final progress, when it ends being answered); oldest first.
        self._finished: OrderedDict[str, tuple[Progress, float]] = OrderedDict()

    def finished(self, relay: Relay) -> None:
        """An export is over (both halves): keep its final counts for a while."""
        self._drop_expired()
        self._finished.pop(relay.request_id, None)
        self._finished[relay.request_id] = (
            Progress(relay.rows, relay.bytes_sent, FINISHED),
            self._clock() + self._linger_s,
        )
        while len(self._finished) > self._max_finished:
            self._finished.popitem(last=False)

    def lookup(self, request_id: str) -> Progress:
        """The progress of the export with this request id, or the 404."""
        if is_well_formed(request_id):
            matches = [r for r in self._running() if r.request_id == request_id]
            if len(matches) == 1:
                return progress_of(matches[0])
            if not matches:
                self._drop_expired()
                entry = self._finished.get(request_id)
                if entry is not None:
                    return entry[0]
        raise NotFound("no export with this request id is running")

    def _drop_expired(self) -> None:
        now = self._clock()
        while self._finished:
            oldest = next(iter(self._finished))
            if self._finished[oldest][1] > now:
                break
            del self._finished[oldest]
