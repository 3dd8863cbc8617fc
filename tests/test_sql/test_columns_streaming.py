"""``dbo.spColumns`` streams like ``spGenerateData``: ``repeat``, backpressure, attention and the
server's faults, through pytds over TCP."""

from __future__ import annotations

import time
from typing import Any

import pytds
import pytest

from sql.devserver import DevServer
from sql.devserver.columns import Column, spec_json
from tests.backpressure import WITNESS_ROWS, assert_held, fetch_elsewhere
from tests.polling import poll
from tests.test_sql.columns_client import PROC, call

COLUMNS = [Column("n", "int"), Column("s", "nvarchar(20)"), Column("b", "varbinary(max)")]
ROWS = [[1, "één", "00"], [2, None, None], [3, "🚀", "ffff"]]
DECODED = [(1, "één", b"\x00"), (2, None, None), (3, "🚀", b"\xff\xff")]
MANY = 3_000_000  # 1M repeats of three rows: far more than socket buffers hold


def fetch_into(cur: Any, rows: list[tuple[object, ...]]) -> None:
    while (row := cur.fetchone()) is not None:
        rows.append(tuple(row))


def start(conn: Any, repeat: int) -> Any:
    cur = conn.cursor()
    cur.callproc(PROC, (spec_json(COLUMNS, ROWS, repeat=repeat),))
    return cur


def test_repeat_sends_the_rows_that_many_times(conn: Any) -> None:
    _description, rows = call(conn, COLUMNS, ROWS, repeat=3000)
    assert rows == DECODED * 3000


@pytest.mark.parametrize(("rows", "repeat"), [([], 5), (ROWS, 0)])
def test_an_empty_result_still_has_its_columns(
    conn: Any, rows: list[list[object]], repeat: int
) -> None:
    description, got = call(conn, COLUMNS, rows, repeat=repeat)
    assert [d[0] for d in description] == ["n", "s", "b"]
    assert got == []


def test_a_paused_reader_pauses_the_server(server: DevServer, conn: Any) -> None:
    wide = [Column("n", "int"), Column("s", "varchar(500)")]  # ~500-byte rows
    with conn.cursor() as cur:
        cur.callproc(PROC, (spec_json(wide, [[7, "w" * 500]], repeat=1_000_000),))
        cur.fetchone()
        poll(lambda: server.stats.backpressure_pauses > 0, what="the server to wait on the reader")
        # Another connection fetches meanwhile: a server that kept producing for the held
        # reader would pass the bound (socket buffers hold a few MiB: thousands of these rows).
        fetch_elsewhere(server.port)
        previous = assert_held(server.stats, bound=100_000)
        for _ in range(30_000):
            assert cur.fetchone() == (7, "w" * 500)
        assert server.stats.rows_sent - WITNESS_ROWS > previous
        cur.cancel()
    assert call(conn, COLUMNS, ROWS)[1] == DECODED


def test_cancel_mid_stream_then_reuse_the_connection(server: DevServer, conn: Any) -> None:
    with start(conn, MANY // 3) as cur:
        first = [tuple(cur.fetchone()) for _ in range(30)]
        cur.cancel()
    assert first == DECODED * 10
    assert server.stats.attentions_answered == server.stats.attentions == 1
    assert call(conn, COLUMNS, ROWS)[1] == DECODED


@pytest.mark.parametrize("after", [0, 4, 700])
def test_error_after_n_rows(server: DevServer, conn: Any, after: int) -> None:
    server.faults.error_after_rows = after
    got: list[tuple[object, ...]] = []
    with start(conn, 1000) as cur, pytest.raises(pytds.OperationalError) as info:
        fetch_into(cur, got)
    assert info.value.msg_no == 8134
    assert got == (DECODED * 1000)[:after]
    server.faults.error_after_rows = None
    assert call(conn, COLUMNS, ROWS)[1] == DECODED


def test_drop_after_n_rows(server: DevServer, conn: Any) -> None:
    server.faults.drop_after_rows = 1501
    got: list[tuple[object, ...]] = []
    with start(conn, 10_000) as cur, pytest.raises((pytds.Error, ConnectionError)):
        fetch_into(cur, got)
    assert got == (DECODED * 600)[: len(got)]
    assert len(got) <= 1501


def test_first_row_and_row_delays(server: DevServer, conn: Any) -> None:
    server.faults.first_row_delay = 0.2
    server.faults.row_delay = 0.05
    server.faults.row_delay_every = 30
    started = time.monotonic()
    assert call(conn, COLUMNS, ROWS, repeat=40)[1] == DECODED * 40
    assert time.monotonic() - started >= 0.2 + 3 * 0.05


def test_large_values_stream_with_bounded_server_buffers(server: DevServer, conn: Any) -> None:
    """Rows of 200 KB each: the server writes a chunk, then waits for the socket to drain."""
    big = [[1, "x", "ab" * 100_000]]
    with conn.cursor() as cur:
        cur.callproc(PROC, (spec_json(COLUMNS, big, repeat=200),))
        cur.fetchone()
        poll(lambda: server.stats.backpressure_pauses > 0, what="a backpressure pause")
        assert server.stats.rows_sent < 200
        rest = cur.fetchall()
    assert len(rest) == 199
    assert rest[-1] == (1, "x", b"\xab" * 100_000)
