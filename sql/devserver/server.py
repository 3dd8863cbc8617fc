"""The asyncio shell around the sans-IO core: sockets, timing and counters.

Per connection a reader task feeds :class:`~sql.devserver.protocol.ServerConnection` and queues
its events, so an ATTENTION is seen at once even while the worker is blocked in ``drain()``;
the worker answers requests one by one, streaming rows in chunks and awaiting ``drain()``
after each write so a client that stops reading stops the server (bounded memory).

TLS sits between the socket and the core (:class:`~sql.devserver.tls.Wire`, sans-IO too): the
reader task passes what it reads through the wire (decrypting, answering handshake records at
once) before the core sees it, and every write of the worker goes through the wire's ``send``
before the transport, so backpressure (the transport's buffer of ciphertext), attention and the
faults work the same with and without encryption.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from os import PathLike
from types import TracebackType

from sql.devserver import engine, faults, packets, protocol, requests, tls
from sql.devserver.errors import DevServerError, ProtocolError
from sql.devserver.faults import Faults as Faults

log = logging.getLogger(__name__)

DEV_USER = "sa"
DEV_PASSWORD = "DevOnly_Passw0rd!"
DEV_DATABASE = "ExportDemo"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 1433  # SQL Server's registered port
# Rows encoded per write at most (a source also stops at rowsource.CHUNK_BYTES): ~256 x 75
# bytes = ~19 KiB of the report, a few 4 KiB packets per write, so writes are big enough to be
# cheap and small enough that the per-connection buffer stays bounded.
DEFAULT_ROWS_PER_CHUNK = 256
# Transport buffer above which the server stops producing (asyncio's own default high-water
# mark, 64 KiB); with one chunk in flight, memory per connection stays under ~100 KiB.
DEFAULT_WRITE_BUFFER_HIGH = 64 * 1024
# Bytes the kernel may hold unsent per connection (Linux TCP_NOTSENT_LOWAT: the socket reports
# writable only below it).  Without it the send buffer autotunes to tcp_wmem's maximum (4 MiB
# here, ~55,000 report rows) that a cancelling client must read through before DONE(ATTN):
# ~3-4 s for pytds' own cancel(). 128 KiB took that to ~0.1 s but also held back a client that
# reads fast: the export's fast row path read 1M rows in 3.9 s instead of 2.4 s (python -m
# tests.bench.row_path). 1 MiB keeps the fast reader at full speed and a pytds cancel under
# ~0.5 s (~14,000 rows); the fast path skips rows in flight at ~1.7M rows/s.
DEFAULT_UNSENT_LOW_WATER = 1024 * 1024
# Bytes read from a client at a time: requests are small, so this only bounds a flood.
READ_SIZE = 64 * 1024
# Requests waiting behind the one being answered.  A TDS client sends the next request only
# after the previous reply ended (ATTENTION excepted), so more than a couple is a broken or
# hostile client; the bound keeps memory per connection bounded while rows stream.
MAX_QUEUED_REQUESTS = 8


@dataclass
class DevServerStats:
    """What happened since the server started; ``dbo.spDevServerStats`` returns the counters."""

    connections_total: int = 0
    connections_open: int = 0
    logins_failed: int = 0
    requests: int = 0
    rows_sent: int = 0
    attentions: int = 0
    attentions_answered: int = 0  # DONE(ATTN) tokens sent
    rows_at_last_attention: int = 0  # rows_sent when the last ATTENTION arrived
    backpressure_pauses: int = 0  # times production waited for the client to read
    last_pause_at: float | None = None  # time.monotonic() of the last such wait
    tls_handshakes: int = 0  # TLS handshakes completed (TDS 7.x in PRELOGIN packets, TDS 8.0)
    tls_failures: int = 0  # TLS handshakes that failed (a client that rejects the certificate)
    encryption_refused: int = 0  # connections closed for encryption, as "Force Encryption" does

    def counters(self) -> dict[str, int]:
        """The counters by name, as ``dbo.spDevServerStats`` returns them."""
        return {name: getattr(self, name) for name in engine.STATS_COLUMNS}


class _Dropped(DevServerError):
    """The drop_after_rows fault closed the connection."""


def prelogin_reply(encryption: int) -> bytes:
    """The server's PRELOGIN, with the ENCRYPTION value :func:`tls.negotiate` chose."""
    return requests.build_prelogin(
        {
            requests.PL_VERSION: bytes((16, 0)) + (4096).to_bytes(2, "big") + b"\x00\x00",
            requests.PL_ENCRYPTION: bytes((encryption,)),
            requests.PL_INSTOPT: b"\x00",
            requests.PL_THREADID: b"",
            requests.PL_MARS: b"\x00",  # MARS off: a MARS reply would switch clients to SMP
        }
    )


