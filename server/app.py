"""The export API: aiohttp's low-level server, one handler and a dispatch table of our own.

:class:`ExportApi` is the whole service; tests start it in their own event loop
(``async with ExportApi(config) as api``: ``api.port``), ``server.__main__`` runs it as a
process. Routes: ``GET``/``HEAD`` ``/export/report``, ``/healthz``, ``/readyz``, ``/metrics``;
any other path is a 404 and any other method a 405 with ``Allow``, both as JSON. The
connection-level limits (header timeout, connection cap, request sizes) and the JSON answers
to requests that are not valid HTTP come from :class:`httpedge.listener.EdgeServer`.

Every response carries ``X-Request-ID``: the client's (the BFF's) when well formed, else a new
one; export log lines name it, so one download can be followed through both services' logs.

Clients that go away are noticed through aiohttp's ``handler_cancellation``: when the
connection is lost the handler task is cancelled, also while it waits for the first row, and
the handler turns that into the export's cancel flag.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import functools
import itertools
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType

from aiohttp import web

from httpedge import forwarded
from httpedge.listener import EdgeLimits, EdgeServer, break_off
from httpedge.request_id import HEADER as REQUEST_ID_HEADER
from httpedge.request_id import request_id_of
from server import db, report
from server.config import ApiConfig
from server.db import DbConnection
from server.errors import (
    DatabaseError,
    DatabaseTimeout,
    DatabaseUnavailable,
    ExportError,
    InternalError,
    MethodNotAllowed,
    NotFound,
    ShuttingDown,
    TooManyExports,
)
from server.export import ExportJob, Failed, Finished, Started
from server.memory import ProcessMemory, mib
from server.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from server.metrics import Metrics, Outcome
from server.pool import ConnectionPool
from server.readiness import ReadinessProbe
from server.responses import download_headers, error_response, json_response
from server.rowcount import PARAMETER as ROW_COUNT_PARAMETER
from server.rowcount import parse_row_count, reject_unknown

logger = logging.getLogger("server")

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]
REQUEST_ID = web.RequestKey("request_id", str)

# After the grace period, handlers still streaming are cancelled; aiohttp then gets this long
# to close their connections.
_CANCEL_HANDLERS_TIMEOUT_S = 1.0
_SHUTDOWN_POLL_S = 0.05
# Idle-connection expiry runs this many times per pool idle timeout, so a connection above
# the pool's minimum stays open at most 1.5 timeouts after its last export.
_IDLE_CHECKS_PER_TIMEOUT = 2


def _outcome_of(error: ExportError) -> Outcome:
    if isinstance(error, DatabaseError | DatabaseUnavailable | DatabaseTimeout):
        return Outcome.DB_ERROR
    if isinstance(error, TooManyExports | ShuttingDown):
        return Outcome.REJECTED
    return Outcome.INTERNAL_ERROR


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


class ExportApi:
    def __init__(
        self,
        config: ApiConfig,
        *,
        now: Callable[[], datetime.datetime] = _utc_now,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self._now = now
        self._clock = clock
        connect = functools.partial(
            db.connect,
            config.db,
            poll_interval_s=config.poll_interval_s,
            cancel_timeout_s=config.cancel_timeout_s,
        )
        self.pool: ConnectionPool[DbConnection] = ConnectionPool(
            connect,
            min_size=config.pool_min,
            max_size=config.pool_max,
            idle_timeout_s=config.pool_idle_timeout_s,
        )
        self.metrics = Metrics()
        self.memory = ProcessMemory()
        self.readiness = ReadinessProbe(self.pool, timeout_s=config.readiness_timeout_s)
        self._proxies = forwarded.TrustedProxies(config.trusted_proxies)
        # HEAD wherever GET is (RFC 9110 section 9.3.2): aiohttp sends a HEAD answer's headers
        # without its body; the export's own HEAD stops before the procedure would run.
        self._routes: Mapping[str, Mapping[str, Handler]] = {
            "/export/report": {"GET": self._export_report, "HEAD": self._export_head},
            "/healthz": {"GET": self._healthz, "HEAD": self._healthz},
            "/readyz": {"GET": self._readyz, "HEAD": self._readyz},
            "/metrics": {"GET": self._metrics, "HEAD": self._metrics},
        }
        self._ids = itertools.count(1)
        self._jobs: set[ExportJob] = set()
        self._request_ids: dict[ExportJob, str] = {}  # under _jobs_lock
        self._jobs_lock = threading.Lock()
        self._shutting_down = False
        self.server: EdgeServer | None = None
        self._listener: asyncio.Server | None = None
        self._expiry: asyncio.Task[None] | None = None
        self.port = 0

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.server = EdgeServer(
            self._handle,
            limits=EdgeLimits(
                header_timeout_s=self.config.header_timeout_s,
                max_connections=self.config.max_connections,
            ),
            logger=logger,
        )
        self._listener = await loop.create_server(self.server, self.config.host, self.config.port)
        self.port = int(self._listener.sockets[0].getsockname()[1])
        self._expiry = asyncio.create_task(self._expire_idle_connections())
        logger.info(
            "export API listening on http://%s:%d (database %s:%d/%s, pool %d..%d)",
            self.config.host,
            self.port,
            self.config.db.host,
            self.config.db.port,
            self.config.db.database,
            self.config.pool_min,
            self.config.pool_max,
        )

    async def close(self, grace_s: float | None = None) -> None:
        """Stop accepting, let exports finish within the grace period, abort the rest, exit."""
        grace = self.config.shutdown_grace_s if grace_s is None else grace_s
        self._shutting_down = True
        if self._listener is not None:
            self._listener.close()
        if self.server is not None:
            self.server.pre_shutdown()  # keep-alive connections close after this response
        running = self.active_exports
        if running:
            logger.info("shutting down: waiting up to %g s for %d export(s)", grace, running)
        await self._wait_for_exports(grace)
        if self.server is not None:
            # Cancels the handlers still running; each cancels its worker and aborts its response.
            await self.server.shutdown(_CANCEL_HANDLERS_TIMEOUT_S)
        # Workers answer a cancel within poll interval + cancel timeout; then the pool is closed.
        await self._wait_for_exports(self.config.cancel_timeout_s + self.config.poll_interval_s)
        if self.active_exports:
            logger.warning("shutting down with %d export(s) still running", self.active_exports)
        if self._expiry is not None:
            self._expiry.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._expiry
        self.pool.close()
        logger.info("export API stopped")

    async def __aenter__(self) -> ExportApi:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def active_exports(self) -> int:
        with self._jobs_lock:
            return len(self._jobs)

    async def _expire_idle_connections(self) -> None:
        """Close connections idle past the pool's timeout even when no export comes to do it."""
        interval = self.config.pool_idle_timeout_s / _IDLE_CHECKS_PER_TIMEOUT
        while True:
            await asyncio.sleep(interval)
            closed = await asyncio.to_thread(self.pool.expire_idle)  # closing may block
            if closed:
                logger.info("closed %d idle database connection(s)", closed)

    async def _wait_for_exports(self, timeout_s: float) -> None:
        deadline = self._clock() + timeout_s
        # Exports end on worker threads as often as on the loop; polling a lock-protected
        # count is simpler than waking the loop from every thread, and only runs at shutdown.
        while self.active_exports and self._clock() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(_SHUTDOWN_POLL_S)

    # -- dispatch -----------------------------------------------------------------------------

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        request_id = request_id_of(request.headers)
        request[REQUEST_ID] = request_id
        response = await self._dispatch(request)
        if not response.prepared:  # a download sets it itself, before its headers go out
            response.headers[REQUEST_ID_HEADER] = request_id
        return response

    async def _dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        methods = self._routes.get(request.path)
        if methods is None:
            return self._error(NotFound("no such resource"))
        handler = methods.get(request.method)
        if handler is None:
            allowed = ", ".join(sorted(methods))
            return self._error(
                MethodNotAllowed(f"this method is not allowed here; use {allowed}", methods.keys())
            )
        try:
            return await handler(request)
        except ExportError as exc:
            return self._error(exc)
        except Exception:
            # A bug: the details go to the log, the client gets the JSON shape, not a traceback.
            logger.exception("unexpected error answering %s %s", request.method, request.path)
            return self._error(InternalError("internal error"))

    def _check_accepting(self) -> None:
        if self._shutting_down:
            raise ShuttingDown("the service is shutting down")

    def _error(self, error: ExportError) -> web.Response:
        return error_response(error, retry_after_s=self.config.retry_after_s)

    # -- small endpoints ------------------------------------------------------------------------

    async def _healthz(self, request: web.BaseRequest) -> web.StreamResponse:
        return json_response(200, {"status": "ok"})

    async def _readyz(self, request: web.BaseRequest) -> web.StreamResponse:
        """Ready when a ``SELECT 1`` comes back within the readiness timeout. Not ready:
        503 + Retry-After while the database is unreachable, silent or every connection is
        busy, 500 when it refuses the login (as an export would be answered)."""
        try:
            self._check_accepting()
            await self.readiness.check()
        except ExportError as exc:
            return self._error(exc)
        return json_response(200, {"status": "ready"})

    async def _metrics(self, request: web.BaseRequest) -> web.StreamResponse:
        text = self.metrics.render(
            pool_idle=self.pool.idle,
            pool_in_use=self.pool.in_use,
            resident_memory_bytes=self.memory.rss(),
        )
        if self.server is not None:
            text += self.server.metrics_text("http")
        return web.Response(body=text.encode(), headers={"Content-Type": METRICS_CONTENT_TYPE})

    # -- the export ---------------------------------------------------------------------------

    def _row_count(self, request: web.BaseRequest) -> int:
        """The query, checked: unknown names first (a misspelt rowCount), then rowCount."""
        reject_unknown(request.query.keys())
        return parse_row_count(
            request.query.getall(ROW_COUNT_PARAMETER, []),
            default=self.config.default_row_count,
            maximum=self.config.max_row_count,
        )

    def _client(self, request: web.BaseRequest) -> str:
        """The peer, and the client a trusted proxy relayed for (logs only)."""
        peer = request.remote or "unknown"
        client = self._proxies.client_of(peer, request.headers.getall(forwarded.HEADER, []))
        return peer if client is None else f"{client} via {peer}"

    async def _export_head(self, request: web.BaseRequest) -> web.StreamResponse:
        """What a GET would answer before its body, with no database work: 400 for a bad
        query, 503 while shutting down or every connection is busy, else the download's
        headers (a database error can only show on the GET itself)."""
        self._row_count(request)
        self._check_accepting()
        self.pool.lease().release(None, reusable=False)  # busy: the GET's own 503
        response = web.StreamResponse(
            headers=download_headers(report.download_filename(self._now()))
        )
        response.enable_chunked_encoding()  # as the GET; aiohttp sends neither on a HEAD
        return response

    async def _export_report(self, request: web.BaseRequest) -> web.StreamResponse:
        request_id = request[REQUEST_ID]
        try:
            row_count = self._row_count(request)
        except ExportError as exc:
            self.metrics.request_refused(Outcome.INVALID)
            return self._error(exc)
        try:
            self._check_accepting()
            lease = self.pool.lease()
        except ExportError as exc:
            logger.warning("request %s: export refused: %s", request_id, exc.message)
            self.metrics.request_refused(Outcome.REJECTED)
            return self._error(exc)
        job = ExportJob(
            export_id=next(self._ids),
            lease=lease,
            row_count=row_count,
            config=self.config,
            loop=asyncio.get_running_loop(),
            memory=self.memory,
            on_complete=self._export_complete,
            clock=self._clock,
        )
        with self._jobs_lock:
            self._jobs.add(job)
            self._request_ids[job] = request_id
        self.metrics.export_started()
        logger.info(
            "export %d (request %s): %d rows requested by %s",
            job.export_id,
            request_id,
            row_count,
            self._client(request),
        )
        job.start()
        try:
            return await self._stream(request, job)
        finally:
            job.handler_done(job.outcome)

    async def _stream(self, request: web.BaseRequest, job: ExportJob) -> web.StreamResponse:
        """Wait for the worker's first word, then relay chunks; sets ``job.outcome``."""
        response = web.StreamResponse(
            headers={
                **download_headers(report.download_filename(self._now())),
                REQUEST_ID_HEADER: request[REQUEST_ID],
            }
        )
        try:
            event = await job.next_event()
            if isinstance(event, Failed):
                job.outcome = _outcome_of(event.error)
                return self._error(event.error)
            if not isinstance(event, Started):
                raise InternalError(f"worker sent {type(event).__name__} before Started")
            await response.prepare(request)
            job.first_byte_s = self._clock() - job.started_at
            while True:
                event = await job.next_event()
                if isinstance(event, bytes):
                    await asyncio.wait_for(
                        response.write(event), self.config.client_write_timeout_s
                    )
                    job.chunk_written(len(event))
                    self.metrics.add_bytes(len(event))
                    self.metrics.add_rows(job.new_rows())
                elif isinstance(event, Finished):
                    await response.write_eof()
                    job.outcome = Outcome.COMPLETED
                    return response
                elif isinstance(event, Failed):
                    job.outcome = _outcome_of(event.error)
                    logger.error(
                        "export %d: %s after %d rows; aborting the download",
                        job.export_id,
                        event.error.message,
                        job.rows,
                    )
                    break_off(request)
                    return response
                else:
                    raise InternalError(f"worker sent {type(event).__name__} twice")
        except asyncio.CancelledError:
            # The client went away (aiohttp cancels the handler when the connection is lost)
            # or the shutdown grace period is over.
            if self._shutting_down:
                job.outcome = Outcome.SHUTDOWN
                job.cancel("shutdown")
            else:
                job.outcome = Outcome.CLIENT_DISCONNECTED
                job.cancel("client disconnected")
            raise
        except TimeoutError:
            job.outcome = Outcome.CLIENT_DISCONNECTED
            job.cancel(f"client read nothing for {self.config.client_write_timeout_s:g} s")
            break_off(request)
            return response
        except ConnectionError:
            job.outcome = Outcome.CLIENT_DISCONNECTED
            job.cancel("client disconnected")
            return response
        except ExportError as exc:
            logger.error("export %d: %s", job.export_id, exc.message)
            job.outcome = Outcome.INTERNAL_ERROR
            job.cancel("internal error")
            if response.prepared:
                break_off(request)
                return response
            return self._error(exc)

    def _export_complete(self, job: ExportJob) -> None:
        """Both halves of an export are done (called on the loop or on the worker thread)."""
        with self._jobs_lock:
            self._jobs.discard(job)
            request_id = self._request_ids.pop(job, "-")
        self.metrics.add_rows(job.new_rows())
        finished = job.finished_at if job.finished_at is not None else self._clock()
        duration = max(finished - job.started_at, 1e-9)
        self.metrics.export_finished(job.outcome, duration)
        job.memory.sample("at end")
        why = f" ({job.cancel_reason})" if job.cancel_reason else ""
        first_byte = "-" if job.first_byte_s is None else f"{job.first_byte_s:.3f} s"
        logger.info(
            "export %d %s%s: %d rows (%d sheet(s)), %d bytes in %.2f s (%.0f rows/s), "
            "first byte %s, RSS start %.1f MiB peak %.1f MiB; database: %s, connection %s%s; "
            "request %s",
            job.export_id,
            job.outcome.value,
            why,
            job.rows,
            job.stats.sheets,
            job.bytes_sent,
            duration,
            job.rows / duration,
            first_byte,
            mib(job.memory.start_bytes),
            mib(job.memory.peak_bytes),
            job.db_result,
            "kept" if job.connection_kept else "closed",
            " (reused)" if job.connection_reused else "",
            request_id,
        )
