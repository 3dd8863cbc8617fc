"""``dbo.spDevServerStats``: the server's counters, read by pytds over TCP like any procedure."""

from __future__ import annotations

from typing import Any

import pytds
import pytest

from sql.devserver import DEV_DATABASE, DEV_PASSWORD, DEV_USER, DevServer
from sql.devserver.engine import STATS_COLUMNS
from sql.report_data import MAX_ROW_COUNT
from tests.devclient import dev_connect
from tests.test_sql.tdsclient import ATTENTION, RawClient

PROC = "dbo.spDevServerStats"


def stats_by_rpc(conn: Any) -> dict[str, int]:
    with conn.cursor() as cur:
        cur.callproc(PROC, ())
        names = [d[0] for d in cur.description]
        rows = cur.fetchall()
        assert not cur.nextset()
    assert len(rows) == 1
    return dict(zip(names, rows[0], strict=True))


def stats_by_batch(conn: Any) -> dict[str, int]:
    with conn.cursor() as cur:
        cur.execute("EXEC dbo.spDevServerStats")
        names = [d[0] for d in cur.description]
        rows = cur.fetchall()
    assert len(rows) == 1
    return dict(zip(names, rows[0], strict=True))


def test_one_row_of_bigint_counters_by_rpc_and_by_batch(server: DevServer, conn: Any) -> None:
    with conn.cursor() as cur:
        cur.callproc(PROC, ())
        description = cur.description
        cur.fetchall()
        assert cur.return_value == 0
    assert [d[0] for d in description] == list(STATS_COLUMNS)
    assert {d[1] for d in description} == {pytds.tds_base.SYBINT8}  # BIGINT NOT NULL
    assert not any(d[6] for d in description)  # not nullable

    by_rpc = stats_by_rpc(conn)
    by_batch = stats_by_batch(conn)
    assert all(type(v) is int for v in (*by_rpc.values(), *by_batch.values()))
    # The values are the server's counters when the procedure ran (this request included).
    assert by_rpc["connections_open"] == 1
    assert by_rpc["connections_total"] == 1
    assert by_batch["requests"] == by_rpc["requests"] + 1
    assert by_batch == {**server.stats.counters(), "requests": by_batch["requests"]}


def test_counters_follow_rows_failed_logins_and_cancels(server: DevServer, conn: Any) -> None:
    before = stats_by_rpc(conn)
    with conn.cursor() as cur:
        cur.callproc("dbo.spGenerateData", (1234,))
        assert len(cur.fetchall()) == 1234
        assert not cur.nextset()  # read to the end: closing the cursor then sends no attention
    with pytest.raises(pytds.OperationalError):
        dev_connect(server.port, password="wrong")
    with conn.cursor() as cur:
        cur.callproc("dbo.spGenerateData", (MAX_ROW_COUNT,))
        cur.fetchone()
        cur.cancel()
    after = stats_by_rpc(conn)
    assert after["rows_sent"] - before["rows_sent"] >= 1234 + 1
    assert after["logins_failed"] == before["logins_failed"] + 1
    assert after["connections_total"] == before["connections_total"] + 1
    assert after["attentions"] == before["attentions"] + 1
    # The cancel was acknowledged: one DONE(ATTN) per attention.
    assert after["attentions_answered"] == before["attentions_answered"] + 1
    assert after["requests"] == before["requests"] + 3


def test_an_idle_attention_is_answered_and_counted(server: DevServer) -> None:
    with RawClient("127.0.0.1", server.port) as client:
        client.login(DEV_USER, DEV_PASSWORD, DEV_DATABASE)
        client.sock.sendall(ATTENTION)
        assert client.read_reply().payload == bytes.fromhex("fd2000") + bytes(10)
    assert server.stats.attentions == server.stats.attentions_answered == 1


@pytest.mark.parametrize("call", ["EXEC dbo.spDevServerStats 1", "EXEC spDevServerStats @x = 1"])
def test_arguments_are_error_8146_and_the_connection_survives(conn: Any, call: str) -> None:
    with conn.cursor() as cur, pytest.raises(pytds.Error) as info:
        cur.execute(call)
    assert info.value.msg_no == 8146  # SQL Server's "has no parameters and arguments were supplied"
    assert "spDevServerStats" in str(info.value)
    assert stats_by_batch(conn)["connections_open"] == 1