class _Connection:
    def __init__(
        self, server: DevServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.core = protocol.ServerConnection()
        self.wire = tls.Wire(server.tls)
        # The PRELOGIN's answer, decided by the reader task when the PRELOGIN arrives (the wire
        # must know before the client's next bytes) and sent by the worker.
        self.negotiation = tls.Negotiation(requests.ENCRYPT_NOT_SUP, tls.Channel.CLEAR)
        self.session = engine.Session(server.credentials, server.stats.counters)
        self.queue: asyncio.Queue[tuple[protocol.Event, int] | None] = asyncio.Queue()
        self.attention = asyncio.Event()
        self.attentions_received = 0
        self.attentions_answered = 0
        self.worker: asyncio.Task[None] | None = None
        writer.transport.set_write_buffer_limits(high=server.write_buffer_high)
        sock = writer.get_extra_info("socket")
        if sock is not None and hasattr(socket, "TCP_NOTSENT_LOWAT"):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT, server.unsent_low_water)

    @property
    def stats(self) -> DevServerStats:
        return self.server.stats

    async def run(self) -> None:
        read_task = asyncio.create_task(self._read_loop())
        self.worker = asyncio.create_task(self._work())
        try:
            # asyncio.wait, not await: a worker cancelled by DevServer.close() ends quietly.
            await asyncio.wait([self.worker])
            if not self.worker.cancelled() and (exc := self.worker.exception()) is not None:
                if not isinstance(exc, ConnectionError | _Dropped | ProtocolError):
                    raise exc
                log.debug("connection ended: %r", exc)
        finally:
            self.worker.cancel()
            read_task.cancel()
            await asyncio.wait([read_task])
            self.writer.transport.abort()

    def abort(self) -> None:
        """End the connection now (server shutdown)."""
        self.writer.transport.abort()
        if self.worker is not None:
            self.worker.cancel()

    async def _read_loop(self) -> None:
        try:
            while data := await self.reader.read(READ_SIZE):
                received = self._receive(data)
                if received.error is not None:
                    log.info("closing a connection: %s", received.error)
                    break
                if received.data:
                    self._feed(received.data)
                if received.eof:
                    break
        except ConnectionError as exc:
            log.debug("reader stopped: %r", exc)
        except ProtocolError as exc:
            # Not TDS (or a client that ignores the protocol): nothing sensible to answer.
            log.info("closing a connection: %s", exc)
            self.writer.transport.abort()
        finally:
            if self.wire.state is tls.WireState.HANDSHAKE:
                # The client left mid-handshake: pytds and OpenSSL clients that reject the
                # certificate close without sending an alert.
                self.stats.tls_failures += 1
            self.queue.put_nowait(None)
        # The client closed its end: no TDS client half-closes and still reads, so stop now
        # rather than produce rows nobody will read (a worker blocked in drain() wakes up).
        self.writer.transport.abort()

    def _receive(self, data: bytes) -> tls.Received:
        """Socket bytes through the wire; its answers (handshake records, alerts, a TLS 1.3
        KeyUpdate's) go out at once, from this task.  Whichever task writes, it takes the
        wire's output and writes it in one synchronous step, so TLS records keep their order."""
        try:
            received = self.wire.receive(data)
        except tls.TlsFirstRefused:
            self.stats.encryption_refused += 1
            raise
        if received.reply:
            self.writer.write(received.reply)
        if received.handshake_done:
            self.stats.tls_handshakes += 1
            log.debug(
                "TLS handshake (%s): %s, ALPN %s",
                "TDS 8.0" if self.wire.tls_first else "TDS 7.x",
                self.wire.tls_version,
                self.wire.alpn,
            )
        if received.error is not None:
            self.stats.tls_failures += 1
        return received

    def _feed(self, data: bytes) -> None:
        """TDS bytes into the core; its events to the worker's queue (ATTENTION flagged at
        once).  The PRELOGIN's encryption is settled here, before the client's next bytes."""
        self.core.receive_data(data)
        while (event := self.core.next_event()) is not None:
            if isinstance(event, protocol.AttentionReceived):
                self.stats.attentions += 1
                self.stats.rows_at_last_attention = self.stats.rows_sent
                self.attentions_received += 1
                self.attention.set()
            elif self.queue.qsize() >= MAX_QUEUED_REQUESTS:
                raise ProtocolError("client sent requests without reading the replies")
            elif isinstance(event, protocol.PreLoginReceived):
                self._negotiate(event)
            elif isinstance(event, protocol.LoginReceived):
                self._login_received()
            self.queue.put_nowait((event, self.attentions_received))

    def _login_received(self) -> None:
        """Login-only encryption ends with the LOGIN7 (the login reply goes out in clear):
        bytes that came behind it are clear TDS."""
        if rest := self.wire.after_login():
            self.core.receive_data(rest)

    def _negotiate(self, event: protocol.PreLoginReceived) -> None:
        server = self.server
        self.negotiation = negotiation = tls.negotiate(
            tls.client_encryption(event.options), server.encryption, tls_first=self.wire.tls_first
        )
        channel = negotiation.channel
        if channel is tls.Channel.REFUSE:
            self.stats.encryption_refused += 1
            log.info("refusing a connection: %s", negotiation.why)
            self.wire.refuse()
        elif channel is tls.Channel.FULL or channel is tls.Channel.LOGIN_ONLY:
            self.wire.start_handshake(login_only=channel is tls.Channel.LOGIN_ONLY)

    async def _work(self) -> None:
        while (item := await self.queue.get()) is not None:
            event, attention_seq = item
            if isinstance(event, protocol.AttentionReceived):
                if attention_seq > self.attentions_answered:
                    # Idle when it arrived (the request already ended): a message of its own.
                    self.attentions_answered = attention_seq
                    self.attention.clear()
                    self.stats.attentions_answered += 1
                    await self._send(self.core.reply(self.session.attention_done()))
                continue
            if not await self._handle(event):
                return

    async def _send(self, data: bytes) -> None:
        if data:
            self.writer.write(self.wire.send(data))
            await self._drain()

    async def _drain(self) -> None:
        """Wait while the client is behind (the transport buffer above its high-water mark)
        until it catches up or an ATTENTION arrives.  Yields to the event loop either way, so
        the reader task sees an attention even from a client that keeps up."""
        if self.writer.transport.get_write_buffer_size() <= self.server.write_buffer_high:
            await asyncio.sleep(0)
            return
        self.stats.backpressure_pauses += 1
        self.stats.last_pause_at = time.monotonic()
        if self._attention_pending():
            await self.writer.drain()  # answering it: the last packet waits like any write
            return
        drained = asyncio.ensure_future(self.writer.drain())
        noticed = asyncio.ensure_future(self.attention.wait())
        try:
            await asyncio.wait((drained, noticed), return_when=asyncio.FIRST_COMPLETED)
        finally:
            drained.cancel()
            noticed.cancel()
            await asyncio.wait((drained, noticed))
        if not drained.cancelled():
            drained.result()  # a connection lost while waiting raises here

    async def _handle(self, event: protocol.Event) -> bool:
        """Answer one request; False ends the connection."""
        if isinstance(event, protocol.PreLoginReceived):
            negotiation = self.negotiation
            await self._send(self.core.reply(prelogin_reply(negotiation.reply)))
            # A refusal ends the connection after the reply, as SQL Server does.
            return negotiation.channel is not tls.Channel.REFUSE
        if isinstance(event, protocol.LoginReceived):
            return await self._login(event.login)
        self.stats.requests += 1
        if isinstance(event, protocol.BatchReceived):
            reply = self.session.batch(event.text)
        elif isinstance(event, protocol.RpcReceived):
            reply = self.session.rpc(event.rpc)
        elif isinstance(event, protocol.TransactionReceived):
            reply = self.session.transaction_request(event.transaction)
        elif isinstance(event, protocol.BadRequest):
            reply = self.session.bad_request(event.reason)
        else:  # pragma: no cover - every event type is handled above
            raise AssertionError(event)
        await self._stream(reply)
        return True

    async def _login(self, login: requests.Login) -> bool:
        faults = self.server.faults
        if faults.login_delay > 0:
            await asyncio.sleep(faults.login_delay)
        if faults.refuse_logins:
            ok, payload, size = False, self.session.login_refused(login.user), 0
        else:
            ok, payload, size = self.session.login(login)
        if not ok:
            # Counted before the reply goes out: a client that has its error may look at once.
            self.stats.logins_failed += 1
        await self._send(self.core.reply(payload))
        if not ok:
            self.core.login_failed()
            return False  # SQL Server closes the connection after a failed login
        self.core.login_succeeded(size)
        return True

    def _attention_pending(self) -> bool:
        return self.attentions_received > self.attentions_answered

    async def _wait_or_attention(self, seconds: float) -> None:
        """Sleep, waking early when an ATTENTION arrives."""
        if seconds > 0 and not self._attention_pending():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.attention.wait(), seconds)

    async def _stream(self, reply: engine.Reply) -> None:
        packetizer = self.core.packetizer()
        skip = 0  # parts of a procedure that a mid-stream error ended
        for part in reply:
            if self._attention_pending():
                break
            if skip:
                skip -= 1
            elif isinstance(part, bytes):
                await self._send(packetizer.add(part))
            elif not await self._rows(part, packetizer):
                skip = part.skip_on_error
        if self._attention_pending():
            # Stop at a token boundary and acknowledge: DONE with ATTN ends the message.
            self.attentions_answered = self.attentions_received
            self.attention.clear()
            self.stats.attentions_answered += 1
            await self._send(packetizer.finish(self.session.attention_done()))
            return
        await self._send(packetizer.finish())

    async def _rows(self, rows: engine.Rows, packetizer: packets.Packetizer) -> bool:
        """Stream a result's rows (with the faults the server is set to inject), then its
        trailer; an ATTENTION stops it between chunks.  False when an error ended the rows
        (and with them the procedure)."""
        stats = self.stats
        server = self.server
        for step in faults.steps(rows.source, server.faults, server.rows_per_chunk):
            if isinstance(step, faults.Chunk):
                if self._attention_pending():
                    return True  # _stream answers the attention
                data = packetizer.add(step.payload)
                stats.rows_sent += step.rows
                if data:
                    self.writer.write(self.wire.send(data))
                await self._drain()  # every chunk: an attention is looked at between chunks
            elif isinstance(step, faults.Pause):
                await self._send(packetizer.flush())
                await self._wait_or_attention(step.seconds)
            elif isinstance(step, faults.Fail):
                trailer = self.session.error_trailer(rows, step.rows_sent, step.number, step.text)
                await self._send(packetizer.add(trailer))
                return False
            else:
                # Deliver the rows produced so far, then close without a reply's end.
                await self._send(packetizer.flush())
                raise _Dropped(f"dropped after {step.rows_sent} rows")
        await self._send(packetizer.add(rows.trailer))
        return True


