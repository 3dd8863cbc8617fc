"""The BFF: one low-level aiohttp handler, a dispatch table, and the download relay."""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

import aiohttp
from aiohttp import web

from bff.auth import BearerAuth
from bff.config import DEFAULT_ROW_COUNT, BffConfig
from bff.cors import CorsPolicy
from bff.downloads import (
    ABORTED,
    CANCELLED,
    COMPLETED,
    MAX_ERROR_BODY,
    STREAMING,
    Download,
    DownloadTable,
)
from bff.errors import ClientStalled, UpstreamAborted, UpstreamTimeout, UpstreamUnavailable
from bff.limits import ClientLimiter
from bff.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from bff.metrics import Metrics
from bff.page import JSON_CSP, SECURITY_HEADERS, load_assets
from bff.proxy import Upstream, new_session, relay_body, relayed_headers

log = logging.getLogger("bff")

# psutil ships no type information; only its RSS reading is used, typed at this boundary.
_psutil: Any = importlib.import_module("psutil")


def _rss() -> int:
    return int(_psutil.Process().memory_info().rss)


# Request ids we accept from clients: short, and safe to put in a log line or a header.
_REQUEST_ID_RE: Final = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_STATUS_PREFIX: Final = "/exports/status/"
# The page hands its download id over in this cookie (a navigation cannot set headers);
# scoped to /exports/ and cleared by the response that used it.
DOWNLOAD_COOKIE: Final = "bff_download"
API_EXPORT_PATH: Final = "/export/report"
# How long a stopping server lets running downloads finish before cutting them.
DEFAULT_SHUTDOWN_GRACE_S = 10.0

Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


def json_response(
    status: int, payload: object, headers: Mapping[str, str] | None = None
) -> web.Response:
    body = json.dumps(payload, separators=(",", ":")).encode("utf-8")
    response = web.Response(status=status, body=body, content_type="application/json")
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = JSON_CSP
    if headers:
        response.headers.update(headers)
    return response


def error_response(
    status: int, code: str, message: str, headers: Mapping[str, str] | None = None
) -> web.Response:
    """The API's error shape: ``{"error": {"message": ..., "code": ...}}``."""
    return json_response(status, {"error": {"message": message, "code": code}}, headers)


