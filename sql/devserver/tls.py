"""TLS for the dev server, sans-IO: what PRELOGIN's ENCRYPTION option agrees to, and the layer
of bytes between the socket and the TDS core that carries TDS through TLS.

Two ways in, as SQL Server offers them (MS-TDS 2.2.6.5, 3.3.5.1):

* TDS 7.x: PRELOGIN goes in clear.  If the two sides agree on encryption (:func:`negotiate`),
  the client's TLS handshake records come in TDS packets of type PRELOGIN (0x12) and the
  server's go back in PRELOGIN packets too; once the handshake is complete, TLS records go on
  the TCP stream as they are, each carrying TDS packets.  When the client sent ENCRYPT_OFF to a
  server that has a certificate but does not require encryption, only the LOGIN7 message is
  encrypted ("login only"): the login reply and everything after it are in clear.
* TDS 8.0 ("strict"): the client's first byte is a TLS ClientHello (0x16) offering ALPN
  ``tds/8.0``; the whole TDS conversation, PRELOGIN included, is inside TLS, and the PRELOGIN
  ENCRYPTION value negotiates nothing.

The ssl module's SSLObject with two MemoryBIOs is itself sans-IO (bytes in, bytes out, no
socket), so :class:`Wire` is too: it keeps the TLS state and the TDS framing of the handshake,
and the asyncio shell only moves bytes between it, the socket and the protocol core.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from enum import Enum
from os import PathLike

from sql.devserver import packets, requests
from sql.devserver.errors import ProtocolError
from sql.devserver.requests import (
    ENCRYPT_CLIENT_CERT,
    ENCRYPT_NOT_SUP,
    ENCRYPT_OFF,
    ENCRYPT_ON,
    ENCRYPT_REQ,
)

# The ALPN protocol id of TDS 8.0 (MS-TDS 1.9).
ALPN_TDS8 = "tds/8.0"
# The first byte of a TLS handshake record, a ClientHello's: no TDS packet type has this value,
# so one byte tells a TDS 8.0 client from a TDS 7.x one (MS-TDS 3.3.5.1).
TLS_HANDSHAKE_RECORD = 0x16
# TLS 1.2 at least, as SQL Server 2022 and Microsoft's current drivers: older versions have no
# cipher suites worth offering.
MIN_TLS = ssl.TLSVersion.TLSv1_2
# TDS 7.x carries TLS 1.2 at most, as SQL Server does (TLS 1.3 only with TDS 8.0).  With TLS
# 1.3 the client's handshake ends with its Finished, which it may send raw or in a PRELOGIN
# packet, and the server's session tickets follow the handshake: the PRELOGIN framing has no
# answer for either, while in TLS 1.2 the server speaks last and every handshake flight is
# framed.
TDS7_MAX_TLS = ssl.TLSVersion.TLSv1_2
# Plaintext read from the SSLObject at a time: a TLS record holds at most 16 KiB, so this takes
# a few records per call.
READ_SIZE = 64 * 1024


class TlsError(ProtocolError):
    """TLS records that do not decrypt (a broken or hostile client): the connection closes."""


class TlsFirstRefused(ProtocolError):
    """A TDS 8.0 client (TLS first) at a server without a certificate: the connection closes."""


@dataclass(frozen=True, slots=True)
class ServerTls:
    """The server's TLS contexts, from one certificate chain and key: one per TDS version, since
    they differ in the TLS versions allowed and in ALPN."""

    tds7: ssl.SSLContext
    tds8: ssl.SSLContext


def server_tls(
    cert_file: str | PathLike[str], key_file: str | PathLike[str] | None = None
) -> ServerTls:
    """Load a PEM certificate chain (the server's certificate first) and its private key
    (``key_file`` None: in ``cert_file``).  Raises OSError / ssl.SSLError at once for a file
    that is missing or does not hold a matching pair, so a server never starts half-configured.
    """

    def context(maximum: ssl.TLSVersion) -> ssl.SSLContext:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = MIN_TLS
        ctx.maximum_version = maximum
        # A renegotiation would put handshake records in the middle of a TDS stream.
        ctx.options |= ssl.OP_NO_RENEGOTIATION
        ctx.load_cert_chain(cert_file, key_file)
        return ctx

    tds8 = context(ssl.TLSVersion.MAXIMUM_SUPPORTED)
    tds8.set_alpn_protocols([ALPN_TDS8])
    return ServerTls(tds7=context(TDS7_MAX_TLS), tds8=tds8)


class ServerEncryption(Enum):
    """The server's setting, as the columns of MS-TDS 2.2.6.5's table name it."""

    NOT_SUP = "no certificate"  # ENCRYPT_NOT_SUP
    OFF = "encryption available"  # ENCRYPT_OFF: a certificate, encryption up to the client
    REQ = "encryption required"  # ENCRYPT_ON in the table: SQL Server's "Force Encryption"


class Channel(Enum):
    """What the connection does after the PRELOGIN reply."""

    CLEAR = "clear"  # no TLS (or, in TDS 8.0, no more than the TLS already there)
    LOGIN_ONLY = "login only"  # TLS handshake, LOGIN7 encrypted, then clear again
    FULL = "full"  # TLS handshake, everything after it encrypted
    REFUSE = "refuse"  # the reply, then the server closes the connection


@dataclass(frozen=True, slots=True)
class Negotiation:
    """The ENCRYPTION value the server replies with and what follows; ``why`` says, for a
    refused connection, what the server logs."""

    reply: int
    channel: Channel
    why: str = ""


# MS-TDS 2.2.6.5: the server's reply and the connection's encryption by the client's value
# (rows) and the server's setting (columns).  ENCRYPT_REQ from a client counts as ENCRYPT_ON.
_TABLE: dict[int, dict[ServerEncryption, tuple[int, Channel]]] = {
    ENCRYPT_OFF: {
        ServerEncryption.OFF: (ENCRYPT_OFF, Channel.LOGIN_ONLY),
        ServerEncryption.REQ: (ENCRYPT_REQ, Channel.FULL),
        ServerEncryption.NOT_SUP: (ENCRYPT_NOT_SUP, Channel.CLEAR),
    },
    ENCRYPT_ON: {
        ServerEncryption.OFF: (ENCRYPT_ON, Channel.FULL),
        ServerEncryption.REQ: (ENCRYPT_ON, Channel.FULL),
        ServerEncryption.NOT_SUP: (ENCRYPT_NOT_SUP, Channel.REFUSE),
    },
    ENCRYPT_NOT_SUP: {
        ServerEncryption.OFF: (ENCRYPT_NOT_SUP, Channel.CLEAR),
        ServerEncryption.REQ: (ENCRYPT_REQ, Channel.REFUSE),
        ServerEncryption.NOT_SUP: (ENCRYPT_NOT_SUP, Channel.CLEAR),
    },
}
_TABLE[ENCRYPT_REQ] = _TABLE[ENCRYPT_ON]

_REFUSALS = {
    ENCRYPT_ON: "the client asked for encryption, but the server has no certificate",
    ENCRYPT_REQ: "the client requires encryption, but the server has no certificate",
    ENCRYPT_NOT_SUP: "the client cannot encrypt, but the server requires encryption",
}


def negotiate(
    client: int | None, server: ServerEncryption, *, tls_first: bool = False
) -> Negotiation:
    """The answer to a client's PRELOGIN ENCRYPTION value (None: the option was missing).

    In TDS 8.0 (``tls_first``) the value is ignored (MS-TDS 2.2.6.5): the reply is
    ENCRYPT_NOT_SUP, which tells a client that reads it as TDS 7.x would to start no TLS
    handshake of its own inside the TLS already there, and the drivers that speak TDS 8.0
    (go-mssqldb, tedious, SqlClient) ignore it.  A client that says nothing about encryption
    cannot encrypt: it counts as ENCRYPT_NOT_SUP.
    """
    if tls_first:
        return Negotiation(ENCRYPT_NOT_SUP, Channel.CLEAR)
    value = ENCRYPT_NOT_SUP if client is None else client
    base = value & ~ENCRYPT_CLIENT_CERT
    if base not in _TABLE:
        return Negotiation(
            ENCRYPT_NOT_SUP, Channel.REFUSE, f"unknown PRELOGIN ENCRYPTION value {value:#04x}"
        )
    reply, channel = _TABLE[base][server]
    if value & ENCRYPT_CLIENT_CERT:
        # The table's answers, but certificate-based login is not something the dev server
        # does: refused either way (with ENCRYPT_NOT_SUP the table refuses it too).
        reply = ENCRYPT_REQ if base == ENCRYPT_NOT_SUP else reply
        why = "certificate-based authentication (ENCRYPT_CLIENT_CERT) is not supported"
        return Negotiation(reply, Channel.REFUSE, why)
    return Negotiation(reply, channel, _REFUSALS[base] if channel is Channel.REFUSE else "")


def client_encryption(options: dict[int, bytes]) -> int | None:
    """The ENCRYPTION value of a parsed PRELOGIN (None when the option is missing or empty)."""
    value = options.get(requests.PL_ENCRYPTION, b"")
    return value[0] if value else None


class WireState(Enum):
    FIRST = "first"  # nothing received yet: TDS or a TLS ClientHello?
    CLEAR = "clear"  # TDS in clear
    HANDSHAKE = "handshake"  # TLS handshake records: in PRELOGIN packets (7.x) or raw (8.0)
    TLS = "tls"  # TLS records carrying TDS
    CLOSED = "closed"  # refused or failed: nothing more is read


@dataclass(frozen=True, slots=True)
class Received:
    """What the bytes from the socket came to: ``data`` for the protocol core, ``reply`` to
    send back at once (handshake records, TLS alerts); ``handshake_done`` the first time the
    handshake completes; ``eof`` when the client ended TLS (close_notify); ``error`` when the
    handshake failed (send ``reply``, then close)."""

    data: bytes = b""
    reply: bytes = b""
    handshake_done: bool = False
    eof: bool = False
    error: str | None = None


class Wire:
    """One connection's bytes between the socket and the TDS core.

    :meth:`receive` takes what the socket read and returns TDS bytes plus anything to answer at
    once; :meth:`send` turns TDS bytes into what goes on the socket.  Clear until told
    otherwise: a first byte 0x16 starts a TDS 8.0 handshake, :meth:`start_handshake` a TDS 7.x
    one (after a PRELOGIN reply that agreed on encryption), :meth:`after_login` ends a login-only
    encryption.
    """

    def __init__(self, tls: ServerTls | None) -> None:
        self._tls = tls
        self.state = WireState.FIRST
        self.tls_first = False  # TDS 8.0
        self._wrapped = False  # handshake records in PRELOGIN packets (TDS 7.x)
        self._login_only = False
        self._buffer = bytearray()  # PRELOGIN packets of the handshake not yet whole
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._ssl: ssl.SSLObject | None = None

    @property
    def tls_version(self) -> str | None:
        """The TLS version agreed ("TLSv1.2", "TLSv1.3"), None before a handshake."""
        return None if self._ssl is None else self._ssl.version()

    @property
    def alpn(self) -> str | None:
        return None if self._ssl is None else self._ssl.selected_alpn_protocol()

    def start_handshake(self, *, login_only: bool) -> None:
        """TDS 7.x: the PRELOGIN reply agreed on encryption; the client's next bytes are its
        TLS handshake in PRELOGIN packets.  (The reply itself still goes out in clear.)"""
        if self._tls is None or self.state is not WireState.CLEAR:
            raise AssertionError(f"no TLS handshake can start in state {self.state}")
        self._start(self._tls.tds7, wrapped=True)
        self._login_only = login_only

    def refuse(self) -> None:
        """The server refused the connection (its reply is the last thing sent): whatever the
        client sends next is not read."""
        self.state = WireState.CLOSED

    def after_login(self) -> bytes:
        """The LOGIN7 message was received.  Login-only encryption ends here: the server's
        login reply and everything after it, both ways, are clear.  Returns bytes that came
        after the LOGIN7 records (clear TDS), normally none, since a client waits for the reply.
        """
        if not self._login_only or self.state is not WireState.TLS:
            return b""
        self._login_only = False
        self.state = WireState.CLEAR
        return self._incoming.read()

    def receive(self, data: bytes) -> Received:
        if self.state is WireState.FIRST and data:
            if data[0] == TLS_HANDSHAKE_RECORD:
                if self._tls is None:
                    self.state = WireState.CLOSED
                    raise TlsFirstRefused(
                        "a TLS ClientHello (TDS 8.0 strict encryption), but the server has no "
                        "certificate (--tls-cert)"
                    )
                self.tls_first = True
                self._start(self._tls.tds8, wrapped=False)
            else:
                self.state = WireState.CLEAR
        state = self.state
        if state is WireState.CLEAR or state is WireState.FIRST:
            return Received(data=data)
        if state is WireState.HANDSHAKE:
            return self._handshake(data)
        if state is WireState.TLS:
            return self._decrypt(data)
        raise ProtocolError("the client sent more after the server refused the connection")

    def send(self, data: bytes) -> bytes:
        """TDS bytes to socket bytes.  Clear before a handshake completes (the PRELOGIN reply
        goes out in clear, also when it agrees on encryption) and after login-only encryption."""
        if self.state is not WireState.TLS:
            return data
        assert self._ssl is not None
        view = memoryview(data)
        while view:
            view = view[self._ssl.write(view) :]
        return self._outgoing.read()

    def _start(self, context: ssl.SSLContext, *, wrapped: bool) -> None:
        self._ssl = context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self._wrapped = wrapped
        self.state = WireState.HANDSHAKE

    def _handshake(self, data: bytes) -> Received:
        assert self._ssl is not None
        if self._wrapped:
            self._buffer += data
            self._incoming.write(self._unwrap())
        else:
            self._incoming.write(data)
        try:
            self._ssl.do_handshake()
        except ssl.SSLWantReadError:
            return Received(reply=self._handshake_records())
        except ssl.SSLError as exc:
            # The client's alert (it does not trust the certificate), or the server's own
            # (no common cipher, not TLS at all): whatever alert there is goes out, then close.
            self.state = WireState.CLOSED
            return Received(reply=self._handshake_records(), error=f"TLS handshake failed: {exc}")
        self.state = WireState.TLS
        reply = self._handshake_records()  # the server's last flight
        # A TDS 8.0 client may send its first TDS bytes right behind its Finished; with TDS 7.x
        # anything after the handshake packets is TLS records on the stream already.
        rest = bytes(self._buffer)
        self._buffer.clear()
        after = self._decrypt(rest)
        return Received(
            data=after.data, reply=reply + after.reply, handshake_done=True, eof=after.eof
        )

    def _unwrap(self) -> bytes:
        """The TLS bytes of the whole PRELOGIN packets in the buffer (TDS 7.x handshake)."""
        out = bytearray()
        buf = self._buffer
        while len(buf) >= packets.HEADER_SIZE:
            kind, _status, length, _spid, _pid, _win = packets.HEADER.unpack_from(buf, 0)
            if kind != packets.PRELOGIN:
                raise ProtocolError(
                    f"expected the TLS handshake in PRELOGIN packets, got packet type {kind:#04x}"
                )
            if length < packets.HEADER_SIZE or length > packets.MAX_PACKET_SIZE + 1:
                raise ProtocolError(f"bad TDS packet length {length}")
            if len(buf) < length:
                break
            out += buf[packets.HEADER_SIZE : length]
            del buf[:length]
        return bytes(out)

    def _handshake_records(self) -> bytes:
        """The server's pending handshake bytes, framed as one PRELOGIN message for TDS 7.x
        (the client reads a whole message per flight)."""
        out = self._outgoing.read()
        if not out or not self._wrapped:
            return out
        return packets.Packetizer(packet_type=packets.PRELOGIN).finish(out)

    def _decrypt(self, data: bytes) -> Received:
        assert self._ssl is not None
        if data:
            self._incoming.write(data)
        chunks: list[bytes] = []
        eof = False
        while True:
            try:
                chunk = self._ssl.read(READ_SIZE)
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:
                if self._login_only:
                    # The client closed TLS after its LOGIN7: what follows is clear TDS.
                    self._login_only = False
                    self.state = WireState.CLEAR
                    chunks.append(self._incoming.read())
                else:
                    eof = True
                break
            except ssl.SSLError as exc:
                self.state = WireState.CLOSED
                raise TlsError(f"TLS records that do not decrypt: {exc}") from exc
            if not chunk:
                eof = True
                break
            chunks.append(chunk)
        # Reading can produce records to send (a TLS 1.3 KeyUpdate's answer).
        return Received(data=b"".join(chunks), reply=self._outgoing.read(), eof=eof)
