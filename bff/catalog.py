"""The report catalog, ``GET``/``HEAD /reports``: the API's list of reports, relayed whole.

It is the API's answer, not ours: the BFF does not know which reports exist (see
``bff.routes``), so it asks an API, through the balancer as downloads do, and relays the
status and JSON it gets (a 503 included). Unlike a download it is small and over at once, so
it is read whole and answered in one piece (with a Content-Length), it holds no per-client
download slot, gets no ticket or tracked state, and counts in no download metric or in any
API's active downloads. Being read whole, it is bounded: an answer over
:data:`MAX_CATALOG_BYTES` is refused (a 502) rather than held in memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from bff.balancer import Lease
from bff.proxy import read_bounded, relayed_headers
from bff.routes import API_REPORTS_PATH

# A catalog entry is a few hundred bytes (id, title, description, a few parameters): 1 MiB
# is thousands of reports, far beyond any real catalog, and still small to hold per request.
MAX_CATALOG_BYTES: Final = 1 << 20


@dataclass(frozen=True)
class Catalog:
    """The API's answer: status, the headers our client may see, the body (empty for HEAD),
    and for HEAD the length the API announced."""

    status: int
    reason: str | None
    headers: dict[str, str]
    body: bytes
    content_length: int | None


async def fetch_catalog(lease: Lease, headers: Mapping[str, str], *, method: str) -> Catalog:
    """Ask the API ``lease`` reaches for its catalog (``method``: GET or HEAD). Raises what
    ``Lease.open`` and ``read_bounded`` raise; the connection is reused only after an answer
    read to its end."""
    upstream = await lease.open(API_REPORTS_PATH, headers, method=method)
    try:
        body = b"" if method == "HEAD" else await read_bounded(upstream, MAX_CATALOG_BYTES)
    except BaseException:
        upstream.close()  # an unread or broken body: never back into the keep-alive pool
        raise
    upstream.release()
    return Catalog(
        upstream.status,
        upstream.reason,
        relayed_headers(upstream.headers),
        body,
        upstream.content_length,
    )
