"""What the page can learn about its own download: a small table keyed by request id.

A browser download is a navigation, so the page cannot read its status or headers. The page
picks an unguessable request id, hands it to us in a short-lived cookie on the download
request, and polls ``GET /exports/status/<id>``. The table is bounded (oldest entries dropped)
and holds no data beyond state, status, byte count and the API's error message.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass

# Enough for every download a busy instance runs in the few minutes a page keeps polling;
# each entry is a few hundred bytes.
DEFAULT_MAX_TRACKED = 2048
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
    state: str = WAITING
    status: int | None = None
    size: int = 0  # body bytes relayed so far
    message: str | None = None
    code: str | None = None

    def as_json(self) -> dict[str, object]:
        error = None if self.message is None else {"message": self.message, "code": self.code}
        return {
            "requestId": self.request_id,
            "state": self.state,
            "status": self.status,
            "bytes": self.size,
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
    def __init__(self, max_tracked: int = DEFAULT_MAX_TRACKED) -> None:
        self._max = max_tracked
        self._items: OrderedDict[str, Download] = OrderedDict()

    def begin(self, request_id: str) -> Download:
        download = Download(request_id)
        self._items[request_id] = download
        self._items.move_to_end(request_id)
        while len(self._items) > self._max:
            self._items.popitem(last=False)
        return download

    def get(self, request_id: str) -> Download | None:
        return self._items.get(request_id)
