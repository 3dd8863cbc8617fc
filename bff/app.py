"""The BFF: one low-level aiohttp handler, a dispatch table, and the relays (to the API
:mod:`bff.balancer` picks) of downloads and of the report catalog.

Routes (``bff.routes`` for the URL space under ``/exports/``):

- ``/``, ``/static/page.js``, ``/static/page.css``: the download page.
- ``POST /exports/ticket``, ``GET /exports/status/<ticket>``: the page's download tickets; a
  status asks the API serving the download for the rows read so far (``bff.progress``).
- ``GET``/``HEAD``/``OPTIONS /exports/<report id>``: a report's download, streamed from the
  API's ``/export/<report id>`` with the query untouched.
- ``GET``/``HEAD``/``OPTIONS /reports``: the API's report catalog, relayed whole.
- ``/healthz``, ``/metrics``.

HEAD is answered wherever GET is (RFC 9110 section 9.3.2); on a download or the catalog it is
relayed to the API as a HEAD, which answers what its GET would before any database work.
Connection-level limits and the JSON answers to requests that are not valid HTTP come from
:class:`httpedge.listener.EdgeServer`; anything a handler did not expect is a JSON 500.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import aiohttp
from aiohttp import web

from bff.access import FORBIDDEN_ORIGIN_MESSAGE, Gate, Refusal, own_origin, upstream_refusal
from bff.auth import BearerAuth
from bff.balancer import Balancer, Lease
from bff.catalog import fetch_catalog
from bff.config import BffConfig
from bff.cors import CorsPolicy
from bff.downloads import (
    ABORTED,
    CANCELLED,
    COMPLETED,
    MAX_ERROR_BODY,
    STREAMING,
    TICKET_TTL_S,
    Download,
    DownloadTable,
)
from bff.errors import ClientStalled, UpstreamAborted, UpstreamTimeout, UpstreamUnavailable
from bff.health import HealthChecker
from bff.limits import ClientLimiter
from bff.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from bff.metrics import Metrics
from bff.page import JSON_CSP, SECURITY_HEADERS, load_assets
from bff.progress import refresh_progress
from bff.proxy import Upstream, new_session, relay_body, relayed_headers
from bff.routes import (
    EXPORTS_PREFIX,
    REPORTS_PATH,
    STATUS_PREFIX,
    TICKET_PATH,
    api_export_path,
    report_id_of,
)
from httpedge import forwarded
from httpedge import responses as edge
from httpedge.listener import EdgeLimits, EdgeServer, break_off
from httpedge.request_id import HEADER as REQUEST_ID_HEADER
from httpedge.request_id import is_well_formed, request_id_of

log = logging.getLogger("bff")

# psutil ships no type information; only its RSS reading is used, typed at this boundary.
_psutil: Any = importlib.import_module("psutil")


def _rss() -> int:
    return int(_psutil.Process().memory_info().rss)


# The page's download ticket travels in this cookie (a navigation cannot set headers): set by
# the ticket's answer, scoped to /exports/, invisible to scripts, cleared by the download
# request that used it.
DOWNLOAD_COOKIE: Final = "bff_download"
# How long a stopping server lets running downloads finish before cutting them.
DEFAULT_SHUTDOWN_GRACE_S = 10.0
# What a stopping BFF still answers as ever; any other request gets 503 SHUTTING_DOWN at once.
_ANSWERED_WHILE_DRAINING: Final = frozenset({"/healthz", "/metrics"})

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


# JSON answers load inside the page's hidden download frame: only our own page may frame them.
_JSON_HEADERS: Final = {"Content-Security-Policy": JSON_CSP}
# The catalog is relayed as the API wrote it, with what our own JSON answers carry: it is a
# per-request answer (and behind a token, maybe), never to be cached or sniffed as HTML.
_CATALOG_HEADERS: Final = {
    **_JSON_HEADERS,
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}


def json_response(
    status: int, payload: object, headers: Mapping[str, str] | None = None
) -> web.Response:
    return edge.json_response(status, payload, {**_JSON_HEADERS, **(headers or {})})


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    """The API's error shape: ``{"error": {"message": ..., "code": ...}}``."""
    return edge.error_response(status, code, message, {**_JSON_HEADERS, **(headers or {})})


