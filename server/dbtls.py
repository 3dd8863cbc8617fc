"""Encryption of the connection to SQL Server, done below the driver with the standard library's
``ssl``: pytds speaks plain TDS to :class:`TlsTransport`, which carries it over TLS.

Two ways to encrypt, as Microsoft's drivers name them (``--mssql-encrypt``):

- ``on`` (TDS 7.x, MS-TDS 2.2.6.5): the PRELOGIN exchange is in clear. The client's PRELOGIN
  asks for encryption (ENCRYPTION = ENCRYPT_ON); the server's answer must allow it (ENCRYPT_ON or
  ENCRYPT_REQ), else the connection is refused here. The TLS handshake then travels inside TDS
  packets of type PRELOGIN (0x12); once it is done, every byte in both directions is a TLS
  record straight on the TCP stream, carrying the TDS packets of the login and everything after.
- ``strict`` (TDS 8.0): TLS from the first byte, with ALPN ``tds/8.0``, exactly as HTTPS does;
  the whole TDS conversation, PRELOGIN included, runs inside it.

pytds is told nothing of this (it is given no CA file, so its PRELOGIN says ENCRYPT_NOT_SUP and
it never starts TLS of its own): this transport rewrites the ENCRYPTION byte of pytds' PRELOGIN
on its way out, and of the server's answer on its way in. So the certificate is verified by
the standard library (the CA file or the system's store, the host name checked as HTTPS clients
check it, expiry, the chain), and pytds' reads, the fast row path's included, see the
decrypted stream through the same ``recv_into`` as before.

With encryption off the transport only reads the server's PRELOGIN answer: a server that
requires encryption is refused with words that say so, and a server that offers login-only
encryption (ENCRYPT_OFF) is told nothing of it, as MS-TDS has a client that does not support
encryption do; then it passes bytes through.

Below this transport is the :class:`~server.db.WatchedSocket`, so attentions, silence limits and
the watchdog work unchanged: an attention is a TDS packet, encrypted like any other.
"""

from __future__ import annotations

import enum
import functools
import ssl
import struct
from dataclasses import dataclass
from typing import Any, Final, Protocol, cast

# TDS packet header (MS-TDS 2.2.3.1): type, status, length (big-endian, header included), SPID,
# packet id, window.
_HEADER: Final = struct.Struct(">BBHHBB")
_PRELOGIN: Final = 0x12
_REPLY: Final = 0x04
_END_OF_MESSAGE: Final = 0x01
# PRELOGIN option tokens (MS-TDS 2.2.6.5): type, offset, length; 0xFF ends the list.
_OPTION: Final = struct.Struct(">BHH")
_OPTION_ENCRYPTION: Final = 0x01
_OPTIONS_END: Final = 0xFF
# The packet size before login (pytds' and SQL Server's default): handshake records are cut to
# fit it.
_PRELOGIN_PACKET: Final = 4096
# The largest read from the socket at once: TLS records are at most 16 KiB plus overhead, and
# the export's packets are 32 KiB; 64 KiB keeps reads few.
_READ_SIZE: Final = 64 * 1024
TDS8_ALPN: Final = "tds/8.0"


class Encrypt(enum.StrEnum):
    OFF = "off"
    ON = "on"
    STRICT = "strict"


class PreloginEncryption(enum.IntEnum):
    """The ENCRYPTION option's values (MS-TDS 2.2.6.5)."""

    OFF = 0x00
    ON = 0x01
    NOT_SUP = 0x02
    REQ = 0x03


class EncryptionError(OSError):
    """The connection could not be encrypted as configured; ``message`` says so for people.

    An ``OSError`` but not a ``ConnectionError``/``TimeoutError``: pytds would retry the login
    after those; a certificate that does not verify will not verify on a second try.
    """

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class TlsSettings:
    """How the API encrypts its connections to the database (from the configuration)."""

    encrypt: Encrypt
    ca_file: str | None = None  # None: the system's trust store
    host_name: str | None = None  # the name the certificate must carry (default: the host)
    trust_server_certificate: bool = False


