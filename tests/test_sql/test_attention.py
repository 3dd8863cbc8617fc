"""An ATTENTION stops production at once: the server sends no more than a few chunks of rows
after it arrives, whether the client reads fast (the server never waits on the socket) or has
stopped reading (the server waits in drain)."""

from __future__ import annotations

from typing import Any

from sql.devserver import DEV_DATABASE, DEV_PASSWORD, DEV_USER, DevServer
from tests.test_sql import tdsclient
from tests.test_sql.attention import cancel_while_paused, fast_reader_attention


def test_a_fast_readers_attention_stops_production(server: DevServer) -> None:
    with tdsclient.RawClient("127.0.0.1", server.port) as client:
        client.login(DEV_USER, DEV_PASSWORD, DEV_DATABASE, 32767)
        fast_reader_attention(client, server)
    assert server.stats.attentions_answered == 1


def test_a_paused_pytds_cancel_gets_no_more_rows_produced(server: DevServer, conn: Any) -> None:
    cancel_while_paused(server, conn)
