"""A minimal TDS-over-TLS client for tests, written from MS-TDS with the stdlib ssl module
(SSLObject and MemoryBIOs), sharing no code with the dev server:

* TDS 7.x (:func:`connect_tds7`): PRELOGIN in clear with an ENCRYPTION value; if the server's
  reply agrees on encryption, the TLS handshake travels in PRELOGIN (0x12) packets both ways,
  then TLS records go on the stream as they are; ENCRYPT_OFF answered with ENCRYPT_OFF encrypts
  the LOGIN7 only (:func:`login` goes back to clear after sending it).
* TDS 8.0 strict (:func:`connect_tds8`): TLS first, ALPN ``tds/8.0``, then PRELOGIN and
  everything else inside TLS.

:class:`TlsSocket` offers what :class:`tests.test_sql.tdsclient.RawClient` uses of a socket
(sendall, recv, recv_into, close), so the tests speak TDS through TLS with the same request
builders and reply walkers as in clear.  With ``record=True`` it keeps every byte that crossed
the socket, for tests that look at what an eavesdropper would see.
"""

from __future__ import annotations

import functools
import socket
import ssl
import struct
from collections.abc import Callable
from dataclasses import dataclass

from tests.test_sql import tdsclient

ALPN_TDS8 = "tds/8.0"
HOST = "127.0.0.1"
PRELOGIN = 0x12
# The packet size a client uses before login (PRELOGIN and the handshake): pytds' and SQL
# Server's default.
PRELOGIN_PACKET_SIZE = 4096


def context(
    cafile: str | None,
    *,
    alpn: list[str] | None = None,
    maximum: ssl.TLSVersion = ssl.TLSVersion.MAXIMUM_SUPPORTED,
) -> ssl.SSLContext:
    """A client context that verifies the chain against ``cafile`` and the host name, as
    Microsoft's current drivers do by default (None: trust any certificate)."""
    ctx = ssl.create_default_context(cafile=cafile)
    if cafile is None:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    ctx.maximum_version = maximum
    if alpn is not None:
        ctx.set_alpn_protocols(alpn)
    return ctx