class DevServer:
    """A TDS 7.4 server for ``dbo.spGenerateData`` and the test procedures, on one asyncio
    event loop."""

    def __init__(
        self,
        *,
        host: str = DEFAULT_HOST,
        port: int = 0,
        user: str = DEV_USER,
        password: str = DEV_PASSWORD,
        database: str = DEV_DATABASE,
        faults: Faults | None = None,
        rows_per_chunk: int = DEFAULT_ROWS_PER_CHUNK,
        write_buffer_high: int = DEFAULT_WRITE_BUFFER_HIGH,
        unsent_low_water: int = DEFAULT_UNSENT_LOW_WATER,
        tls_cert: str | PathLike[str] | None = None,
        tls_key: str | PathLike[str] | None = None,
        require_encryption: bool = False,
    ) -> None:
        """``tls_cert`` (PEM: the server's certificate, then any intermediates) and ``tls_key``
        (PEM; None: in ``tls_cert``) let clients encrypt (PRELOGIN ENCRYPT_ON/ENCRYPT_OFF and
        TDS 8.0); ``require_encryption`` refuses a client that will not (needs a certificate).
        The files are loaded here: a bad one raises OSError / ssl.SSLError before any socket."""
        if require_encryption and tls_cert is None:
            raise ValueError("require_encryption needs a certificate (tls_cert)")
        if tls_key is not None and tls_cert is None:
            raise ValueError("tls_key without tls_cert")
        self.tls = None if tls_cert is None else tls.server_tls(tls_cert, tls_key)
        if self.tls is None:
            self.encryption = tls.ServerEncryption.NOT_SUP
        elif require_encryption:
            self.encryption = tls.ServerEncryption.REQ
        else:
            self.encryption = tls.ServerEncryption.OFF
        self.host = host
        self._requested_port = port
        self.credentials = engine.Credentials(user=user, password=password, database=database)
        self.faults = faults if faults is not None else Faults()
        self.stats = DevServerStats()
        self.rows_per_chunk = rows_per_chunk
        self.write_buffer_high = write_buffer_high
        self.unsent_low_water = unsent_low_water
        self._server: asyncio.Server | None = None
        self._connections: dict[asyncio.Task[None], _Connection] = {}

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            raise DevServerError("the dev server is not started")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, self.host, self._requested_port, reuse_address=True
        )

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        assert self._server is not None
        await self._server.serve_forever()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        connection = _Connection(self, reader, writer)
        self._connections[task] = connection
        self.stats.connections_total += 1
        self.stats.connections_open += 1
        try:
            await connection.run()
        finally:
            self.stats.connections_open -= 1
            self._connections.pop(task, None)

    async def close(self) -> None:
        """Stop listening and end every live connection."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for connection in list(self._connections.values()):
            connection.abort()
        if self._connections:
            await asyncio.wait(list(self._connections))
        if server is not None:
            await server.wait_closed()

    async def __aenter__(self) -> DevServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


@contextlib.contextmanager
def run_in_thread(
    *,
    host: str = DEFAULT_HOST,
    port: int = 0,
    user: str = DEV_USER,
    password: str = DEV_PASSWORD,
    database: str = DEV_DATABASE,
    faults: Faults | None = None,
    tls_cert: str | PathLike[str] | None = None,
    tls_key: str | PathLike[str] | None = None,
    require_encryption: bool = False,
) -> Iterator[DevServer]:
    """A started DevServer running its own event loop on a daemon thread; closed on exit."""
    server = DevServer(
        host=host,
        port=port,
        user=user,
        password=password,
        database=database,
        faults=faults,
        tls_cert=tls_cert,
        tls_key=tls_key,
        require_encryption=require_encryption,
    )
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="tds-devserver", daemon=True)
    thread.start()
    try:
        asyncio.run_coroutine_threadsafe(server.start(), loop).result(timeout=30)
        yield server
    finally:
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(server.close(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        # A loop still running cannot be closed (RuntimeError would hide the test's own
        # error); the daemon thread then ends with the process.
        if not thread.is_alive():
            loop.close()
