"""The export API's HTTP process: aiohttp's low-level server, one handler and a dispatch table of
our own, and the worker processes that run the exports.

:class:`ExportApi` is the whole service; tests start it in their own event loop
(``async with ExportApi(config) as api``: ``api.port``), ``server.__main__`` runs it as a
process. Routes: ``GET``/``HEAD`` ``/export/{id}`` for each report of the catalog
(:mod:`server.catalog`; ``/export/report`` is the demo report), ``/reports`` (the catalog as
JSON), ``/healthz``, ``/readyz``, ``/metrics``, ``/progress/{request id}`` (a running
export's counts, :mod:`server.progress`); any other path is a 404 and any other method a
405 with ``Allow``, both as JSON. ``reload_catalog`` (SIGHUP) swaps the catalog for the file's
new content if it checks out: an admitted export carries its own call (:class:`ReportCall`),
so a reload never changes one that is running. The
connection-level limits (header timeout, connection cap, request sizes) and the JSON answers
to requests that are not valid HTTP come from :class:`httpedge.listener.EdgeServer`.

This process never decodes a row: it parses requests, admits or refuses an export at once
(:class:`~server.admission.Admission`, the service-wide limit), hands it to the worker with the
fewest exports (:mod:`server.workers`), relays the frames of the export's channel to the client
with ``await response.write()`` one chunk at a time (:mod:`server.channel`), and closes the
channel to cancel. Its event loop shares no interpreter lock with exports, so ``/healthz``,
``/readyz`` and ``/metrics`` answer at once under load.

Every response carries ``X-Request-ID``: the client's (the BFF's) when well formed, else a new
one; export log lines name it, so one download can be followed through both services' logs.

Clients that go away are noticed through aiohttp's ``handler_cancellation``: when the
connection is lost the handler task is cancelled, also while it waits for the first row, and
the handler closes the export's channel, which stops the worker's export.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import itertools
import logging
import os
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType

from aiohttp import web

from httpedge import forwarded
from httpedge.listener import EdgeLimits, EdgeServer, break_off
from httpedge.request_id import HEADER as REQUEST_ID_HEADER
from httpedge.request_id import request_id_of
from server import report
from server.admission import Admission
from server.catalog import Catalog, CatalogError, Report, ReportCall, catalog_for, query_values
from server.channel import Kind
from server.config import ApiConfig
from server.control import CANCELLED
from server.errors import (
    DatabaseError,
    DatabaseProtocolError,
    DatabaseTimeout,
    DatabaseUnavailable,
    ExportError,
    InternalError,
    MethodNotAllowed,
    NotFound,
    ShuttingDown,
    TooManyExports,
    UnknownReport,
)
from server.memory import ProcessMemory, mib
from server.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from server.metrics import Metrics, Outcome
from server.progress import PROGRESS_PREFIX, ProgressBoard
from server.readiness import ReadinessProbe
from server.relay import Relay
from server.responses import download_headers, error_response, json_response
from server.rowsource import row_path
from server.workers import WorkerSet

logger = logging.getLogger("server")

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]
REQUEST_ID = web.RequestKey("request_id", str)
# /export/{id}: a report's download.
EXPORT_PREFIX = "/export/"
REPORTS_PATH = "/reports"

# What a draining API still answers as ever (``/readyz`` answers its 503 SHUTTING_DOWN, as every
# other request then does): whether the process is alive, what it is doing, and how far the
# exports it still runs are.
_ANSWERED_WHILE_DRAINING = frozenset({"/healthz", "/metrics"})
# Workers told to stop get this long beyond the time a cancel may take (poll interval + cancel
# timeout) to close their pools and exit; then they are killed.
_WORKER_EXIT_MARGIN_S = 2.0


def _outcome_of(error: ExportError) -> Outcome:
    if isinstance(error, DatabaseProtocolError):
        return Outcome.PROTOCOL_ERROR
    if isinstance(error, DatabaseError | DatabaseUnavailable | DatabaseTimeout):
        return Outcome.DB_ERROR
    if isinstance(error, TooManyExports | ShuttingDown):
        return Outcome.REJECTED
    return Outcome.INTERNAL_ERROR


def security_warnings(config: ApiConfig) -> tuple[str, ...]:
    """How the connection to the database is less safe than it could be, in words."""
    if config.db.encrypt == "off":
        return ("the connection to the database is not encrypted (--mssql-encrypt off)",)
    if config.db.trust_server_certificate:
        return (
            "the database's certificate is not verified (--mssql-trust-server-certificate): "
            "anyone on the network path can pose as the database",
        )
    return ()


def _answered_while_draining(path: str) -> bool:
    return path in _ANSWERED_WHILE_DRAINING or path.startswith(PROGRESS_PREFIX)


def _utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _cores() -> int:
    """The cores this process may run on (its affinity: a container's CPU set, say)."""
    return len(os.sched_getaffinity(0))


@dataclass(frozen=True)
class PoolState:
    """The database connections of every worker's pool, as last reported."""

    idle: int
    in_use: int


class ExportApi:
    def __init__(
        self,
        config: ApiConfig,
        *,
        catalog: Catalog | None = None,
        now: Callable[[], datetime.datetime] = _utc_now,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.catalog = catalog_for(config) if catalog is None else catalog
        self._now = now
        self._clock = clock
        self.workers = WorkerSet(
            config, count=_cores() if config.workers is None else config.workers
        )
        self.admission = Admission(config.pool_max)
        self.metrics = Metrics()
        self.memory = ProcessMemory()
        self.readiness = ReadinessProbe(self._round_trip, timeout_s=config.readiness_timeout_s)
        self._proxies = forwarded.TrustedProxies(config.trusted_proxies)
        # HEAD wherever GET is (RFC 9110 section 9.3.2): aiohttp sends a HEAD answer's headers
        # without its body; the export's own HEAD stops before the procedure would run.
        self._export_routes: Mapping[str, Handler] = {
            "GET": self._export_report,
            "HEAD": self._export_head,
        }
        self._progress_routes: Mapping[str, Handler] = {
            "GET": self._progress,
            "HEAD": self._progress,
        }
        self._routes: Mapping[str, Mapping[str, Handler]] = {
            REPORTS_PATH: {"GET": self._reports, "HEAD": self._reports},
            "/healthz": {"GET": self._healthz, "HEAD": self._healthz},
            "/readyz": {"GET": self._readyz, "HEAD": self._readyz},
            "/metrics": {"GET": self._metrics, "HEAD": self._metrics},
        }
        # What an operator should know of how the service runs (/readyz and the start-up log).
        self.warnings = security_warnings(config)
        self._ids = itertools.count(1)
        self._relays: set[Relay] = set()
        self.progress = ProgressBoard(lambda: self._relays)
        self._no_exports = asyncio.Event()
        self._no_exports.set()
        self._shutting_down = False
        self.server: EdgeServer | None = None
        self._listener: asyncio.Server | None = None
        self.port = 0

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        try:
            await self.workers.start()
        except BaseException:
            await self.workers.close(self._worker_exit_s)
            raise
        loop = asyncio.get_running_loop()
        self.server = EdgeServer(
            self._handle,
            limits=EdgeLimits.of(self.config),
            logger=logger,
        )
        try:
            self._listener = await loop.create_server(
                self.server, self.config.host, self.config.port
            )
        except BaseException:
            await self.workers.close(self._worker_exit_s)
            raise
        self.port = int(self._listener.sockets[0].getsockname()[1])
        logger.info(
            "export API listening on http://%s:%d (database %s:%d/%s, pool %d..%d, %s, %s)",
            self.config.host,
            self.port,
            self.config.db.host,
            self.config.db.port,
            self.config.db.database,
            self.config.pool_min,
            self.config.pool_max,
            f"{self.workers.count} worker process(es)"
            if self.workers.count
            else "exports on threads of this process",
            row_path(fast=self.config.fast_rows, compiled=self.config.compiled_rows),
        )
        for warning in self.warnings:
            logger.warning("%s", warning)

    @property
    def _worker_exit_s(self) -> float:
        return self.config.poll_interval_s + self.config.cancel_timeout_s + _WORKER_EXIT_MARGIN_S

    async def close(self, grace_s: float | None = None) -> None:
        """Stop accepting, let exports finish within the grace period, abort the rest, stop the
        workers, exit."""
        grace = self.config.shutdown_grace_s if grace_s is None else grace_s
        self._shutting_down = True
        self.admission.close()
        if self._listener is not None:
            self._listener.close()
        if self.server is not None:
            # Requests on open connections are answered at once (503 SHUTTING_DOWN but for
            # the health endpoints), each connection closed after its answer.
            self.server.drain()
        running = self.active_exports
        if running:
            logger.info("shutting down: waiting up to %g s for %d export(s)", grace, running)
        await self._wait_for_exports(grace)
        if self.server is not None:
            # Cancels the handlers still running; each closes its export's channel (the worker
            # then cancels the query) and aborts its response.
            await self.server.shutdown(0)
        # Workers answer a cancel within poll interval + cancel timeout.
        await self._wait_for_exports(self.config.cancel_timeout_s + self.config.poll_interval_s)
        if self.active_exports:
            logger.warning("shutting down with %d export(s) still running", self.active_exports)
        await self.workers.close(self._worker_exit_s)
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
        return len(self._relays)

    @property
    def pool(self) -> PoolState:
        return PoolState(idle=self.workers.idle, in_use=self.workers.in_use)

    async def _wait_for_exports(self, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._no_exports.wait(), timeout_s)

    # -- dispatch -----------------------------------------------------------------------------

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        request_id = request_id_of(request.headers)
        request[REQUEST_ID] = request_id
        response = await self._dispatch(request)
        if not response.prepared:  # a download sets it itself, before its headers go out
            response.headers[REQUEST_ID_HEADER] = request_id
        return response

    async def _dispatch(self, request: web.BaseRequest) -> web.StreamResponse:
        if self._shutting_down and not _answered_while_draining(request.path):
            if request.path.startswith(EXPORT_PREFIX):
                known = self.catalog.get(request.path[len(EXPORT_PREFIX) :])
                self.metrics.request_refused(Outcome.REJECTED, None if known is None else known.id)
            return self._error(ShuttingDown("the service is shutting down"))
        methods = self._routes.get(request.path)
        if methods is None and request.path.startswith(EXPORT_PREFIX):
            methods = self._export_routes
        if methods is None and request.path.startswith(PROGRESS_PREFIX):
            methods = self._progress_routes
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

    def reload_catalog(self) -> bool:
        """Read the catalog again (SIGHUP); a file that does not check out is logged and the
        catalog in use is kept. Running exports carry their own calls and are not affected."""
        try:
            catalog = catalog_for(self.config)
        except CatalogError as exc:
            logger.error(
                "catalog not reloaded, keeping the %d report(s) in use: %s",
                len(self.catalog.reports),
                exc,
            )
            return False
        self.catalog = catalog
        logger.info("catalog reloaded from %s: %d report(s)", catalog.source, len(catalog.reports))
        return True

    async def _reports(self, request: web.BaseRequest) -> web.StreamResponse:
        return json_response(200, self.catalog.to_json())

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
        answer: dict[str, object] = {"status": "ready"}
        if self.warnings:
            answer["warnings"] = list(self.warnings)
        return json_response(200, answer)

    async def _round_trip(self) -> None:
        """One readiness round trip in a worker, holding a slot as an export does."""
        self.admission.take()
        try:
            error = await self.workers.check_ready()
        finally:
            self.admission.give_back()
        if error is not None:
            raise error

    async def _metrics(self, request: web.BaseRequest) -> web.StreamResponse:
        text = self.metrics.render(
            pool_idle=self.workers.idle,
            pool_in_use=self.workers.in_use,
            resident_memory_bytes=self.memory.rss(),
            workers=self.workers.samples(),
            worker_processes=self.workers.processes_running,
            worker_restarts=self.workers.restarts,
            channel_bytes=sum(relay.channel_backlog() for relay in self._relays),
        )
        if self.server is not None:
            text += self.server.metrics_text("http")
        return web.Response(body=text.encode(), headers={"Content-Type": METRICS_CONTENT_TYPE})

    async def _progress(self, request: web.BaseRequest) -> web.StreamResponse:
        """How far the export with this request id is (``server.progress``); else 404."""
        found = self.progress.lookup(request.path[len(PROGRESS_PREFIX) :])
        return json_response(200, found.to_json())

    # -- the export ---------------------------------------------------------------------------

    def _call(self, request: web.BaseRequest) -> tuple[Report, ReportCall]:
        """The report the path names and the call its query asks for, or the 404/400."""
        report = self.catalog.get(request.path[len(EXPORT_PREFIX) :])
        if report is None:
            raise UnknownReport(f"no such report; {REPORTS_PATH} lists the reports")
        return report, report.bind(query_values(request.query.items()))

    def _client(self, request: web.BaseRequest) -> str:
        """The peer, and the client a trusted proxy relayed for (logs only)."""
        peer = request.remote or "unknown"
        client = self._proxies.client_of(peer, request.headers.getall(forwarded.HEADER, []))
        return peer if client is None else f"{client} via {peer}"

    async def _export_head(self, request: web.BaseRequest) -> web.StreamResponse:
        """What a GET would answer before its body, with no database work: 400 for a bad
        query, 503 while shutting down or every connection is busy, else the download's
        headers (a database error can only show on the GET itself)."""
        chosen, _ = self._call(request)
        self._check_accepting()
        self.admission.check()  # busy: the GET's own 503
        response = web.StreamResponse(
            headers=download_headers(report.download_filename(chosen.filename, self._now()))
        )
        response.enable_chunked_encoding()  # as the GET; aiohttp sends neither on a HEAD
        return response

    async def _export_report(self, request: web.BaseRequest) -> web.StreamResponse:
        request_id = request[REQUEST_ID]
        try:
            chosen, call = self._call(request)
        except ExportError as exc:
            known = self.catalog.get(request.path[len(EXPORT_PREFIX) :])
            self.metrics.request_refused(Outcome.INVALID, None if known is None else known.id)
            return self._error(exc)
        try:
            self._check_accepting()
            self.admission.take()
        except ExportError as exc:
            logger.warning("request %s: export refused: %s", request_id, exc.message)
            self.metrics.request_refused(Outcome.REJECTED, chosen.id)
            return self._error(exc)
        try:
            relay = self.workers.start_export(
                export_id=next(self._ids),
                call=call,
                request_id=request_id,
                on_worker_done=self._worker_done,
                on_complete=self._export_complete,
            )
        except BaseException:
            self.admission.give_back()
            raise
        self._relays.add(relay)
        self._no_exports.clear()
        self.metrics.export_started()
        logger.info(
            "export %d (request %s): report %s (%s) requested by %s",
            relay.export_id,
            request_id,
            chosen.id,
            # The names only: values may be a person's filters, which logs need not keep.
            ", ".join(p.name for p in chosen.parameters if p.sql_name in call.names)
            or "no parameters",
            self._client(request),
        )
        try:
            return await self._stream(request, relay, chosen.filename)
        finally:
            relay.handler_done(relay.outcome)

    async def _stream(
        self, request: web.BaseRequest, relay: Relay, filename: str
    ) -> web.StreamResponse:
        """Wait for the worker's first frame, then relay chunks; sets ``relay.outcome``."""
        response = web.StreamResponse(
            headers={
                **download_headers(report.download_filename(filename, self._now())),
                REQUEST_ID_HEADER: request[REQUEST_ID],
            }
        )
        try:
            frame = await relay.next_frame()
            if frame is None:
                raise InternalError("the export stopped unexpectedly")
            if frame.kind is Kind.FAILED:
                error = frame.error()
                relay.outcome = _outcome_of(error)
                return self._error(error)
            if frame.kind is not Kind.STARTED:
                raise InternalError(f"the worker sent {frame.kind.name} before STARTED")
            await response.prepare(request)
            relay.first_byte_s = self._clock() - relay.started_at
            while True:
                # The next frame only once the previous chunk is written: a slow client keeps
                # the channel full, and the worker waits.
                frame = await relay.next_frame()
                if frame is None:
                    raise InternalError("the export's worker stopped before the end")
                if frame.kind is Kind.CHUNK:
                    await asyncio.wait_for(
                        response.write(frame.payload), self.config.client_write_timeout_s
                    )
                    relay.chunk_written(len(frame.payload))
                    self.metrics.add_bytes(len(frame.payload))
                    self.metrics.add_rows(relay.new_rows())
                elif frame.kind is Kind.FINISHED:
                    await response.write_eof()
                    relay.outcome = Outcome.COMPLETED
                    return response
                elif frame.kind is Kind.FAILED:
                    error = frame.error()
                    relay.outcome = _outcome_of(error)
                    logger.error(
                        "export %d: %s after %d rows; aborting the download",
                        relay.export_id,
                        error.message,
                        relay.rows,
                    )
                    break_off(request)
                    return response
                else:
                    raise InternalError(f"the worker sent {frame.kind.name} twice")
        except asyncio.CancelledError:
            # The client went away (aiohttp cancels the handler when the connection is lost)
            # or the shutdown grace period is over.
            if self._shutting_down:
                relay.outcome = Outcome.SHUTDOWN
                relay.cancel("shutdown")
            else:
                relay.outcome = Outcome.CLIENT_DISCONNECTED
                relay.cancel("client disconnected")
            raise
        except TimeoutError:
            relay.outcome = Outcome.CLIENT_DISCONNECTED
            relay.cancel(f"client read nothing for {self.config.client_write_timeout_s:g} s")
            break_off(request)
            return response
        except ConnectionError:
            relay.outcome = Outcome.CLIENT_DISCONNECTED
            relay.cancel("client disconnected")
            return response
        except ExportError as exc:
            logger.error("export %d: %s", relay.export_id, exc.message)
            relay.outcome = Outcome.INTERNAL_ERROR
            relay.cancel(exc.message)
            if response.prepared:
                break_off(request)
                return response
            return self._error(exc)

    def _worker_done(self, relay: Relay) -> None:
        """The worker gave the export's connection back (or died): its slot is free."""
        self.admission.give_back()

    def _export_complete(self, relay: Relay) -> None:
        """Both halves of an export are done: metrics and the summary line."""
        self._relays.discard(relay)
        self.progress.finished(relay)
        if not self._relays:
            self._no_exports.set()
        self.metrics.add_rows(relay.new_rows())
        finished = relay.finished_at if relay.finished_at is not None else self._clock()
        duration = max(finished - relay.started_at, 1e-9)
        self.metrics.export_finished(relay.outcome, duration, relay.report, relay.rows)
        summary = relay.summary
        why = f" ({relay.cancel_reason})" if relay.cancel_reason else ""
        first_byte = "-" if relay.first_byte_s is None else f"{relay.first_byte_s:.3f} s"
        if summary is None:
            database = f"worker {relay.worker} exited"
            sheets = rss_start = rss_peak = 0
            kept = reused = False
        else:
            database = summary.db_result
            if database == CANCELLED:
                database += why
            sheets, kept, reused = (
                summary.sheets,
                summary.connection_kept,
                summary.connection_reused,
            )
            rss_start, rss_peak = summary.rss_start, summary.rss_peak
        logger.info(
            "export %d %s%s: report %s, %d rows (%d sheet(s)), %d bytes in %.2f s (%.0f rows/s), "
            "first byte %s, RSS start %.1f MiB peak %.1f MiB; database: %s, connection %s%s; "
            "request %s",
            relay.export_id,
            relay.outcome.value,
            why,
            relay.report,
            relay.rows,
            sheets,
            relay.bytes_sent,
            duration,
            relay.rows / duration,
            first_byte,
            mib(rss_start),
            mib(rss_peak),
            database,
            "kept" if kept else "closed",
            " (reused)" if reused else "",
            relay.request_id,
        )