class TlsSocket:
    """TLS over a connected socket, the handshake in PRELOGIN packets (``wrapped``, TDS 7.x)
    or as plain records (TDS 8.0)."""

    def __init__(
        self,
        sock: socket.socket,
        ctx: ssl.SSLContext,
        server_hostname: str,
        *,
        wrapped: bool,
        record: bool = False,
    ) -> None:
        self.sock = sock
        self.wrapped = wrapped
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.ssl = ctx.wrap_bio(self.incoming, self.outgoing, server_hostname=server_hostname)
        self.encrypting = False
        self.record = record
        self.sent = bytearray()  # every byte written to the socket (with record)
        self.received = bytearray()  # every byte read from it (with record)
        self._raw = bytearray()  # bytes read during the handshake, not yet whole packets

    # -- the raw socket ------------------------------------------------------------------------

    def _send_raw(self, data: bytes) -> None:
        if data:
            if self.record:
                self.sent += data
            self.sock.sendall(data)

    def _recv_raw(self, size: int = 1 << 16) -> bytes:
        data = self.sock.recv(size)
        if self.record:
            self.received += data
        return data

    # -- the handshake ----------------------------------------------------------------------

    def handshake(self) -> None:
        while True:
            try:
                self.ssl.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush_handshake()
                self._read_handshake()
        # TLS 1.3: the client's Finished is still to go (go-mssqldb does the same flush).
        self._flush_handshake()
        self.encrypting = True
        if self._raw:  # records behind the last handshake packet: TLS on the stream already
            self.incoming.write(bytes(self._raw))
            self._raw.clear()

    def _flush_handshake(self) -> None:
        out = self.outgoing.read()
        if out and self.wrapped:
            out = tdsclient.packets(PRELOGIN, out, PRELOGIN_PACKET_SIZE)
        self._send_raw(out)

    def _read_handshake(self) -> None:
        if not self.wrapped:
            data = self._recv_raw()
            if not data:
                raise ConnectionError("the server closed the connection during the handshake")
            self.incoming.write(data)
            return
        # One whole PRELOGIN message: the server's flight.
        while True:
            while len(self._raw) < 8 or len(self._raw) < struct.unpack_from(">H", self._raw, 2)[0]:
                data = self._recv_raw()
                if not data:
                    raise ConnectionError("the server closed the connection during the handshake")
                self._raw += data
            kind, status, length = struct.unpack_from(">BBH", self._raw, 0)
            assert kind == PRELOGIN, f"handshake packet of type {kind:#04x}, not PRELOGIN"
            self.incoming.write(bytes(self._raw[8:length]))
            del self._raw[:length]
            if status & 0x01:
                return

    def stop_tls(self) -> None:
        """Login-only encryption: the LOGIN7 went out encrypted, everything else is clear."""
        self.encrypting = False

    # -- what RawClient uses ------------------------------------------------------------------

    def sendall(self, data: bytes) -> None:
        if not self.encrypting:
            self._send_raw(data)
            return
        view = memoryview(data)
        while view:
            view = view[self.ssl.write(view) :]
        self._send_raw(self.outgoing.read())

    def prepare(self, data: bytes) -> Callable[[], None]:
        """Encrypt ``data`` now (the next bytes this client sends) and return the call that
        writes its records to the socket: timing tests then measure the socket write alone."""
        if not self.encrypting:
            return functools.partial(self._send_raw, data)
        view = memoryview(data)
        while view:
            view = view[self.ssl.write(view) :]
        return functools.partial(self._send_raw, self.outgoing.read())

    def recv(self, size: int) -> bytes:
        if not self.encrypting:
            return self._recv_raw(size)
        while True:
            try:
                return self.ssl.read(size)
            except ssl.SSLWantReadError:
                data = self._recv_raw()
                if not data:
                    return b""
                self.incoming.write(data)
            except ssl.SSLZeroReturnError:
                return b""

    def recv_into(self, buffer: memoryview, nbytes: int = 0) -> int:
        data = self.recv(nbytes or len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self.sock.close()


@dataclass
class Connection:
    """A client over TLS: ``client`` sends and reads TDS, ``tls`` is its TLS layer (None when
    the server's PRELOGIN reply agreed on no encryption), ``encryption`` the ENCRYPTION value of
    the server's PRELOGIN reply."""

    client: tdsclient.RawClient
    tls: TlsSocket | None
    encryption: int | None
    login_only: bool = False

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect_tds7(
    port: int,
    *,
    cafile: str | None,
    encryption: int = tdsclient.ENCRYPT_ON,
    server_hostname: str = "localhost",
    record: bool = False,
    maximum: ssl.TLSVersion = ssl.TLSVersion.MAXIMUM_SUPPORTED,
) -> Connection:
    """PRELOGIN with ``encryption``; then, if the server's reply agrees (MS-TDS 2.2.6.5), the
    TLS handshake in PRELOGIN packets.  Raises ConnectionError when the server closes."""
    sock = socket.create_connection((HOST, port), timeout=30)
    tls = TlsSocket(
        sock, context(cafile, maximum=maximum), server_hostname, wrapped=True, record=record
    )
    client = tdsclient.RawClient(sock=tls)
    try:
        tls.sendall(tdsclient.prelogin_message(encryption))
        reply = tdsclient.prelogin_encryption(client.read_reply().payload)
        encrypt = reply in (tdsclient.ENCRYPT_ON, tdsclient.ENCRYPT_REQ) or (
            reply == tdsclient.ENCRYPT_OFF and encryption == tdsclient.ENCRYPT_OFF
        )
        if reply == tdsclient.ENCRYPT_NOT_SUP and encryption in (
            tdsclient.ENCRYPT_ON,
            tdsclient.ENCRYPT_REQ,
        ):
            raise ConnectionRefusedError("the server cannot encrypt")
        if encrypt:
            tls.handshake()
    except BaseException:
        client.close()
        raise
    login_only = reply == tdsclient.ENCRYPT_OFF
    return Connection(client, tls if encrypt else None, reply, login_only)


def connect_tds8(
    port: int,
    *,
    cafile: str | None,
    alpn: list[str] | None = None,
    server_hostname: str = "localhost",
    prelogin_encryption: int = tdsclient.ENCRYPT_NOT_SUP,
    record: bool = False,
    maximum: ssl.TLSVersion = ssl.TLSVersion.MAXIMUM_SUPPORTED,
) -> Connection:
    """TLS first (ALPN ``tds/8.0`` unless ``alpn`` says otherwise; [] offers none), then
    PRELOGIN inside TLS.  Tedious sends ENCRYPT_NOT_SUP there, go-mssqldb 0x04: the server
    ignores it."""
    sock = socket.create_connection((HOST, port), timeout=30)
    ctx = context(cafile, alpn=[ALPN_TDS8] if alpn is None else alpn or None, maximum=maximum)
    tls = TlsSocket(sock, ctx, server_hostname, wrapped=False, record=record)
    client = tdsclient.RawClient(sock=tls)
    try:
        tls.handshake()
        tls.sendall(tdsclient.prelogin_message(prelogin_encryption))
        reply = tdsclient.prelogin_encryption(client.read_reply().payload)
    except BaseException:
        client.close()
        raise
    return Connection(client, tls, reply)


def login(
    conn: Connection, user: str, password: str, database: str = "", packet_size: int = 4096
) -> tdsclient.Reply:
    """Send LOGIN7 (encrypted if TLS is on) and read the reply (clear after login-only TLS)."""
    client = conn.client
    client.sock.sendall(tdsclient.login_message(user, password, database, packet_size))
    if conn.login_only and conn.tls is not None:
        conn.tls.stop_tls()
    reply = client.read_reply()
    client.packet_size = packet_size
    return reply
