"""Talking to the API: one shared client session, header filtering and the chunk relay."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp
from aiohttp import web
from yarl import URL

from bff.errors import (
    ClientStalled,
    UpstreamAborted,
    UpstreamConnectFailed,
    UpstreamTimeout,
    UpstreamTooLarge,
    UpstreamUnavailable,
)
from httpedge.listener import bound_buffers

# Response headers worth relaying to the browser. An allowlist rather than a denylist: anything
# else the API sends (Server, internal debugging headers, hop-by-hop headers) stays inside.
RELAYED_HEADERS = (
    "Content-Type",
    "Content-Disposition",
    "Cache-Control",
    "Retry-After",
    "Content-Encoding",  # relayed raw: the session never decompresses
    "Content-Language",
    "X-Content-Type-Options",
    "WWW-Authenticate",
)
# RFC 9110 section 7.6.1: meaningful for one connection only, never forwarded. Listed for the
# tests and for anyone who widens the allowlist.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
    }
)
# Idle keep-alive connections to the API are kept this long: below the API's 15 s header
# timeout (which also ends its idle connections), so we never send a request on a connection
# the API is closing at that moment.
DEFAULT_KEEPALIVE_S = 10.0


def relayed_headers(upstream: Mapping[str, str]) -> dict[str, str]:
    """The subset of the API's response headers our client gets (Content-Length handled apart)."""
    connection_tokens = {
        token.strip().lower() for token in upstream.get("Connection", "").split(",") if token
    }
    out: dict[str, str] = {}
    for name in RELAYED_HEADERS:
        key = name.lower()
        if key in HOP_BY_HOP or key in connection_tokens:
            continue
        value = upstream.get(name)
        if value is not None:
            out[name] = value
    return out


def new_session(
    *,
    connect_timeout_s: float,
    read_timeout_s: float,
    max_connections: int,
    socket_buffer: int | None = None,
) -> aiohttp.ClientSession:
    """The one session every relay shares: bounded keep-alive pool, no total time limit.

    A healthy 1M-row export takes minutes, so only silence is timed: the connect, the gap
    between body chunks (``sock_read``), and, per request, the wait for headers.
    ``socket_buffer``: each connection's SO_RCVBUF and SO_SNDBUF, set before it connects (so
    the window it offers the API fits them); None: the kernel's own.
    """

    def bounded_socket(addr_info: Any) -> socket.socket:
        family, kind, proto, _, _ = addr_info
        sock = socket.socket(family, kind, proto)
        if socket_buffer is not None:
            bound_buffers(sock, socket_buffer)
        return sock

    connector = aiohttp.TCPConnector(
        limit=max_connections,
        limit_per_host=max_connections,
        keepalive_timeout=DEFAULT_KEEPALIVE_S,
        socket_factory=bounded_socket,
    )
    timeout = aiohttp.ClientTimeout(
        total=None, sock_connect=connect_timeout_s, sock_read=read_timeout_s
    )
    return aiohttp.ClientSession(
        connector=connector,
        timeout=timeout,
        auto_decompress=False,  # bytes go through untouched
        cookie_jar=aiohttp.DummyCookieJar(),  # never mix one client's cookies into another's
        raise_for_status=False,
    )


class Upstream:
    """One export API: requests to it through the shared session, its failures as our errors."""

    def __init__(
        self, base_url: str, session: aiohttp.ClientSession, *, headers_timeout_s: float
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._session = session
        self._headers_timeout_s = headers_timeout_s

    @property
    def base_url(self) -> str:
        return self._base_url

    async def open(
        self, path_and_query: str, headers: Mapping[str, str], *, method: str = "GET"
    ) -> aiohttp.ClientResponse:
        """Send the request and return once the API's status and headers are in."""
        url = self._base_url + path_and_query
        try:
            async with asyncio.timeout(self._headers_timeout_s):
                return await self._session.request(
                    method,
                    # encoded=True: the query goes upstream byte for byte, as the client sent it.
                    URL(url, encoded=True),
                    headers=dict(headers),
                    allow_redirects=False,
                )
        except (aiohttp.ConnectionTimeoutError, aiohttp.ClientConnectorError) as exc:
            # No TCP connection (refused, or none within the connect timeout): the API is down
            # or unreachable (502), not slow to answer, and it received nothing. Caught first:
            # a connect timeout is also a TimeoutError.
            raise UpstreamConnectFailed("The export service is unreachable.") from exc
        except TimeoutError as exc:  # includes aiohttp's ServerTimeoutError (sock_read)
            raise UpstreamTimeout(
                f"The export service did not answer within {self._headers_timeout_s:g} s."
            ) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise UpstreamUnavailable("The export service is unreachable.") from exc


async def relay_body(
    source: aiohttp.ClientResponse,
    sink: web.StreamResponse,
    on_chunk: Callable[[bytes], None],
    *,
    write_timeout_s: float,
    prefetched: bytes | None = None,
) -> None:
    """Copy the body chunk by chunk; each write waits for the client (drain), so a slow client
    stops us reading, which fills the socket buffers and slows the API in turn.
    ``prefetched``: the body, already read whole (``source``'s own is then consumed).

    Raises ``UpstreamAborted`` when the API's body breaks off; ``ConnectionError`` (or
    cancellation) from the write side means our own client went away, ``ClientStalled`` that
    it accepted nothing for ``write_timeout_s``.
    """
    content = source.content
    pending = prefetched
    while True:
        if pending is not None:
            chunk, pending = pending, None
        else:
            try:
                chunk = await content.readany()
            except (aiohttp.ClientError, TimeoutError) as exc:
                raise UpstreamAborted(f"The export service broke off the transfer: {exc}") from exc
        if not chunk:
            return
        try:
            async with asyncio.timeout(write_timeout_s):
                await sink.write(chunk)
        except TimeoutError:
            raise ClientStalled(f"client accepted nothing for {write_timeout_s:g} s") from None
        on_chunk(chunk)


async def read_bounded(source: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole body of a small answer, for relaying as one piece; ``UpstreamTooLarge`` as
    soon as it is known to exceed ``limit`` bytes (from Content-Length, or once that much has
    arrived), ``UpstreamUnavailable`` when the API breaks it off, ``UpstreamTimeout`` when
    it falls silent for the session's read timeout. The caller closes ``source`` on error.
    """
    too_large = UpstreamTooLarge(
        f"The export service's answer is larger than the {limit:,} bytes accepted."
    )
    if source.content_length is not None and source.content_length > limit:
        raise too_large
    body = bytearray()
    try:
        while chunk := await source.content.readany():
            body += chunk
            if len(body) > limit:
                raise too_large
    except TimeoutError as exc:  # aiohttp's ServerTimeoutError (sock_read) is one
        raise UpstreamTimeout("The export service stopped sending its answer.") from exc
    except aiohttp.ClientError as exc:
        raise UpstreamUnavailable("The export service broke off its answer.") from exc
    return bytes(body)
