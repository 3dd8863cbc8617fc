"""The listening side of both services: aiohttp's low-level server with our limits and answers.

:class:`EdgeServer` is an ``aiohttp.web.Server`` (pass it to ``loop.create_server`` or a
``web.ServerRunner``) that adds, at the connection level, what a route handler cannot do:

- **Requests that are not valid HTTP** (a URL or header past the limits below, too many
  headers, bytes the parser rejects) get the JSON error shape with a fitting status (400, 414,
  431), never aiohttp's plain-text page that quotes the request back (and in HTTP/1.1, where
  aiohttp would answer HTTP/1.0). The hook is aiohttp's
  ``RequestHandler.handle_error``, which its low-level server calls for parser errors and for
  exceptions that escape a handler; ``tests/test_edge`` checks each case over TCP, so a change
  in aiohttp shows up there.
- **Header timeout**: a connection whose request headers have not all arrived within
  ``header_timeout_s`` of its opening (or of the previous response on a kept-alive connection)
  is closed. This is aiohttp's ``keepalive_timeout``: its timer starts when the connection is
  made and closes the connection if, when it fires, no complete request has arrived yet, so
  it covers clients that never send and clients that never finish their headers alike.
- **A cap on open connections**: at ``max_connections`` a new connection takes the place of
  the connection that has waited longest for a request (a kept-alive connection between
  requests, or one that never sent one), which is closed; when every connection is busy with
  a request, the new one is closed as soon as it is accepted (reading its request would cost
  what the cap protects). Both are counted. So idle connections, however many, cannot keep
  anyone else out.
- **Bounded kernel buffers** (``socket_buffer``): each client connection's ``SO_SNDBUF`` and
  ``SO_RCVBUF``. Left to itself Linux grows a TCP socket's buffers to megabytes (``tcp_wmem``,
  ``tcp_rmem``), and a download whose client reads slowly fills them: memory no RSS shows.
- **A cap per client address**: past ``max_connections_per_client`` connections from one peer
  address, a new one from it is closed as soon as it is accepted (counted apart), so that one
  client cannot fill the service. Addresses in ``exempt_clients`` (a proxy that carries many
  clients' requests, such as the BFF's pool to the API) are not held to it.
- **Draining** (:meth:`EdgeServer.drain`, from a service's shutdown): open connections keep
  being read, so a request on a kept-alive connection is answered at once (the service says
  what: its 503 ``SHUTTING_DOWN``, its health endpoints as ever) instead of waiting unread for
  the end of the grace period; every answer from then on closes its connection
  (``Connection: close``). aiohttp's own ``pre_shutdown`` stops reading idle connections
  instead, so a request sent on one is never answered.

- **Protocol edges**: a request line of another HTTP version than 1.0 or 1.1 (``HTTP/2.0``,
  an HTTP/0.9 line without a version) gets ``505 HTTP_VERSION_NOT_SUPPORTED`` in HTTP/1.1
  (aiohttp would answer ``HTTP/2.0 200 OK`` in HTTP/1.1 framing), and ``CONNECT`` (no
  service here tunnels) gets ``405`` with the service's methods in ``Allow``, both JSON and
  the connection closed after. Every answer of the listener's own (these, 400, 414, 431)
  carries ``X-Request-ID``, as the services' do, and every answer's ``Server`` header names
  the product only: no aiohttp or Python version for anyone to match against advisories.

Everything else (routes, 404/405, the handlers' own errors) stays with the service.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ipaddress
import logging
import socket
import struct
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import hdrs, web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http import HttpVersion, HttpVersion10, HttpVersion11
from aiohttp.http_exceptions import HttpProcessingError, LineTooLong
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import ERROR as _PARSE_ERROR_MESSAGE
from aiohttp.web_protocol import RequestHandler

from httpedge import prometheus
from httpedge.forwarded import Network
from httpedge.request_id import HEADER as REQUEST_ID_HEADER
from httpedge.request_id import request_id_of
from httpedge.responses import error_response

# Request line (method, URL, version) bytes: RFC 9112 section 3 recommends accepting at least
# 8,000 octets; 8 KiB is also what nginx accepts by default. Our longest real URL is ~40 bytes.
MAX_URL_BYTES = 8192
# One header field's value (or name): aiohttp's own default, as nginx's 8 KiB header buffers.
# It differs from MAX_URL_BYTES on purpose: aiohttp reports both with the same exception and
# the limit it hit, and the limit tells a long URL (414) from a long header (431).
MAX_HEADER_FIELD_BYTES = 8190
# Header fields per request: aiohttp's default; a browser sends 15 to 20.
MAX_HEADERS = 128
# aiohttp's wording for the header-count error (aiohttp/_http_parser.pyx, http_parser.py).
_TOO_MANY_HEADERS = "Too many headers received"
# What every answer's Server header says: the product, no version of it or of what it runs on.
SERVER_NAME = "xlsx-stream-export"
# The HTTP versions spoken here (RFC 9112); any other gets 505.
_VERSIONS = (HttpVersion10, HttpVersion11)
# Where a request whose version is not spoken here keeps the version it asked for.
_ASKED_VERSION = web.RequestKey("httpedge_asked_version", HttpVersion)
# Linux keeps a socket buffer twice the size asked for with SO_SNDBUF/SO_RCVBUF (socket(7)).
KERNEL_BUFFER_FACTOR = 2
# At the end of a shutdown, handlers still running are cancelled; aiohttp then gets this long
# to finish each (a handler closes its upstream request or export channel and returns at once).
CANCEL_HANDLERS_TIMEOUT_S = 1.0


class ListenerSettings(Protocol):
    """The listener's settings in a service's configuration record (both services name them
    alike: :func:`httpedge.options.listener_options`)."""

    @property
    def header_timeout_s(self) -> float: ...
    @property
    def max_connections(self) -> int: ...
    @property
    def max_connections_per_client(self) -> int: ...
    @property
    def connection_limit_exempt(self) -> tuple[Network, ...]: ...
    @property
    def socket_buffer(self) -> int: ...


@dataclass(frozen=True)
class EdgeLimits:
    """Per-process connection limits; each service's config gives the values."""

    header_timeout_s: float
    max_connections: int
    max_connections_per_client: int = 0  # 0: no limit per client address
    exempt_clients: tuple[Network, ...] = ()  # addresses the per-client limit does not hold
    # The send and receive buffers of each client connection, bytes each (SO_SNDBUF and
    # SO_RCVBUF); None: the kernel's own, which grow to megabytes.
    socket_buffer: int | None = None

    @classmethod
    def of(cls, settings: ListenerSettings) -> EdgeLimits:
        """The limits a service's configuration sets (a socket buffer of 0: the kernel's own)."""
        return cls(
            header_timeout_s=settings.header_timeout_s,
            max_connections=settings.max_connections,
            max_connections_per_client=settings.max_connections_per_client,
            exempt_clients=settings.connection_limit_exempt,
            socket_buffer=settings.socket_buffer or None,
        )

    def exempt(self, address: str) -> bool:
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(parsed in network for network in self.exempt_clients)


