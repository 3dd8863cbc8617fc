"""What the page can learn about its own download: a small table of tickets the BFF issued.

A browser download is a navigation, so the page cannot read its status or headers. Before
each download the page asks us for a ticket (``POST /exports/ticket``): a random 128-bit id
that we issue and remember, handed back as JSON and in a short-lived cookie. The download
request that carries that cookie claims the ticket (once: a second request with the same
cookie is not tracked) and its state is recorded under it; the page polls
``GET /exports/status/<id>``. Ids a client makes up, in the cookie or in ``X-Request-ID``,
never create or change an entry, so nobody can read or overwrite another person's download
state without its unguessable id. Both tables are bounded (oldest entries dropped) and hold
nothing beyond state, status, byte and row counts, the API's error message and, while the
download runs, which API serves it (``bff.progress`` asks that API for the rows it has read).

Each client (the TCP peer address, as for the download limit in ``bff.limits``) holds a few
unclaimed tickets at most: without that bound one client's flood of ``POST /exports/ticket``
would push every other person's ticket out of the table before their download claims it, and
their page would lose its download's status.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from bff.config import DEFAULT_MAX_TICKETS_PER_CLIENT
from bff.proxy import Upstream
from httpedge.request_id import new_request_id

# Enough for every download a busy instance runs in the few minutes a page keeps polling;
# each entry is a few hundred bytes.
DEFAULT_MAX_TRACKED = 2048
# The page claims its ticket with the download request it starts right after asking for one;
# the cookie that carries it lives as long (Max-Age), and an unclaimed ticket is dropped then.
TICKET_TTL_S = 60
# Tickets waiting to be claimed: many more than pages start downloads within the TTL.
DEFAULT_MAX_TICKETS = 2048
# The API's error bodies are a few hundred bytes of JSON; anything longer is not an error message.
MAX_ERROR_BODY = 4096

WAITING = "waiting"  # asked the API, no headers yet
STREAMING = "streaming"  # headers relayed, body flowing
COMPLETED = "completed"  # body relayed to the end
FAILED = "failed"  # an error answer (4xx/5xx), relayed whole
ABORTED = "aborted"  # the transfer broke off mid-body; the partial file is not valid
CANCELLED = "cancelled"  # our client went away


@dataclass
class Download:
    request_id: str
    # The report's id, for the log and the per-report metrics; not in the status JSON (the
    # page that polls it started the download and knows which report it asked for).
    report: str | None = None
    state: str = WAITING
    status: int | None = None
    size: int = 0  # body bytes relayed so far
    rows: int | None = None  # rows the API has read, as it last said (``bff.progress``)
    message: str | None = None
    code: str | None = None
    # The API serving the download, while its rows are still worth asking for.
    api: Upstream | None = None
    asking: bool = False  # a question to the API is in flight
    asked_at: float = float("-inf")  # when the last one was sent (monotonic clock)

    def as_json(self) -> dict[str, object]:
        error = None if self.message is None else {"message": self.message, "code": self.code}
        return {
            "requestId": self.request_id,
            "state": self.state,
            "status": self.status,
            "bytes": self.size,
            "rows": self.rows,
            "error": error,
        }

    def fail(self, status: int, body: bytes) -> None:
        """Record an error answer; ``body`` is the JSON error shape of the API or of the BFF."""
        self.state = FAILED
        self.status = status
        try:
            error = json.loads(body)["error"]
            self.message, self.code = str(error["message"]), str(error.get("code", ""))
        except (ValueError, KeyError, TypeError):
            self.message, self.code = f"The server answered HTTP {status}.", None


class DownloadTable:
    def __init__(
        self,
        max_tracked: int = DEFAULT_MAX_TRACKED,
        *,
        max_tickets: int = DEFAULT_MAX_TICKETS,
        max_tickets_per_client: int = DEFAULT_MAX_TICKETS_PER_CLIENT,
        ticket_ttl_s: float = TICKET_TTL_S,
        clock: Callable[[], float] = time.monotonic,
        new_id: Callable[[], str] = new_request_id,
    ) -> None:
        self._max = max_tracked
        self._max_tickets = max_tickets
        self._max_tickets_per_client = max_tickets_per_client
        self._ticket_ttl_s = ticket_ttl_s
        self._clock = clock
        self._new_id = new_id
        self._items: OrderedDict[str, Download] = OrderedDict()
        # id -> (when issued, to which client), oldest first; and each client's count of them.
        self._tickets: OrderedDict[str, tuple[float, str]] = OrderedDict()
        self._held: dict[str, int] = {}

    def issue(self, client: str) -> str | None:
        """A new ticket for ``client``: an id only we can hand out, claimable once within the
        TTL; None when the client already holds as many unclaimed tickets as it may."""
        self._drop_expired_tickets()
        held = self._held.get(client, 0)
        if 0 < self._max_tickets_per_client <= held:
            return None
        ticket = self._new_id()
        self._tickets[ticket] = (self._clock(), client)
        self._held[client] = held + 1
        while len(self._tickets) > self._max_tickets:
            self._forget(next(iter(self._tickets)))
        return ticket

    def held(self, client: str) -> int:
        """How many unclaimed, unexpired tickets ``client`` holds."""
        self._drop_expired_tickets()
        return self._held.get(client, 0)

    def claim(self, ticket: str) -> Download | None:
        """The tracked download for an issued, unclaimed, unexpired ticket; else None."""
        self._drop_expired_tickets()
        if ticket not in self._tickets:
            return None
        self._forget(ticket)
        download = Download(ticket)
        self._items[ticket] = download
        while len(self._items) > self._max:
            self._items.popitem(last=False)
        return download

    def get(self, ticket: str) -> Download | None:
        return self._items.get(ticket)

    def _drop_expired_tickets(self) -> None:
        deadline = self._clock() - self._ticket_ttl_s
        while self._tickets:
            oldest, (issued, _) = next(iter(self._tickets.items()))
            if issued > deadline:
                break
            self._forget(oldest)

    def _forget(self, ticket: str) -> None:
        _, client = self._tickets.pop(ticket)
        # Drop clients that hold none, so the count table never outgrows the ticket table.
        left = self._held[client] - 1
        if left:
            self._held[client] = left
        else:
            del self._held[client]