def refusal_response(refusal: Refusal, headers: Mapping[str, str] | None = None) -> web.Response:
    """A refusal (``bff.access``) as its JSON error, with ``headers`` and its own."""
    return error_response(
        refusal.status, refusal.code, refusal.message, {**(headers or {}), **refusal.headers}
    )


class BffApp:
    """Everything one BFF process shares; ``handle`` is the aiohttp low-level handler."""

    def __init__(
        self,
        config: BffConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.metrics = Metrics(rss=_rss)
        self.downloads = DownloadTable(max_tickets_per_client=config.max_tickets_per_client)
        self.server: EdgeServer | None = None  # set by start_server
        self._cors = CorsPolicy(config.cors_origins)
        self._gate = Gate(self._cors, BearerAuth(config.tokens))
        self._limiter = ClientLimiter(config.max_downloads_per_client)
        self._assets = load_assets()
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._balancer: Balancer | None = None
        self._health: HealthChecker | None = None
        # HEAD wherever GET is: aiohttp sends a HEAD answer's headers without its body.
        # Fixed paths; a ticket's status and a report's download are matched by prefix after
        # them (``_methods``).
        self._routes: dict[str, dict[str, Handler]] = {
            REPORTS_PATH: {"GET": self._reports, "HEAD": self._reports, "OPTIONS": self._preflight},
            TICKET_PATH: {"POST": self._ticket},
            "/healthz": {"GET": self._healthz, "HEAD": self._healthz},
            "/metrics": {"GET": self._metrics, "HEAD": self._metrics},
        }
        for path in self._assets:
            self._routes[path] = {"GET": self._asset, "HEAD": self._asset}
        self._status_methods: dict[str, Handler] = {"GET": self._status, "HEAD": self._status}
        self._export_methods: dict[str, Handler] = {
            "GET": self._export,
            "HEAD": self._export,
            "OPTIONS": self._preflight,
        }

    async def start(self) -> None:
        self._session = new_session(
            connect_timeout_s=self.config.upstream_connect_timeout_s,
            read_timeout_s=self.config.upstream_read_timeout_s,
            max_connections=self.config.upstream_max_connections,
            socket_buffer=self.config.socket_buffer or None,
        )
        self._balancer = Balancer(
            [
                Upstream(
                    url, self._session, headers_timeout_s=self.config.upstream_headers_timeout_s
                )
                for url in self.config.api_urls
            ]
        )
        self.metrics.upstreams = self._balancer.targets
        self._health = HealthChecker(
            self._balancer,
            interval_s=self.config.health_interval_s,
            timeout_s=self.config.health_timeout_s,
        )
        self._health.start()

    def web_server(self) -> EdgeServer:
        """The listening server for this app (one per app; needs a running loop)."""
        self.server = EdgeServer(
            self.handle,
            limits=EdgeLimits.of(self.config),
            logger=log,
            error_headers=_JSON_HEADERS,
            # What CONNECT is told to use instead: every method of some path here.
            methods="GET, HEAD, OPTIONS, POST" if self._cors.enabled else "GET, HEAD, POST",
        )
        return self.server

    @property
    def balancer(self) -> Balancer:
        assert self._balancer is not None, "BffApp.start() was not awaited"
        return self._balancer

    async def close(self) -> None:
        if self._health is not None:
            await self._health.close()
            self._health = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- dispatch ---------------------------------------------------------------------------

    def _methods(self, path: str) -> dict[str, Handler] | None:
        """The handlers for a (decoded) path: the fixed paths (the ticket's among them), then
        a ticket's status, then a report's download; None when nothing is there."""
        methods = self._routes.get(path)
        if methods is None and path.startswith(STATUS_PREFIX):
            methods = self._status_methods
        if methods is None and report_id_of(path) is not None:
            methods = self._export_methods
        return methods

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        draining = self.server is not None and self.server.draining
        if draining and path not in _ANSWERED_WHILE_DRAINING:
            return error_response(
                503,
                "SHUTTING_DOWN",
                "The service is shutting down; try again shortly.",
                {"Retry-After": str(self.config.retry_after_s)},
            )
        methods = self._methods(path)
        if methods is None and path.startswith(EXPORTS_PREFIX):
            # Not a report id the API could have (``bff.routes``): never asked for.
            return error_response(404, "UNKNOWN_REPORT", "No report with that id.")
        if methods is None:
            return error_response(404, "NOT_FOUND", "Nothing here.")
        handler = methods.get(request.method)
        if handler is None or (request.method == "OPTIONS" and not self._cors.enabled):
            allow = ", ".join(m for m in methods if m != "OPTIONS" or self._cors.enabled)
            return error_response(
                405,
                "METHOD_NOT_ALLOWED",
                f"This method is not allowed here; use {allow}.",
                {"Allow": allow},
            )
        try:
            return await handler(request)
        except Exception:
            # A bug: the traceback goes to the log, the client gets the JSON shape. (A
            # response that had started is broken off by the server's error handling instead.)
            if request.writer.output_size > 0:
                raise
            log.exception("unexpected error answering %s %s", request.method, path)
            return error_response(500, "INTERNAL_ERROR", "Internal error.")

    # -- small endpoints ---------------------------------------------------------------------

    async def _healthz(self, request: web.BaseRequest) -> web.StreamResponse:
        return json_response(200, {"status": "ok"})

    async def _metrics(self, request: web.BaseRequest) -> web.StreamResponse:
        refusal = self._gate.authenticate(request)
        if refusal is not None:
            return refusal_response(refusal)
        text = self.metrics.render()
        if self.server is not None:
            text += self.server.metrics_text("bff")
        response = web.Response(status=200, body=text.encode("utf-8"))
        response.headers["Content-Type"] = METRICS_CONTENT_TYPE
        response.headers["Cache-Control"] = "no-store"
        return response

    async def _asset(self, request: web.BaseRequest) -> web.StreamResponse:
        asset = self._assets[request.path]
        if request.headers.get("If-None-Match") == asset.etag:
            response = web.Response(status=304)
        else:
            response = web.Response(status=200, body=asset.body)
            response.headers["Content-Type"] = asset.content_type
        response.headers.update(SECURITY_HEADERS)
        response.headers["ETag"] = asset.etag
        # Revalidate every time: the files are tiny and a new version must show at once.
        response.headers["Cache-Control"] = "no-cache"
        return response

    async def _status(self, request: web.BaseRequest) -> web.StreamResponse:
        ticket = request.path[len(STATUS_PREFIX) :]
        download = self.downloads.get(ticket) if is_well_formed(ticket) else None
        if download is None:
            return error_response(404, "UNKNOWN_DOWNLOAD", "No download with that id (yet).")
        if request.method == "GET":
            await refresh_progress(download)
        return json_response(200, download.as_json())

    async def _ticket(self, request: web.BaseRequest) -> web.StreamResponse:
        """A download ticket for the page: its id in JSON and in the cookie the download
        request will carry (see ``bff.downloads``)."""
        ticket = self.downloads.issue(request.remote or "unknown")
        if ticket is None:
            return error_response(
                429,
                "TOO_MANY_TICKETS",
                f"At most {self.config.max_tickets_per_client} downloads may be starting at once "
                "per client; wait a moment and try again.",
                {"Retry-After": str(self.config.retry_after_s)},
            )
        secure = "; Secure" if request.secure else ""
        return json_response(
            201,
            {"id": ticket},
            {
                "Location": f"{STATUS_PREFIX}{ticket}",
                "Set-Cookie": f"{DOWNLOAD_COOKIE}={ticket}; Max-Age={TICKET_TTL_S}; "
                f"Path={EXPORTS_PREFIX}; SameSite=Strict; HttpOnly{secure}",
            },
        )

    # -- what the download relay and the catalog share ---------------------------------------

    async def _preflight(self, request: web.BaseRequest) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        method = request.headers.get("Access-Control-Request-Method")
        if origin is None or method is None:
            return error_response(400, "BAD_PREFLIGHT", "Not a CORS preflight request.")
        if method != "GET" or not self._cors.allows(origin, own_origin(request)):
            return error_response(403, "ORIGIN_NOT_ALLOWED", FORBIDDEN_ORIGIN_MESSAGE)
        response = web.Response(status=204)
        response.headers.update(self._cors.preflight_headers(origin))
        return response

    def _upstream_headers(self, request: web.BaseRequest, request_id: str) -> dict[str, str]:
        """What the API gets from us: the request id, and the client's address appended to
        X-Forwarded-For (the API believes it only from proxies it is told to trust)."""
        peer = request.remote or "unknown"
        chain = ", ".join([*request.headers.getall(forwarded.HEADER, []), peer])
        return {
            REQUEST_ID_HEADER: request_id,
            forwarded.HEADER: chain,
            "Accept": "*/*",
            # The body is relayed as is, so ask for it as any client can read it.
            "Accept-Encoding": "identity",
        }

    @staticmethod
    def _upstream_failed(
        what: str, request_id: str, exc: UpstreamTimeout | UpstreamUnavailable
    ) -> Refusal:
        """The refusal for an API that gave no usable answer; an unusable one is logged with
        its cause (a timeout is the API's to log: it knows what it was waiting for)."""
        if isinstance(exc, UpstreamUnavailable):
            cause = "" if exc.__cause__ is None else f" ({exc.__cause__!r})"
            log.warning("%s %s: %s%s", what, request_id, exc, cause)
        return upstream_refusal(exc)

    @staticmethod
    def _headers_only(
        status: int,
        reason: str | None,
        relayed: Mapping[str, str],
        content_length: int | None,
        headers: Mapping[str, str],
    ) -> web.StreamResponse:
        """The answer to a HEAD relayed as a HEAD: the API's status and headers, its length."""
        response = web.StreamResponse(status=status, reason=reason)
        response.headers.update(relayed)
        response.headers.update(headers)
        if content_length is not None:
            response.content_length = content_length
        return response

    # -- the report catalog ------------------------------------------------------------------

    async def _reports(self, request: web.BaseRequest) -> web.StreamResponse:
        """The API's report catalog (``bff.catalog``), for whoever may download: the same
        origin and token checks, none of a download's slot, ticket or metrics. The query is
        not relayed: the catalog has no parameters, and a script's cache-buster must not
        become the API's 400."""
        request_id = request_id_of(request.headers)
        headers = {
            REQUEST_ID_HEADER: request_id,
            **self._gate.response_headers(request),
            **_CATALOG_HEADERS,
        }
        refusal = self._gate.check(request)
        if refusal is None:
            try:
                catalog = await fetch_catalog(
                    self.balancer.lease(download=False),
                    self._upstream_headers(request, request_id),
                    method=request.method,
                )
            except (UpstreamTimeout, UpstreamUnavailable) as exc:
                refusal = self._upstream_failed("catalog", request_id, exc)
        if refusal is not None:
            log.info("catalog %s answered %d %s", request_id, refusal.status, refusal.code)
            return refusal_response(refusal, headers)
        if request.method == "HEAD":
            return self._headers_only(
                catalog.status, catalog.reason, catalog.headers, catalog.content_length, headers
            )
        response = web.Response(status=catalog.status, reason=catalog.reason, body=catalog.body)
        response.headers.update(catalog.headers)
        response.headers.update(headers)
        return response

    # -- the download relay ------------------------------------------------------------------

    def _download_for(self, request: web.BaseRequest, report: str) -> Download:
        """The page's tracked download when the request carries a ticket we issued and nobody
        claimed yet (its id is then the request id); else an untracked one named by the
        client's X-Request-ID (if well formed) or a new id."""
        ticket = request.cookies.get(DOWNLOAD_COOKIE)
        download = None
        if ticket is not None and request.method == "GET":
            download = self.downloads.claim(ticket)
        if download is None:
            download = Download(request_id_of(request.headers))
        download.report = report
        return download

    async def _export(self, request: web.BaseRequest) -> web.StreamResponse:
        """GET relays the download; HEAD goes through the same checks and asks the API for
        what its GET would answer, without a body, metrics or download state."""
        head = request.method == "HEAD"
        report = report_id_of(request.path)
        assert report is not None, "dispatched here for report ids only"
        download = self._download_for(request, report)
        request_id = download.request_id
        headers = {REQUEST_ID_HEADER: request_id}
        if not head and DOWNLOAD_COOKIE in request.cookies:
            headers["Set-Cookie"] = (
                f"{DOWNLOAD_COOKIE}=; Max-Age=0; Path={EXPORTS_PREFIX}; SameSite=Strict; HttpOnly"
            )
        headers.update(self._gate.response_headers(request))

        def refuse(refusal: Refusal) -> web.Response:
            response = refusal_response(refusal, headers)
            assert isinstance(response.body, bytes)
            download.fail(refusal.status, response.body)
            if not head:
                self.metrics.outcome(refusal.outcome)
            log.info(
                "download %s of %s answered %d %s", request_id, report, refusal.status, refusal.code
            )
            return response

        refusal = self._gate.check(request)
        if refusal is not None:
            return refuse(refusal)
        client = request.remote or "unknown"
        if not self._limiter.try_acquire(client):
            return refuse(
                Refusal(
                    429,
                    "TOO_MANY_DOWNLOADS",
                    f"At most {self.config.max_downloads_per_client} downloads at a time per "
                    "client; wait for one to finish.",
                    "rate_limited",
                    {"Retry-After": str(self.config.retry_after_s)},
                )
            )
        try:
            path = api_export_path(report, request.rel_url.raw_query_string)
            if head:
                return await self._head(request, path, headers, refuse)
            return await self._relay(request, path, download, headers, refuse)
        finally:
            self._limiter.release(client)

    async def _head(
        self,
        request: web.BaseRequest,
        path: str,
        headers: dict[str, str],
        refuse: Callable[[Refusal], web.Response],
    ) -> web.StreamResponse:
        request_id = headers[REQUEST_ID_HEADER]
        try:
            upstream = await self.balancer.lease(download=False).open(
                path, self._upstream_headers(request, request_id), method="HEAD"
            )
        except (UpstreamTimeout, UpstreamUnavailable) as exc:
            return refuse(self._upstream_failed("download HEAD", request_id, exc))
        upstream.release()
        return self._headers_only(
            upstream.status,
            upstream.reason,
            relayed_headers(upstream.headers),
            upstream.content_length,
            headers,
        )

    async def _relay(
        self,
        request: web.BaseRequest,
        path: str,
        download: Download,
        headers: dict[str, str],
        refuse: Callable[[Refusal], web.Response],
    ) -> web.StreamResponse:
        started = self._clock()
        lease = self.balancer.lease()
        self.metrics.relays_active += 1
        try:
            try:
                upstream = await lease.open(
                    path, self._upstream_headers(request, download.request_id)
                )
            except (UpstreamTimeout, UpstreamUnavailable) as exc:
                refusal = self._upstream_failed("download", download.request_id, exc)
                lease.record(refusal.outcome)
                return refuse(refusal)
            except asyncio.CancelledError:
                self._ended(download, CANCELLED, "client_disconnected", started, lease)
                raise
            return await self._stream(request, upstream, download, headers, started, lease)
        finally:
            lease.release()
            self.metrics.relays_active -= 1

    async def _stream(
        self,
        request: web.BaseRequest,
        upstream: aiohttp.ClientResponse,
        download: Download,
        headers: dict[str, str],
        started: float,
        lease: Lease,
    ) -> web.StreamResponse:
        self.metrics.upstream_status(upstream.status)
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        response.headers.update(relayed_headers(upstream.headers))
        response.headers.update(headers)
        chunked = "chunked" in upstream.headers.get("Transfer-Encoding", "").lower()
        if upstream.content_length is not None and not chunked:
            response.content_length = upstream.content_length
        elif request.version >= aiohttp.HttpVersion11:
            response.enable_chunked_encoding()
        else:
            # HTTP/1.0 has no chunks: the body ends when the connection closes (cleanly after
            # a whole body, by abort after a broken one).
            response.force_close()
        download.state, download.status = STREAMING, upstream.status
        if upstream.status < 300 and lease.target is not None:
            download.api = lease.target.api  # where its rows are asked for (bff.progress)
        error_body = bytearray()

        def on_chunk(chunk: bytes) -> None:
            download.size += len(chunk)
            self.metrics.bytes_relayed += len(chunk)
            if upstream.status >= 400 and len(error_body) < MAX_ERROR_BODY:
                error_body.extend(chunk[: MAX_ERROR_BODY - len(error_body)])

        clean = False
        try:
            await response.prepare(request)
            await relay_body(
                upstream,
                response,
                on_chunk,
                write_timeout_s=self.config.client_write_timeout_s,
                prefetched=lease.prefetched,
            )
            await response.write_eof()
            clean = True
        except asyncio.CancelledError:
            self._ended(download, CANCELLED, "client_disconnected", started, lease)
            raise
        except ConnectionError as exc:
            if isinstance(exc, UpstreamAborted):
                self._ended(download, ABORTED, "upstream_aborted", started, lease)
            elif isinstance(exc, ClientStalled):
                self._ended(download, CANCELLED, "client_stalled", started, lease)
            else:
                self._ended(download, CANCELLED, "client_disconnected", started, lease)
            # Cut the connection without the final chunk (HTTP/1.0: with a reset), so curl and
            # browsers report a failed transfer instead of saving a truncated file as if it
            # were whole. Returning (not raising) lets aiohttp finish quietly: its own final
            # write fails on the closed transport, which it treats as a client that went away.
            break_off(request)
            return response
        finally:
            if clean:
                upstream.release()  # back to the keep-alive pool
            else:
                # Close, never reuse: the API sees its client go away and cancels the query.
                upstream.close()
        if upstream.status >= 400:
            download.fail(upstream.status, bytes(error_body))
        else:
            download.state = COMPLETED
        self._ended(download, download.state, "completed", started, lease)
        return response

    def _ended(
        self, download: Download, state: str, outcome: str, started: float, lease: Lease
    ) -> None:
        download.state = state
        self.metrics.outcome(outcome)
        lease.record(outcome)
        answered = download.status is not None and 200 <= download.status < 300
        if answered and download.report is not None:
            # Only ids the API has a report for (``bff.metrics``: why the labels stay few).
            self.metrics.report_outcome(download.report, outcome)
        log.info(
            "download %s of %s %s (%s): status=%s bytes=%d seconds=%.2f api=%s",
            download.request_id,
            download.report,
            state,
            outcome,
            download.status,
            download.size,
            self._clock() - started,
            lease.target.url if lease.target is not None else "-",
        )


class BffServer:
    """A running BFF: the app plus its listening socket. ``port`` is the bound port."""

    def __init__(self, app: BffApp, runner: web.ServerRunner, port: int) -> None:
        self.app = app
        self.runner = runner
        self.port = port

    async def close(self) -> None:
        await self.runner.cleanup()
        await self.app.close()


async def start_server(
    app: BffApp, host: str, port: int, *, shutdown_grace_s: float = DEFAULT_SHUTDOWN_GRACE_S
) -> BffServer:
    await app.start()
    # The edge server cancels a handler whose client disconnects while we wait on the API
    # (headers or the next chunk), which closes the upstream connection at once.
    runner = web.ServerRunner(app.web_server(), shutdown_timeout=shutdown_grace_s)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1] if runner.addresses else port
    return BffServer(app, runner, int(bound))
