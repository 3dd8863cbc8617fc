"""The rows of the page's download: asked of the API that serves it, when the page asks.

Only the API knows how many rows an export has read (each frame of its channel says so). The
BFF relays bytes and never reads them, and it keeps no copy: it only counts them. So when the
page polls its download's status (``GET /exports/status/<ticket>``), the status handler asks
the API the download went to (the balancer's choice, remembered on the
:class:`~bff.downloads.Download`) for ``GET /progress/<ticket>``: the ticket is the download's
request id, which the API was given as ``X-Request-ID`` (``server.progress``). Its answer, a
few dozen bytes of counts, becomes the status's ``rows``.

Bounded work: nothing is asked for a download that is not streaming, at most one question per
download is in flight and at most one every :data:`MIN_INTERVAL_S`, each with
:data:`TIMEOUT_S` to be answered and :data:`MAX_ANSWER_BYTES` of body; once the download has
ended one last question fetches the final count (the API answers for a while after the end),
and then the download forgets the API. Any failure (an API without the endpoint, a timeout,
an unexpected answer) leaves the rows as they were: the status never fails for it, and shows
``rows: null`` when no count ever came.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Final

from bff.downloads import STREAMING, Download
from bff.errors import UpstreamTimeout, UpstreamUnavailable
from bff.proxy import Upstream, read_bounded
from httpedge.request_id import HEADER as REQUEST_ID_HEADER

# The API's path of an export's progress, by request id.
API_PROGRESS_PREFIX: Final = "/progress/"
# The page polls every 0.4 s; an API that takes longer than this to answer a lookup in memory
# is busy, and the page keeps the count it has.
TIMEOUT_S: Final = 2.0
# Questions to the API per download at most this often, however often its status is read.
MIN_INTERVAL_S: Final = 0.25
# The answer is {"rows": ..., "bytes": ..., "state": ...}: far below this.
MAX_ANSWER_BYTES: Final = 4096


async def refresh_progress(
    download: Download, *, clock: Callable[[], float] = time.monotonic
) -> None:
    """Update ``download.rows`` from its API, if there is anything to ask (see above)."""
    api = download.api
    if api is None or download.asking:
        return
    final = download.state != STREAMING
    now = clock()
    if not final and now - download.asked_at < MIN_INTERVAL_S:
        return
    download.asking, download.asked_at = True, now
    try:
        rows = await _ask(api, download.request_id)
    finally:
        download.asking = False
        if final:
            download.api = None  # the last question: nothing more to learn
    if rows is not None:
        download.rows = max(rows, download.rows or 0)


async def _ask(api: Upstream, request_id: str) -> int | None:
    """The rows the API reports for ``request_id``, or None for any failure."""
    headers = {REQUEST_ID_HEADER: request_id, "Accept": "application/json"}
    try:
        async with asyncio.timeout(TIMEOUT_S):
            response = await api.open(API_PROGRESS_PREFIX + request_id, headers)
            try:
                body = await read_bounded(response, MAX_ANSWER_BYTES)
            except BaseException:
                response.close()
                raise
            response.release()
    except (TimeoutError, UpstreamTimeout, UpstreamUnavailable):
        return None
    if response.status != 200:
        return None
    try:
        rows = json.loads(body)["rows"]
    except (ValueError, KeyError, TypeError):
        return None
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 0:
        return None
    return rows
