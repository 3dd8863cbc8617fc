"""The dev server's replies on the wire, read by the raw test client over asyncio streams.

Uses the ``devserver`` fixture (the server in the test's own event loop).
"""

from __future__ import annotations

import asyncio

from sql.devserver import DEV_DATABASE, DEV_PASSWORD, DEV_USER, DevServer
from sql.devserver.resultset import REPORT_ROWS_PER_CHUNK
from sql.report_data import MAX_ROW_COUNT
from tests.polling import apoll
from tests.test_sql import tdsclient


class AsyncClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.buffer = b""
        self.login_reply = tdsclient.Reply(b"")

    @classmethod
    async def connect(cls, server: DevServer, packet_size: int = 4096) -> AsyncClient:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        client = cls(reader, writer)
        await client.send(tdsclient.prelogin_message())
        await client.reply()
        await client.send(
            tdsclient.login_message(DEV_USER, DEV_PASSWORD, DEV_DATABASE, packet_size)
        )
        client.login_reply = await client.reply()
        return client

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def reply(self) -> tdsclient.Reply:
        while True:
            reply, self.buffer = tdsclient.split_reply(self.buffer)
            if reply is not None:
                return reply
            chunk = await asyncio.wait_for(self.reader.read(1 << 20), 30)
            assert chunk, "server closed the connection"
            self.buffer += chunk

    def close(self) -> None:
        self.writer.close()


def token_ids(payload: bytes) -> list[int]:
    """Token ids of a reply without rows."""
    ids = []
    pos = 0
    sizes = {0xFD: 13, 0xFE: 13, 0xFF: 13, 0x79: 5}
    while pos < len(payload):
        token = payload[pos]
        ids.append(token)
        if token in sizes:
            pos += sizes[token]
        else:
            pos += 3 + int.from_bytes(payload[pos + 1 : pos + 3], "little")
    return ids


async def test_login_reply_is_shaped_like_sql_servers(devserver: DevServer) -> None:
    client = await AsyncClient.connect(devserver, packet_size=8192)
    ids = token_ids(client.login_reply.payload)
    assert ids == [0xE3, 0xAB, 0xE3, 0xE3, 0xAB, 0xAD, 0xE3, 0xFD]
    assert "8192".encode("utf-16-le") in client.login_reply.payload
    assert tdsclient.done_tokens(client.login_reply.payload) == [(0xFD, 0x00, 0)]
    client.close()


async def test_rpc_reply_ends_like_a_procedure_and_honours_the_packet_size(
    devserver: DevServer,
) -> None:
    client = await AsyncClient.connect(devserver, packet_size=1024)
    await client.send(
        tdsclient.rpc_message("dbo.spGenerateData", ("@RowCount", 500), packet_size=1024)
    )
    reply = await client.reply()
    assert reply.payload[0] == 0x81  # COLMETADATA first
    assert tdsclient.done_tokens(reply.payload) == [(0xFF, 0x11, 500), (0xFE, 0x00, 0)]
    assert max(reply.packet_sizes) <= 1024
    assert reply.payload[-18:-13] == b"\x79\x00\x00\x00\x00"  # RETURNSTATUS 0
    client.close()


async def test_errors_end_with_an_error_done(devserver: DevServer) -> None:
    client = await AsyncClient.connect(devserver)
    await client.send(tdsclient.rpc_message("dbo.spMissing", ("", 1)))
    reply = await client.reply()
    assert tdsclient.error_numbers(reply.payload) == [2812]
    assert tdsclient.done_tokens(reply.payload) == [(0xFE, 0x02, 0)]
    await client.send(tdsclient.batch_message("EXEC spGenerateData @RowCount = NULL"))
    reply = await client.reply()
    assert tdsclient.error_numbers(reply.payload) == [50000]
    await client.send(tdsclient.batch_message("DROP TABLE x"))
    reply = await client.reply()
    assert tdsclient.error_numbers(reply.payload) == [50001]
    assert tdsclient.done_tokens(reply.payload) == [(0xFD, 0x02, 0)]
    client.close()


async def test_attention_while_paused_on_drain_is_noticed_at_once(devserver: DevServer) -> None:
    client = await AsyncClient.connect(devserver)
    await client.send(tdsclient.rpc_message("dbo.spGenerateData", ("", MAX_ROW_COUNT)))
    await apoll(lambda: devserver.stats.backpressure_pauses > 0, what="the server to pause")
    await client.send(tdsclient.ATTENTION)
    # Seen by the connection's reader task although the producer is blocked in drain().
    await apoll(lambda: devserver.stats.attentions == 1, within=5, what="the attention counted")
    reply = await client.reply()
    dones = tdsclient.done_tokens(reply.payload)
    assert dones[-1] == (0xFD, 0x20, 0)
    # Production stopped at the attention: the chunk in hand at most.
    rows_after = devserver.stats.rows_sent - devserver.stats.rows_at_last_attention
    assert rows_after <= REPORT_ROWS_PER_CHUNK
    await client.send(tdsclient.rpc_message("spGenerateData", ("", 3)))
    reply = await client.reply()
    assert tdsclient.done_tokens(reply.payload) == [(0xFF, 0x11, 3), (0xFE, 0x00, 0)]
    client.close()


async def test_attention_when_idle_gets_a_done_attn_of_its_own(devserver: DevServer) -> None:
    client = await AsyncClient.connect(devserver)
    await client.send(tdsclient.ATTENTION)
    reply = await client.reply()
    assert reply.payload == bytes.fromhex("fd2000") + bytes(10)
    client.close()


async def test_many_connections_in_one_loop(devserver: DevServer) -> None:
    async def one(n: int) -> int:
        client = await AsyncClient.connect(devserver)
        await client.send(tdsclient.rpc_message("spGenerateData", ("", n)))
        reply = await client.reply()
        client.close()
        return tdsclient.done_tokens(reply.payload)[0][2]

    counts = list(range(1, 41))
    assert await asyncio.gather(*(one(n) for n in counts)) == counts


async def test_bytes_that_are_not_tds_close_the_connection(devserver: DevServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", devserver.port)
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 10) == b""
    writer.close()
    # The server is unharmed.
    client = await AsyncClient.connect(devserver)
    await client.send(tdsclient.rpc_message("spGenerateData", ("", 1)))
    assert tdsclient.done_tokens((await client.reply()).payload)[0] == (0xFF, 0x11, 1)
    client.close()


async def test_a_batch_of_statements_gets_one_done_each_and_only_the_last_is_final(
    devserver: DevServer,
) -> None:
    client = await AsyncClient.connect(devserver)
    await client.send(
        tdsclient.batch_message("SET ANSI_NULLS ON;SET TEXTSIZE 2147483647\nuse [ExportDemo]")
    )
    reply = await client.reply()
    assert token_ids(reply.payload) == [0xFD, 0xFD, 0xE3, 0xAB, 0xFD]
    statuses = [
        int.from_bytes(reply.payload[i + 1 : i + 3], "little")
        for i in (0, 13, len(reply.payload) - 13)
    ]
    assert statuses == [0x01, 0x01, 0x00]
    await client.send(tdsclient.batch_message("BEGIN TRAN; EXEC spGenerateData 2; COMMIT"))
    reply = await client.reply()
    dones = tdsclient.done_tokens(reply.payload)
    assert dones[-1] == (0xFD, 0x00, 0)
    client.close()