class Transport(Protocol):
    """What pytds reads and writes through (``server.db.WatchedSocket``)."""

    def sendall(self, data: bytes, flags: int = 0) -> None: ...

    def recv(self, size: int, flags: int = 0) -> bytes: ...

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int: ...

    def settimeout(self, timeout: float | None) -> None: ...

    def gettimeout(self) -> float | None: ...

    def setsockopt(self, *args: Any) -> None: ...

    def close(self) -> None: ...


@functools.lru_cache(maxsize=8)
def client_context(settings: TlsSettings) -> ssl.SSLContext:
    """The TLS context of every connection with these settings (loading a trust store costs
    milliseconds: it is done once). TLS 1.2 at least, as SQL Server 2016 and later support."""
    context = ssl.create_default_context(cafile=settings.ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if settings.trust_server_certificate:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if settings.encrypt is Encrypt.STRICT:
        context.set_alpn_protocols([TDS8_ALPN])
    return context


def certificate_problem(exc: ssl.SSLError) -> str:
    """What is wrong with the server's certificate or the handshake, in words a person can act
    on (the configuration to check is named; OpenSSL's codes are not)."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        reason = str(exc.verify_message or "").lower()
        if "expired" in reason:
            why = "it has expired"
        elif "not yet valid" in reason:
            why = "it is not valid yet"
        elif "hostname mismatch" in reason or "ip address mismatch" in reason:
            why = (
                "it is for another host name (--mssql-host-name-in-certificate names the one"
                " it must carry)"
            )
        elif "self-signed" in reason or "self signed" in reason:
            why = "it is self-signed and not in --mssql-ca-file"
        elif "unable to get local issuer" in reason or "unknown ca" in reason:
            why = "it is not signed by a CA of --mssql-ca-file or the system's store"
        else:
            why = f"verification failed ({reason or 'no reason given'})"
        return f"the database's certificate is not trusted: {why}"
    return "the encrypted connection to the database could not be set up (TLS handshake failed)"


def prelogin_encryption(payload: bytes) -> int | None:
    """The ENCRYPTION option of a PRELOGIN payload, or None if it has none."""
    at = _option_offset(payload)
    return None if at is None else payload[at]


def with_prelogin_encryption(payload: bytes, value: int) -> bytes:
    """The PRELOGIN payload with its ENCRYPTION option set to ``value``."""
    at = _option_offset(payload)
    if at is None:
        raise EncryptionError("the database's PRELOGIN has no encryption option")
    return payload[:at] + bytes((value,)) + payload[at + 1 :]


def _option_offset(payload: bytes) -> int | None:
    pos = 0
    while pos < len(payload) and payload[pos] != _OPTIONS_END:
        if pos + _OPTION.size > len(payload):
            return None
        kind, offset, length = _OPTION.unpack_from(payload, pos)
        if kind == _OPTION_ENCRYPTION:
            return offset if length >= 1 and offset < len(payload) else None
        pos += _OPTION.size
    return None


def packets(kind: int, payload: bytes, size: int = _PRELOGIN_PACKET) -> bytes:
    """``payload`` as one TDS message of packets of ``kind``, each at most ``size`` bytes."""
    room = size - _HEADER.size
    out = bytearray()
    chunks = [payload[i : i + room] for i in range(0, len(payload), room)] or [b""]
    for number, chunk in enumerate(chunks, start=1):
        status = _END_OF_MESSAGE if number == len(chunks) else 0
        out += _HEADER.pack(kind, status, _HEADER.size + len(chunk), 0, number % 256, 0)
        out += chunk
    return bytes(out)


class _Phase(enum.Enum):
    PRELOGIN_OUT = "the client's PRELOGIN is next"
    PRELOGIN_IN = "the server's PRELOGIN answer is next"
    HANDSHAKE_DUE = "TLS starts before the client's next bytes"
    ENCRYPTED = "every byte is TLS"
    CLEAR = "every byte passes through (encryption off)"


class TlsTransport:
    """pytds' transport (``TransportProtocol``), encrypting over ``inner`` (or, with
    encryption off, checking the PRELOGIN answer and passing bytes through)."""

    def __init__(self, inner: Transport, settings: TlsSettings, host: str) -> None:
        self._inner = inner
        self._settings = settings
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls: ssl.SSLObject | None = None
        if settings.encrypt is not Encrypt.OFF:
            self._tls = client_context(settings).wrap_bio(
                self._incoming,
                self._outgoing,
                server_side=False,
                server_hostname=settings.host_name or host,
            )
        self._clear = b""  # what pytds reads next before TLS (the rewritten PRELOGIN answer)
        self._raw = bytearray()  # bytes read from the socket and not used yet
        self._phase = _Phase.PRELOGIN_OUT
        if settings.encrypt is Encrypt.STRICT:
            self._handshake(wrapped=False)
            self._phase = _Phase.ENCRYPTED

    # -- pytds' transport protocol ------------------------------------------------------------

    def settimeout(self, timeout: float | None) -> None:
        self._inner.settimeout(timeout)

    def gettimeout(self) -> float | None:
        return self._inner.gettimeout()

    def setsockopt(self, *args: Any) -> None:
        self._inner.setsockopt(*args)

    def close(self) -> None:
        self._inner.close()

    def sendall(self, data: bytes, flags: int = 0) -> None:
        if self._phase is _Phase.CLEAR:
            self._inner.sendall(data, flags)
            return
        if self._phase is _Phase.ENCRYPTED:
            assert self._tls is not None
            self._tls.write(bytes(data))
            self._flush()
            return
        if self._phase is _Phase.PRELOGIN_OUT:
            if self._tls is None:
                self._inner.sendall(data, flags)
            else:
                self._inner.sendall(self._asking_for_encryption(bytes(data)))
            self._phase = _Phase.PRELOGIN_IN
            return
        if self._phase is _Phase.HANDSHAKE_DUE:
            if self._tls is None:
                self._phase = _Phase.CLEAR
            else:
                self._handshake(wrapped=True)
                self._phase = _Phase.ENCRYPTED
            self.sendall(data)
            return
        raise EncryptionError("the driver wrote before reading the database's PRELOGIN answer")

    def recv_into(self, buffer: Any, nbytes: int = 0, flags: int = 0) -> int:
        size = nbytes or len(buffer)
        if self._phase is _Phase.CLEAR and not self._clear:
            return self._inner.recv_into(buffer, size)
        if self._phase is _Phase.ENCRYPTED:
            assert self._tls is not None
            while True:
                try:
                    # With a buffer, read() fills it and returns the count (typeshed says bytes).
                    return cast(int, self._tls.read(size, buffer))
                except ssl.SSLWantReadError:
                    if not self._fill_incoming():
                        return 0
                except ssl.SSLZeroReturnError:
                    return 0
        data = self.recv(size)
        buffer[: len(data)] = data
        return len(data)

    def recv(self, size: int, flags: int = 0) -> bytes:
        if self._phase is _Phase.ENCRYPTED:
            buffer = bytearray(size)
            count = self.recv_into(buffer, size)
            return bytes(buffer[:count])
        if self._phase is _Phase.CLEAR and not self._clear:
            return self._inner.recv(size)
        if self._phase is _Phase.PRELOGIN_IN:
            self._clear = self._answered_prelogin() + bytes(self._raw)
            self._raw.clear()
            self._phase = _Phase.HANDSHAKE_DUE
        data, self._clear = self._clear[:size], self._clear[size:]
        return data

    # -- the PRELOGIN exchange --------------------------------------------------------------------

    def _asking_for_encryption(self, message: bytes) -> bytes:
        """pytds' PRELOGIN (one packet: it is ~50 bytes) asking for encryption."""
        kind, status, length = message[0], message[1], _HEADER.unpack_from(message)[2]
        if kind != _PRELOGIN or not status & _END_OF_MESSAGE or length != len(message):
            raise EncryptionError("the driver's PRELOGIN is not one packet")
        payload = with_prelogin_encryption(message[_HEADER.size :], PreloginEncryption.ON)
        return packets(_PRELOGIN, payload)

    def _answered_prelogin(self) -> bytes:
        """The server's PRELOGIN answer, checked and told to pytds as ENCRYPT_NOT_SUP."""
        kind, payload = self._read_message()
        value = prelogin_encryption(payload)
        if kind != _REPLY or value is None:
            raise EncryptionError("the database answered PRELOGIN with something else")
        if self._tls is None:
            if value == PreloginEncryption.REQ:
                raise EncryptionError(
                    "the database requires encryption (connect with --mssql-encrypt on)"
                )
        elif value not in (PreloginEncryption.ON, PreloginEncryption.REQ):
            raise EncryptionError(
                "the database does not offer encryption (set it up on the server, or"
                " --mssql-encrypt off to connect in clear)"
            )
        return packets(_REPLY, with_prelogin_encryption(payload, PreloginEncryption.NOT_SUP))

    def _read_message(self) -> tuple[int, bytes]:
        """One TDS message from the socket, in clear: its packet type and payload."""
        kind, payload, last = 0, bytearray(), False
        while not last:
            while len(self._raw) < _HEADER.size:
                self._read_raw()
            kind, status, length, _, _, _ = _HEADER.unpack_from(self._raw)
            if length < _HEADER.size:
                raise EncryptionError("the database sent a malformed packet")
            while len(self._raw) < length:
                self._read_raw()
            payload += self._raw[_HEADER.size : length]
            del self._raw[:length]
            last = bool(status & _END_OF_MESSAGE)
        return kind, bytes(payload)

    def _read_raw(self) -> None:
        chunk = self._inner.recv(_READ_SIZE)
        if not chunk:
            raise EncryptionError("the database closed the connection during the TLS set-up")
        self._raw += chunk

    # -- TLS -----------------------------------------------------------------------------------

    def _handshake(self, *, wrapped: bool) -> None:
        """The TLS handshake: in PRELOGIN packets (TDS 7.x) or straight on the socket (8.0)."""
        assert self._tls is not None
        while True:
            try:
                self._tls.do_handshake()
            except ssl.SSLWantReadError:
                self._send_handshake(wrapped)
                if wrapped:
                    _, records = self._read_message()
                    self._incoming.write(records)
                elif not self._fill_incoming():
                    raise EncryptionError(
                        "the database closed the connection during the TLS handshake (does it"
                        " support TDS 8.0? --mssql-encrypt on asks for TDS 7.x encryption)"
                    ) from None
            except ssl.SSLError as exc:
                raise EncryptionError(certificate_problem(exc)) from exc
            else:
                self._send_handshake(wrapped)
                break
        if self._settings.encrypt is Encrypt.STRICT and self._tls.selected_alpn_protocol() not in (
            TDS8_ALPN,
            None,
        ):
            raise EncryptionError("the database chose another protocol than TDS 8.0")
        if self._raw:  # records that came with the last handshake message, if any
            self._incoming.write(bytes(self._raw))
            self._raw.clear()

    def _send_handshake(self, wrapped: bool) -> None:
        records = self._outgoing.read()
        if records:
            self._inner.sendall(packets(_PRELOGIN, records) if wrapped else records)

    def _flush(self) -> None:
        records = self._outgoing.read()
        if records:
            self._inner.sendall(records)

    def _fill_incoming(self) -> bool:
        """More TLS records from the socket; False at its end."""
        if self._raw:
            self._incoming.write(bytes(self._raw))
            self._raw.clear()
            return True
        chunk = self._inner.recv(_READ_SIZE)
        if not chunk:
            return False
        self._incoming.write(chunk)
        return True
