"""An ATTENTION stops production at once: the server sends no more than a few chunks of rows
after it arrives, whether the client reads fast (the server never waits on the socket) or has
stopped reading (the server waits in drain)."""

from __future__ import annotations

from typing import Any

from sql.devserver import DEV_DATABASE, DEV_PASSWORD, DEV_USER, DevServer
from tests.devclient import AFTER_ATTENTION
from tests.polling import poll
from tests.test_sql import tdsclient

ROWS = 1_000_000
# Payload a fast reader takes before it sends its attention (a few thousand rows).
READ_BEFORE = 400_000
DONE_ATTN = 0x20


def test_a_fast_readers_attention_stops_production(server: DevServer) -> None:
    """The raw client reads as fast as the server writes, so the server never pauses: it must
    still look at the socket between chunks to see the attention."""
    with tdsclient.RawClient("127.0.0.1", server.port) as client:
        client.login(DEV_USER, DEV_PASSWORD, DEV_DATABASE, 32767)
        message = tdsclient.rpc_message("dbo.spGenerateData", ("", ROWS), packet_size=32767)
        client.sock.sendall(message)
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
                client.sock.sendall(tdsclient.ATTENTION)
            buffer += chunk
            # Walk whole packets, keeping the last payload bytes (the reply's final tokens).
            while len(buffer) >= 8 and len(buffer) >= (size := int.from_bytes(buffer[2:4], "big")):
                tail = (tail + buffer[8:size])[-13:]
                last_packet = bool(buffer[1] & 0x01)
                buffer = buffer[size:]
        sent_after = server.stats.rows_sent - sent_at_attention
        assert tdsclient.done_tokens(tail) == [(0xFD, DONE_ATTN, 0)]
        assert sent_after <= AFTER_ATTENTION, f"{sent_after} rows after the attention"
        assert server.stats.rows_sent < ROWS
        # The connection serves the next request.
        client.sock.sendall(tdsclient.rpc_message("spGenerateData", ("", 3)))
        assert tdsclient.done_tokens(client.read_reply().payload)[0] == (0xFF, 0x11, 3)
    assert server.stats.attentions_answered == 1


def test_a_paused_pytds_cancel_gets_no_more_rows_produced(server: DevServer, conn: Any) -> None:
    """pytds stops reading, the server waits on the socket; cancel() sends the attention and
    reads what is in flight until DONE(ATTN): the server adds nothing to it."""
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
