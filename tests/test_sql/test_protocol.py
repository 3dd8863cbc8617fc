"""The sans-IO protocol core, fed client bytes made by tests/test_sql/tdsclient.py.

As h11 tests its parsers: the whole conversation at once, one byte at a time, and with trailing
bytes of a following message that must wait for the rest.
"""

from __future__ import annotations

import pytest

from sql.devserver import ProtocolError, packets, protocol
from sql.devserver.protocol import (
    AttentionReceived,
    BadRequest,
    BatchReceived,
    LoginReceived,
    PreLoginReceived,
    RpcReceived,
    ServerConnection,
)
from tests.test_sql import tdsclient

LONG_BATCH = "SET NOCOUNT ON;" * 400  # ~12 KB of UTF-16: three 4 KiB packets

CONVERSATION = (
    tdsclient.prelogin_message()
    + tdsclient.login_message("sa", "pä55wörd", "ExportDemo", packet_size=8192)
    + tdsclient.rpc_message("dbo.spGenerateData", ("@RowCount", 42))
    + tdsclient.ATTENTION
    + tdsclient.batch_message(LONG_BATCH)
    + tdsclient.rpc_message("spGenerateData", ("", None))
)


def events_of(chunks: list[bytes]) -> list[protocol.Event]:
    conn = ServerConnection()
    out: list[protocol.Event] = []
    for chunk in chunks:
        conn.receive_data(chunk)
        while (event := conn.next_event()) is not None:
            out.append(event)
            if isinstance(event, LoginReceived):
                conn.login_succeeded(event.login.packet_size)
    return out


def check(events: list[protocol.Event]) -> None:
    kinds = [type(e) for e in events]
    assert kinds == [
        PreLoginReceived, LoginReceived, RpcReceived, AttentionReceived, BatchReceived, RpcReceived
    ]  # fmt: skip
    prelogin, login, rpc, _attention, batch, rpc2 = events
    assert isinstance(prelogin, PreLoginReceived)
    assert prelogin.options[0x01] == b"\x02"
    assert isinstance(login, LoginReceived)
    assert (login.login.user, login.login.password) == ("sa", "pä55wörd")
    assert (login.login.database, login.login.packet_size) == ("ExportDemo", 8192)
    assert login.login.tds_version == 0x74000004
    assert isinstance(rpc, RpcReceived)
    assert rpc.rpc.proc_name == "dbo.spGenerateData"
    assert [(p.name, p.value, p.type_name) for p in rpc.rpc.params] == [("@RowCount", 42, "int")]
    assert isinstance(batch, BatchReceived)
    assert batch.text == LONG_BATCH
    assert isinstance(rpc2, RpcReceived)
    assert rpc2.rpc.params[0].value is None


def test_whole_conversation_at_once() -> None:
    check(events_of([CONVERSATION]))


def test_one_byte_at_a_time() -> None:
    check(events_of([CONVERSATION[i : i + 1] for i in range(len(CONVERSATION))]))


def test_trailing_partial_message_waits_for_the_rest() -> None:
    follow_up = tdsclient.batch_message("EXEC spGenerateData 1")
    cut = len(follow_up) - 3
    conn_events = events_of([CONVERSATION + follow_up[:cut]])
    check(conn_events)  # the partial batch is not an event yet
    check(events_of([CONVERSATION + follow_up[:cut], follow_up[cut:]])[:6])
    assert len(events_of([CONVERSATION + follow_up[:cut], follow_up[cut:]])) == 7


def test_unreadable_request_becomes_an_error_event_not_a_crash() -> None:
    conn = ServerConnection()
    conn.receive_data(tdsclient.prelogin_message() + tdsclient.login_message("sa", "x"))
    assert isinstance(conn.next_event(), PreLoginReceived)
    assert isinstance(conn.next_event(), LoginReceived)
    conn.login_succeeded(4096)
    truncated_rpc = tdsclient.packets(0x03, tdsclient.ALL_HEADERS + b"\x05\x00ab")
    conn.receive_data(truncated_rpc + tdsclient.packets(0x07, b"bulk"))
    first, second = conn.next_event(), conn.next_event()
    assert isinstance(first, BadRequest)
    assert "truncated" in first.reason
    assert isinstance(second, BadRequest)
    assert "bulk load" in second.reason


def test_garbage_framing_is_a_protocol_error() -> None:
    conn = ServerConnection()
    conn.receive_data(b"GET / HTTP/1.1\r\n\r\n")
    with pytest.raises(ProtocolError):
        conn.next_event()


@pytest.mark.parametrize("packet_size", [512, 4096, 32767])
def test_replies_are_split_into_packets_of_the_negotiated_size(packet_size: int) -> None:
    conn = ServerConnection()
    conn.login_succeeded(packet_size)
    payload = bytes(range(256)) * 300
    stream = conn.packetizer()
    data = stream.add(payload[:1000]) + stream.add(payload[1000:]) + stream.finish(b"end")
    reply, rest = tdsclient.split_reply(data)
    assert rest == b""
    assert reply is not None
    assert reply.payload == payload + b"end"
    assert max(reply.packet_sizes) <= packet_size
    assert all(size == packet_size for size in reply.packet_sizes[:-1])


def test_a_message_split_over_packets_of_another_type_is_refused() -> None:
    assembler = packets.MessageAssembler()
    first = tdsclient.HEADER.pack(0x01, 0, 10, 0, 1, 0) + b"ab"
    second = tdsclient.HEADER.pack(0x03, 1, 10, 0, 2, 0) + b"cd"
    assembler.feed(first + second)
    with pytest.raises(ProtocolError):
        assembler.next_message()
