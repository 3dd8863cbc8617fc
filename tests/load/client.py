"""The load itself: a bounded number of asyncio clients working through a plan.

Each client is one aiohttp request on its own TCP connection (like a browser's download), read
according to its behaviour, and every 200 body is checked as it arrives
(:class:`~tests.load.verify.XlsxStreamChecker`), never stored, then against what the run's
report must hold (:func:`~tests.load.expect.check_download`).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import json
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp
from yarl import URL

from tests.load.errors import InvalidDownload
from tests.load.expect import Expectation, check_download
from tests.load.plan import Behaviour, Request
from tests.load.verify import XlsxStreamChecker

# Largest error body read: the API's JSON errors are a few hundred bytes.
MAX_ERROR_BODY = 64 * 1024
# A slow reader reads this often (and this share of its rate each time), so its rate is even
# at the scale of the 100 ms samples instead of one burst per second.
SLOW_READ_INTERVAL_S = 0.1
# Bytes asked for per read by the other clients: aiohttp's own read buffer size.
READ_SIZE = 64 * 1024


class Outcome(enum.StrEnum):
    COMPLETED = "completed"  # 200, whole body, a valid workbook holding what was asked for
    INVALID = "invalid"  # 200 and the body ended, but it is not that workbook
    ABORTED = "aborted"  # the client went away on purpose
    TIMEOUT = "timeout"  # the harness's per-request time limit cut it
    BROKEN = "broken"  # the server or the network ended it early (connection error)
    REFUSED_AS_EXPECTED = "refused_as_expected"  # a bad request answered 400 with its code
    ERROR = "error"  # any other status, or a 400 with another code


class AbortPhase(enum.StrEnum):
    """Where a client-side close (planned abort or timeout) landed."""

    BEFORE_HEADERS = "before_headers"  # no response yet: the query may not have started
    IN_BODY = "in_body"  # part of the body received


@dataclass
class Result:
    index: int
    behaviour: Behaviour
    query: str  # as sent
    started_s: float  # since the start of the run
    ended_s: float = 0.0
    outcome: Outcome = Outcome.BROKEN
    status: int | None = None
    code: str | None = None  # the JSON error code, if any
    bytes: int = 0
    first_byte_s: float | None = None  # from the request's start to its first body byte
    rows: int = 0  # data rows in a verified workbook, over all its sheets
    refusal: str | None = None  # a bad request's: the code its 400 must carry
    abort_phase: AbortPhase | None = None
    abort_not_reached: bool = False  # an aborting client whose download completed first
    detail: str = ""

    @property
    def duration_s(self) -> float:
        return self.ended_s - self.started_s

    @property
    def error_key(self) -> str:
        """``"503 TOO_MANY_EXPORTS"``, ``"broken"``...: how the report groups failures."""
        if self.status is not None and self.status != 200:
            return f"{self.status} {self.code or '(no code)'}"
        return self.outcome.value


@dataclass
class Live:
    """Counters the samplers read from their threads while the load runs (plain ints: one
    writer, the event loop; readers only look)."""

    in_flight: int = 0
    downloading: int = 0  # 200 received, body still coming
    bytes: int = 0
    rows_verified: int = 0
    done: int = 0


@dataclass(frozen=True)
class ClientSettings:
    base_url: str
    path: str
    slow_rate_bps: int
    request_timeout_s: float
    verify: bool = True
    xml_check: bool = True  # parse each sheet's XML (see tests.load.sheets)
    expected: Expectation | None = None  # what a download must hold (None: structure only)


class _Abort(Exception):
    """The planned number of bytes arrived: go away now."""


def request_url(settings: ClientSettings, query: str) -> URL:
    """The export URL with ``query`` (already percent-encoded) sent exactly as given."""
    return URL(f"{settings.base_url.rstrip('/')}{settings.path}?{query}", encoded=True)


async def run_request(
    session: aiohttp.ClientSession,
    settings: ClientSettings,
    request: Request,
    live: Live,
    clock_zero: float,
) -> Result:
    loop = asyncio.get_running_loop()
    start = loop.time()
    result = Result(request.index, request.behaviour, request.query, start - clock_zero)
    result.refusal = request.refusal
    planned_s = request.abort_after_seconds
    limit_s = settings.request_timeout_s
    planned_first = planned_s is not None and planned_s < limit_s
    deadline = start + (planned_s if planned_s is not None and planned_first else limit_s)
    headers_seen = False
    live.in_flight += 1
    try:
        async with asyncio.timeout_at(deadline):
            async with session.get(request_url(settings, request.query)) as response:
                headers_seen = True
                result.status = response.status
                if response.status != 200:
                    await _read_error(response, request, result)
                else:
                    live.downloading += 1
                    try:
                        await _read_body(response, settings, request, result, live, start)
                    except _Abort:
                        response.close()
                        result.outcome = Outcome.ABORTED
                        result.abort_phase = AbortPhase.IN_BODY
                    finally:
                        live.downloading -= 1
    except TimeoutError:
        result.outcome = Outcome.ABORTED if planned_first else Outcome.TIMEOUT
        result.abort_phase = AbortPhase.IN_BODY if headers_seen else AbortPhase.BEFORE_HEADERS
        if result.outcome is Outcome.TIMEOUT:
            result.detail = f"no end within {limit_s:g} s"
    except (aiohttp.ClientError, OSError) as exc:
        result.outcome = Outcome.BROKEN
        result.detail = f"{type(exc).__name__}: {exc}".strip(": ")
    finally:
        live.in_flight -= 1
        live.done += 1
        result.ended_s = loop.time() - clock_zero
    if request.behaviour is Behaviour.ABORT and result.outcome is not Outcome.ABORTED:
        result.abort_not_reached = result.outcome is Outcome.COMPLETED
    return result


async def _read_error(response: aiohttp.ClientResponse, request: Request, result: Result) -> None:
    body = await response.content.read(MAX_ERROR_BODY)
    with contextlib.suppress(ValueError, AttributeError, TypeError):
        result.code = str(json.loads(body)["error"]["code"])
        result.detail = str(json.loads(body)["error"]["message"])
    refusal = request.refusal
    if refusal is not None and response.status == 400 and result.code == refusal:
        result.outcome = Outcome.REFUSED_AS_EXPECTED
    else:
        result.outcome = Outcome.ERROR


async def _read_body(
    response: aiohttp.ClientResponse,
    settings: ClientSettings,
    request: Request,
    result: Result,
    live: Live,
    start: float,
) -> None:
    loop = asyncio.get_running_loop()
    checker = XlsxStreamChecker(xml_check=settings.xml_check) if settings.verify else None
    slow = request.behaviour is Behaviour.SLOW
    piece = max(1, int(settings.slow_rate_bps * SLOW_READ_INTERVAL_S)) if slow else READ_SIZE
    abort_at = request.abort_after_bytes
    body_start = 0.0
    while True:
        want = piece if abort_at is None else min(piece, abort_at - result.bytes)
        reader = response.content
        data = await (reader.read(want) if slow or abort_at else reader.readany())
        if not data:
            break
        now = loop.time()
        if result.first_byte_s is None:
            result.first_byte_s = now - start
            body_start = now
        result.bytes += len(data)
        live.bytes += len(data)
        if checker is not None:
            try:
                checker.feed(data)
            except InvalidDownload as exc:
                result.outcome = Outcome.INVALID
                result.detail = str(exc)
                response.close()
                return
        if abort_at is not None and result.bytes >= abort_at:
            raise _Abort
        if slow:
            ahead = body_start + result.bytes / settings.slow_rate_bps - loop.time()
            if ahead > 0:
                await asyncio.sleep(ahead)
    if request.behaviour is Behaviour.BAD:
        result.outcome = Outcome.ERROR
        result.detail = "a request the API must refuse was answered with a body"
        return
    if checker is None:
        result.outcome = Outcome.COMPLETED
        return
    try:
        verdict = checker.finish()
        if settings.expected is not None:
            check_download(verdict, settings.expected)
    except InvalidDownload as exc:
        result.outcome = Outcome.INVALID
        result.detail = str(exc)
        return
    result.rows = verdict.data_rows
    live.rows_verified += verdict.data_rows
    result.outcome = Outcome.COMPLETED


async def run_load(
    plan: Sequence[Request],
    settings: ClientSettings,
    *,
    concurrency: int,
    duration_s: float | None,
    live: Live,
) -> tuple[list[Result], float]:
    """Run ``plan`` with at most ``concurrency`` requests at once; no request starts after
    ``duration_s``. Returns the results (in plan order) and the wall time in seconds."""
    loop = asyncio.get_running_loop()
    clock_zero = loop.time()
    stop_at = None if duration_s is None else clock_zero + duration_s
    queue: asyncio.Queue[Request] = asyncio.Queue()
    for request in plan:
        queue.put_nowait(request)
    results: list[Result] = []
    # One connection per request (force_close): an abort closes exactly its own connection,
    # as a browser's cancelled download does, and no request waits behind another's body.
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    timeout = aiohttp.ClientTimeout(total=None, connect=settings.request_timeout_s)
    async with aiohttp.ClientSession(
        connector=connector, timeout=timeout, auto_decompress=False
    ) as session:

        async def worker() -> None:
            while not queue.empty():
                if stop_at is not None and loop.time() >= stop_at:
                    return
                request = queue.get_nowait()
                results.append(await run_request(session, settings, request, live, clock_zero))

        await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    wall = loop.time() - clock_zero
    results.sort(key=lambda r: r.index)
    return results, wall
