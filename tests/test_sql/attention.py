"""The attention checks of test_attention, as helpers any transport can run (clear or TLS)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from sql.devserver import DevServer
from tests.devclient import AFTER_ATTENTION
from tests.polling import poll
from tests.test_sql import tdsclient

ROWS = 1_000_000
# Payload a fast reader takes before it sends its attention (a few thousand rows).
READ_BEFORE = 400_000
DONE_ATTN = 0x20


def prepared_send(sock: Any, data: bytes) -> Callable[[], None]:
    """A call that puts ``data`` on the wire, made ready ahead: a TLS socket encrypts it now
    (tests.test_sql.tlsclient.TlsSocket.prepare), so the timed moment of sending is one write
    to the socket, as in clear."""
    prepare = getattr(sock, "prepare", None)
    return prepare(data) if prepare is not None else functools.partial(sock.sendall, data)


def fast_reader_attention(
    client: tdsclient.RawClient, server: DevServer, *, bound: int = AFTER_ATTENTION
) -> int:
    """``client`` (logged in with packet size 32767) asks for a million rows, reads as fast as
    the server writes (so the server never pauses: it must still look at the socket between
    chunks), sends an attention after ~400 KB and reads to the DONE(ATTN): the server produced
    no more than a few chunks after the attention (``bound`` rows), and the connection serves
    the next request.  Returns the rows produced after the attention was sent."""
    message = tdsclient.rpc_message("dbo.spGenerateData", ("", ROWS), packet_size=32767)
    client.sock.sendall(message)
    send_attention = prepared_send(client.sock, tdsclient.ATTENTION)
    received = 0
    sent_at_attention = -1
    buffer = b""
    tail = b""
    last_packet = False
    while not last_packet:
        chunk = client.sock.recv(1 << 16)
        assert chunk, "the server closed the connection"
        received += len(chunk)
        if sent_at_attention < 0 and received >= READ_BEFORE:
            sent_at_attention = server.stats.rows_sent
            send_attention()
        buffer += chunk
        # Walk whole packets, keeping the last payload bytes (the reply's final tokens).
        while len(buffer) >= 8 and len(buffer) >= (size := int.from_bytes(buffer[2:4], "big")):
            tail = (tail + buffer[8:size])[-13:]
            last_packet = bool(buffer[1] & 0x01)
            buffer = buffer[size:]
    sent_after = server.stats.rows_sent - sent_at_attention
    assert tdsclient.done_tokens(tail) == [(0xFD, DONE_ATTN, 0)]
    assert sent_after <= bound, f"{sent_after} rows after the attention"
    assert server.stats.rows_sent < ROWS
    client.sock.sendall(tdsclient.rpc_message("spGenerateData", ("", 3)))
    assert tdsclient.done_tokens(client.read_reply().payload)[0] == (0xFF, 0x11, 3)
    return sent_after


def cancel_while_paused(server: DevServer, conn: Any) -> None:
    """pytds (``conn``) stops reading a million rows, the server waits on the socket; cancel()
    sends the attention and reads what is in flight until DONE(ATTN): the server added nothing
    to it, and the connection serves the next call."""
    with conn.cursor() as cur:
        cur.callproc("dbo.spGenerateData", (ROWS,))
        for _ in range(5):
            cur.fetchone()
        poll(lambda: server.stats.backpressure_pauses > 0, what="the server to wait on the reader")
        cur.cancel()
    # Counted by the server from the moment the attention reached it: no guess at when
    # production had stopped.
    sent_after = server.stats.rows_sent - server.stats.rows_at_last_attention
    assert sent_after <= AFTER_ATTENTION, f"{sent_after} rows after the attention"
    assert server.stats.attentions_answered == 1
    with conn.cursor() as cur:
        cur.callproc("dbo.spGenerateData", (2,))
        assert len(cur.fetchall()) == 2