def bound_buffers(sock: Any, size: int) -> None:
    """Fix a socket's send and receive buffers at ``size`` bytes each, as the kernel counts
    them (what ``ss`` shows as ``tb``/``rb``): Linux doubles the value it is given, for its
    bookkeeping (socket(7)), and stops growing a buffer whose size was set."""
    if sock is None:
        return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, max(size // KERNEL_BUFFER_FACTOR, 1))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, max(size // KERNEL_BUFFER_FACTOR, 1))


def break_off(request: web.BaseRequest) -> None:
    """End a response whose body had started, so that the client sees a failed transfer.

    HTTP/1.1 bodies here are chunked: closing without the final chunk is unambiguous (curl:
    exit 18, "transfer closed with outstanding read data remaining"; browsers mark the
    download failed). An HTTP/1.0 body has no chunks and ends with the connection, so a
    normal close (FIN) would look like a complete file (nginx speaks HTTP/1.0 to upstreams by
    default). There the connection ends with a TCP reset instead: SO_LINGER with a zero
    timeout makes ``close`` send RST, and the client reports an error (curl: exit 56).
    """
    transport = request.transport
    if transport is None:
        return
    if request.version < HttpVersion11:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def _classify(exc: HttpProcessingError, handler: RequestHandler) -> tuple[int, str, str]:
    """Status, code and message for a request aiohttp's parser refused (input never echoed)."""
    if isinstance(exc, LineTooLong):
        limit = exc.args[1] if len(exc.args) > 1 else None
        if limit == handler.max_line_size:
            return 414, "URI_TOO_LONG", f"The request URL is longer than {MAX_URL_BYTES:,} bytes."
        return (
            431,
            "HEADER_FIELDS_TOO_LARGE",
            f"A request header field is longer than {MAX_HEADER_FIELD_BYTES:,} bytes.",
        )
    if exc.message == _TOO_MANY_HEADERS:
        return (
            431,
            "HEADER_FIELDS_TOO_LARGE",
            f"The request has more than {MAX_HEADERS} header fields.",
        )
    return 400, "BAD_REQUEST", "The request is not valid HTTP/1.1."


class _EdgeRequest(web.BaseRequest):
    async def _prepare_hook(self, response: web.StreamResponse) -> None:
        # aiohttp has set its own Server header by now (Python's and its version); headers
        # are written after this hook.
        response.headers[hdrs.SERVER] = SERVER_NAME


class _Refused(asyncio.Protocol):
    """A connection past the cap: closed at once, nothing read."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.abort()


class _EdgeHandler(RequestHandler):
    """aiohttp's connection handler, reporting to :class:`EdgeServer`."""

    def __init__(self, edge: EdgeServer, **kwargs: Any) -> None:
        super().__init__(edge, **kwargs)
        self._edge = edge
        self._counted = True
        self.client: str | None = None  # the peer address, while counted against its limit
        self.active_at = time.monotonic()  # when it last began or ended a request

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        size = self._edge.limits.socket_buffer
        if size is not None:
            bound_buffers(transport.get_extra_info("socket"), size)
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        if not self._edge.admit_client(self, address):
            assert isinstance(transport, asyncio.Transport)
            transport.abort()

    def connection_lost(self, exc: BaseException | None) -> None:
        self.uncount()
        super().connection_lost(exc)

    def uncount(self) -> None:
        """No longer among the open connections (closed, or being closed to make room)."""
        if self._counted:
            self._counted = False
            self._edge.open_connections -= 1
        if self.client is not None:
            self._edge.client_left(self.client)
            self.client = None

    def waiting_for_request(self) -> bool:
        """Between requests: nothing of ours would be lost by closing it now (aiohttp waits
        for the next request's head on ``_waiter``; a request in progress, or an answer being
        written, has none)."""
        waiter = self._waiter
        return (
            self._counted
            and waiter is not None
            and not waiter.done()
            and not self._request_in_progress
        )

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        return self._edge.error_answer(self, request, exc)


class EdgeServer(web.Server):
    def __init__(
        self,
        handler: Callable[[web.BaseRequest], Awaitable[web.StreamResponse]],
        *,
        limits: EdgeLimits,
        logger: logging.Logger,
        error_headers: Mapping[str, str] | None = None,
        methods: str = "GET, HEAD",
    ) -> None:
        """``methods``: the ``Allow`` header of the answer to ``CONNECT`` (the service's
        methods); ``error_headers``: what the listener's own JSON answers carry besides."""
        # handler_cancellation: a client that goes away cancels its handler at once (the
        # services turn that into cancelling the export or closing the upstream request).
        super().__init__(self._serve, request_factory=self._request, handler_cancellation=True)
        self._service = handler
        self._edge_loop = asyncio.get_running_loop()
        self.limits = limits
        self._logger = logger
        self._error_headers = dict(error_headers or {})
        self._methods = methods
        self.open_connections = 0
        self.refused_connections = 0
        self.evicted_connections = 0
        self.refused_per_client = 0
        self._per_client: collections.Counter[str] = collections.Counter()
        self.draining = False
        self._in_flight = 0  # requests whose handler is running
        self._none_in_flight = asyncio.Event()
        self._none_in_flight.set()

    async def _serve(self, request: web.BaseRequest) -> web.StreamResponse:
        self._in_flight += 1
        self._none_in_flight.clear()
        protocol = request.protocol
        if isinstance(protocol, _EdgeHandler):
            protocol.active_at = time.monotonic()
        try:
            response = self._edge_answer(request) or await self._service(request)
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._none_in_flight.set()
            if isinstance(protocol, _EdgeHandler):
                protocol.active_at = time.monotonic()
        if self.draining:
            response.force_close()  # also a download that started before the drain
        return response

    def _edge_answer(self, request: web.BaseRequest) -> web.StreamResponse | None:
        """The listener's own answer to a request no service handles: another HTTP version,
        or CONNECT; None for every other request."""
        asked = request.get(_ASKED_VERSION)
        if asked is not None:
            version = f"HTTP/{asked.major}.{asked.minor}"
            self._logger.info("refused a request from %s: %s", request.remote, version)
            answer = self._own_error(
                request,
                505,
                "HTTP_VERSION_NOT_SUPPORTED",
                "This service speaks HTTP/1.1 (and HTTP/1.0) only.",
            )
        elif request.method == hdrs.METH_CONNECT:
            answer = self._own_error(
                request,
                405,
                "METHOD_NOT_ALLOWED",
                f"This method is not allowed here; use {self._methods}.",
                {hdrs.ALLOW: self._methods},
            )
        else:
            return None
        answer.force_close()  # a client that meant to speak something else: nothing more
        return answer

    def _own_error(
        self,
        request: web.BaseRequest,
        status: int,
        code: str,
        message: str,
        headers: Mapping[str, str] | None = None,
    ) -> web.Response:
        """A JSON error of the listener's own, with the request's id as the services' have."""
        return error_response(
            status,
            code,
            message,
            {
                **self._error_headers,
                **(headers or {}),
                REQUEST_ID_HEADER: request_id_of(request.headers),
            },
        )

    def drain(self) -> None:
        """Keep reading and answering every open connection, and close each after its next
        answer (the service answers what it no longer takes with its 503)."""
        self.draining = True

    def pre_shutdown(self) -> None:
        """aiohttp's runner calls this first when it stops (the BFF): drain, rather than
        aiohttp's own close, which leaves requests on idle connections unread."""
        self.drain()

    async def shutdown(self, timeout: float | None = None) -> None:  # noqa: ASYNC109 (aiohttp's)
        """Drain, let the requests in progress end within ``timeout`` seconds (0 or None: no
        wait), then cancel those still running and close every connection."""
        self.drain()
        if timeout:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._none_in_flight.wait(), timeout)
        await super().shutdown(CANCEL_HANDLERS_TIMEOUT_S)

    def __call__(self) -> Any:  # the protocol factory given to loop.create_server
        if self.open_connections >= self.limits.max_connections and not self._make_room():
            self.refused_connections += 1
            if self.refused_connections == 1 or self.refused_connections % 1000 == 0:
                self._logger.warning(
                    "connection limit (%d) reached with every connection busy: %d "
                    "connection(s) refused so far",
                    self.limits.max_connections,
                    self.refused_connections,
                )
            return _Refused()
        # Counted here, not in connection_made: a burst of accepts creates its protocols
        # before any of them is told about its connection.
        self.open_connections += 1
        return _EdgeHandler(
            self,
            loop=self._edge_loop,
            keepalive_timeout=self.limits.header_timeout_s,
            max_line_size=MAX_URL_BYTES,
            max_field_size=MAX_HEADER_FIELD_BYTES,
            max_headers=MAX_HEADERS,
        )

    def _make_room(self) -> bool:
        """Close the connection that has waited longest for a request; False if none waits."""
        idle = [
            handler
            for handler in self.connections
            if isinstance(handler, _EdgeHandler) and handler.waiting_for_request()
        ]
        if not idle:
            return False
        oldest = min(idle, key=lambda handler: handler.active_at)
        oldest.uncount()  # its place is the new connection's from now on
        oldest.force_close()
        self.evicted_connections += 1
        if self.evicted_connections == 1 or self.evicted_connections % 1000 == 0:
            self._logger.warning(
                "connection limit (%d) reached: %d idle connection(s) closed to make room",
                self.limits.max_connections,
                self.evicted_connections,
            )
        return True

    def admit_client(self, handler: _EdgeHandler, address: str) -> bool:
        """Count a new connection against its client's limit; False when that is reached."""
        limit = self.limits.max_connections_per_client
        if not limit or self.limits.exempt(address):
            return True
        if self._per_client[address] >= limit:
            self.refused_per_client += 1
            if self.refused_per_client == 1 or self.refused_per_client % 1000 == 0:
                self._logger.warning(
                    "per-client connection limit (%d) reached by %s: %d connection(s) "
                    "refused so far",
                    limit,
                    address,
                    self.refused_per_client,
                )
            return False
        self._per_client[address] += 1
        handler.client = address
        return True

    def client_left(self, address: str) -> None:
        self._per_client[address] -= 1
        if self._per_client[address] <= 0:
            del self._per_client[address]

    def _request(
        self,
        message: RawRequestMessage,
        payload: StreamReader,
        protocol: RequestHandler,
        writer: AbstractStreamWriter,
        task: asyncio.Task[None],
    ) -> web.BaseRequest:
        asked = None
        if message is not _PARSE_ERROR_MESSAGE and message.version not in _VERSIONS:
            asked = message.version  # answered 505 (_edge_answer) in HTTP/1.1
            message = message._replace(version=HttpVersion11)
        if message is _PARSE_ERROR_MESSAGE:
            # aiohttp answers a request it could not parse as HTTP/1.0; we speak HTTP/1.1.
            message = message._replace(version=HttpVersion11)
        request = _EdgeRequest(message, payload, protocol, writer, task, self._edge_loop)
        if asked is not None:
            request[_ASKED_VERSION] = asked
        return request

    def error_answer(
        self, handler: RequestHandler, request: web.BaseRequest, exc: BaseException | None
    ) -> web.StreamResponse:
        """The JSON answer to a parser error or to an exception that escaped a handler."""
        if request.writer.output_size > 0:
            # The response had started: no answer can follow. Break it off, so the client
            # sees a failed transfer, then tell aiohttp the connection is gone (its contract).
            if not isinstance(exc, ConnectionError):  # a client that left is no bug
                self._logger.error("unexpected error after the response started", exc_info=exc)
            break_off(request)
            raise ConnectionError("the response had already started")
        if isinstance(exc, HttpProcessingError):
            status, code, message = _classify(exc, handler)
            # The client's mistake, not ours: one line, no traceback, no request bytes.
            self._logger.info("refused a request from %s: %s", request.remote, message)
        else:
            # A bug: the traceback goes to the log, the client gets the JSON shape.
            self._logger.error("unexpected error answering a request", exc_info=exc)
            status, code, message = 500, "INTERNAL_ERROR", "Internal error."
        response = self._own_error(request, status, code, message)
        response.force_close()
        return response

    def metrics_text(self, prefix: str) -> str:
        """Prometheus text for the connection cap, e.g. ``http_connections_open``."""
        return prometheus.render(
            prometheus.gauge(
                f"{prefix}_connections_open", "Client connections open now.", self.open_connections
            ),
            prometheus.gauge(
                f"{prefix}_connections_max",
                "The open-connection cap.",
                self.limits.max_connections,
            ),
            prometheus.counter(
                f"{prefix}_connections_refused_total",
                "Connections closed at once: the cap was reached and every connection was busy.",
                self.refused_connections,
            ),
            prometheus.counter(
                f"{prefix}_connections_evicted_total",
                "Idle connections closed to make room for a new one at the cap.",
                self.evicted_connections,
            ),
            prometheus.counter(
                f"{prefix}_connections_refused_per_client_total",
                "Connections closed at once: their client address had as many open as one "
                "client may.",
                self.refused_per_client,
            ),
        )