class BffApp:
    """Everything one BFF process shares; ``handle`` is the aiohttp low-level handler."""

    def __init__(
        self,
        config: BffConfig,
        *,
        new_request_id: Callable[[], str] = lambda: uuid.uuid4().hex,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.metrics = Metrics(rss=_rss)
        self.downloads = DownloadTable()
        self._auth = BearerAuth(config.tokens)
        self._cors = CorsPolicy(config.cors_origins)
        self._limiter = ClientLimiter(config.max_downloads_per_client)
        self._assets = load_assets(default_rows=DEFAULT_ROW_COUNT, max_rows=config.max_row_count)
        self._new_request_id = new_request_id
        self._clock = clock
        self._session: aiohttp.ClientSession | None = None
        self._upstream: Upstream | None = None
        self._routes: dict[str, dict[str, Handler]] = {
            "/exports/report": {"GET": self._export, "OPTIONS": self._preflight},
            "/healthz": {"GET": self._healthz},
            "/metrics": {"GET": self._metrics},
        }
        for path in self._assets:
            self._routes[path] = {"GET": self._asset}

    async def start(self) -> None:
        self._session = new_session(
            connect_timeout_s=self.config.upstream_connect_timeout_s,
            read_timeout_s=self.config.upstream_read_timeout_s,
            max_connections=self.config.upstream_max_connections,
        )
        self._upstream = Upstream(
            self.config.api_url,
            self._session,
            headers_timeout_s=self.config.upstream_headers_timeout_s,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    # -- dispatch ---------------------------------------------------------------------------

    async def handle(self, request: web.BaseRequest) -> web.StreamResponse:
        path = request.path
        methods = self._routes.get(path)
        if methods is None and path.startswith(_STATUS_PREFIX):
            methods = {"GET": self._status}
        if methods is None:
            return error_response(404, "NOT_FOUND", f"Nothing here: {path}")
        handler = methods.get(request.method)
        if handler is None or (request.method == "OPTIONS" and not self._cors.enabled):
            allow = ", ".join(m for m in methods if m != "OPTIONS" or self._cors.enabled)
            return error_response(
                405,
                "METHOD_NOT_ALLOWED",
                f"{request.method} is not allowed here; use {allow}.",
                {"Allow": allow},
            )
        return await handler(request)

    # -- small endpoints ---------------------------------------------------------------------

    async def _healthz(self, request: web.BaseRequest) -> web.StreamResponse:
        return json_response(200, {"status": "ok"})

    async def _metrics(self, request: web.BaseRequest) -> web.StreamResponse:
        if not self._auth.allows(request.headers.get("Authorization")):
            return self._unauthorized(request)
        response = web.Response(status=200, body=self.metrics.render().encode("utf-8"))
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
        request_id = request.path[len(_STATUS_PREFIX) :]
        download = self.downloads.get(request_id) if _REQUEST_ID_RE.match(request_id) else None
        if download is None:
            return error_response(404, "UNKNOWN_DOWNLOAD", "No download with that id (yet).")
        return json_response(200, download.as_json())

    def _unauthorized(self, request: web.BaseRequest) -> web.Response:
        authorization = request.headers.get("Authorization")
        return error_response(
            401,
            "UNAUTHORIZED",
            "A valid bearer token is required.",
            {"WWW-Authenticate": self._auth.challenge(authorization)},
        )

    # -- the download relay ------------------------------------------------------------------

    def _request_id(self, request: web.BaseRequest) -> tuple[str, bool]:
        """(id, came from the page's cookie): the client's if well-formed, else a fresh one."""
        given = request.headers.get("X-Request-ID")
        if given is not None and _REQUEST_ID_RE.match(given):
            return given, False
        cookie = request.cookies.get(DOWNLOAD_COOKIE)
        if given is None and cookie is not None and _REQUEST_ID_RE.match(cookie):
            return cookie, True
        return self._new_request_id(), False

    @staticmethod
    def _own_origin(request: web.BaseRequest) -> str:
        return f"{request.scheme}://{request.host}"

    async def _preflight(self, request: web.BaseRequest) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        method = request.headers.get("Access-Control-Request-Method")
        if origin is None or method is None:
            return error_response(400, "BAD_PREFLIGHT", "Not a CORS preflight request.")
        if method != "GET" or not self._cors.allows(origin, self._own_origin(request)):
            return error_response(403, "ORIGIN_NOT_ALLOWED", "This origin may not use this API.")
        response = web.Response(status=204)
        response.headers.update(self._cors.preflight_headers(origin))
        return response

    async def _export(self, request: web.BaseRequest) -> web.StreamResponse:
        request_id, from_cookie = self._request_id(request)
        download = self.downloads.begin(request_id)
        headers = {"X-Request-ID": request_id}
        if from_cookie:
            headers["Set-Cookie"] = (
                f"{DOWNLOAD_COOKIE}=; Max-Age=0; Path=/exports/; SameSite=Strict; HttpOnly"
            )
        origin = request.headers.get("Origin")
        own_origin = self._own_origin(request)
        headers.update(self._cors.response_headers(origin, own_origin))

        def refuse(
            status: int, code: str, message: str, outcome: str, **extra: str
        ) -> web.Response:
            response = error_response(status, code, message, {**headers, **extra})
            assert isinstance(response.body, bytes)
            download.fail(status, response.body)
            self.metrics.outcome(outcome)
            log.info("download %s answered %d %s", request_id, status, code)
            return response

        if not self._cors.allows(origin, own_origin):
            return refuse(
                403, "ORIGIN_NOT_ALLOWED", "This origin may not use this API.", "forbidden_origin"
            )
        authorization = request.headers.get("Authorization")
        if not self._auth.allows(authorization):
            return refuse(
                401,
                "UNAUTHORIZED",
                "A valid bearer token is required.",
                "unauthorized",
                **{"WWW-Authenticate": self._auth.challenge(authorization)},
            )
        client = request.remote or "unknown"
        if not self._limiter.try_acquire(client):
            return refuse(
                429,
                "TOO_MANY_DOWNLOADS",
                f"At most {self.config.max_downloads_per_client} downloads at a time per client; "
                "wait for one to finish.",
                "rate_limited",
                **{"Retry-After": str(self.config.retry_after_s)},
            )
        try:
            return await self._relay(request, download, headers, refuse)
        finally:
            self._limiter.release(client)

    async def _relay(
        self,
        request: web.BaseRequest,
        download: Download,
        headers: dict[str, str],
        refuse: Callable[..., web.Response],
    ) -> web.StreamResponse:
        assert self._upstream is not None, "BffApp.start() was not awaited"
        started = self._clock()
        query = request.rel_url.raw_query_string
        path = API_EXPORT_PATH + (f"?{query}" if query else "")
        self.metrics.relays_active += 1
        try:
            try:
                upstream = await self._upstream.open(
                    path,
                    {
                        "X-Request-ID": download.request_id,
                        "Accept": "*/*",
                        # The body is relayed as is, so ask for it as any client can read it.
                        "Accept-Encoding": "identity",
                    },
                )
            except UpstreamTimeout as exc:
                return refuse(504, "PROXY_TIMEOUT", str(exc), "proxy_timeout")
            except UpstreamUnavailable as exc:
                log.warning("download %s: %s (%r)", download.request_id, exc, exc.__cause__)
                return refuse(502, "PROXY_ERROR", str(exc), "proxy_error")
            except asyncio.CancelledError:
                self._ended(download, CANCELLED, "client_disconnected", started)
                raise
            return await self._stream(request, upstream, download, headers, started)
        finally:
            self.metrics.relays_active -= 1

    async def _stream(
        self,
        request: web.BaseRequest,
        upstream: aiohttp.ClientResponse,
        download: Download,
        headers: dict[str, str],
        started: float,
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
            )
            await response.write_eof()
            clean = True
        except asyncio.CancelledError:
            self._ended(download, CANCELLED, "client_disconnected", started)
            raise
        except ConnectionError as exc:
            if isinstance(exc, UpstreamAborted):
                self._ended(download, ABORTED, "upstream_aborted", started)
            elif isinstance(exc, ClientStalled):
                self._ended(download, CANCELLED, "client_stalled", started)
            else:
                self._ended(download, CANCELLED, "client_disconnected", started)
            # Cut the connection without the final chunk, so curl and browsers report a failed
            # transfer instead of saving a truncated file as if it were whole. Returning (not
            # raising) lets aiohttp finish quietly: its own final write fails on the closed
            # transport, which it treats as a client that went away.
            if request.transport is not None:
                request.transport.abort()
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
        self._ended(download, download.state, "completed", started)
        return response

    def _ended(self, download: Download, state: str, outcome: str, started: float) -> None:
        download.state = state
        self.metrics.outcome(outcome)
        log.info(
            "download %s %s (%s): status=%s bytes=%d seconds=%.2f",
            download.request_id,
            state,
            outcome,
            download.status,
            download.size,
            self._clock() - started,
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
    # handler_cancellation: a client that disconnects while we wait on the API (headers or the
    # next chunk) cancels the handler at once, which closes the upstream connection.
    server = web.Server(app.handle, handler_cancellation=True)
    runner = web.ServerRunner(server, shutdown_timeout=shutdown_grace_s)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = runner.addresses[0][1] if runner.addresses else port
    return BffServer(app, runner, int(bound))
