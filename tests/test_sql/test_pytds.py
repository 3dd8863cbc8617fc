"""pytds, a real TDS client, against the dev server over real TCP."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytds
import pytest

from sql.devserver import DEV_USER, DevServer, run_in_thread
from sql.devserver.engine import ROW_COUNT_MESSAGE
from sql.report_data import MAX_ROW_COUNT, NULL_PERIOD, row_values
from tests.backpressure import assert_held, fetch_elsewhere
from tests.devclient import AFTER_ATTENTION, dev_connect
from tests.polling import poll

PROC = "dbo.spGenerateData"


def connect(server: DevServer, **kwargs: Any) -> Any:
    return dev_connect(server.port, **{"timeout": 30, **kwargs})


def expected(count: int, first: int = 1) -> list[tuple[object, ...]]:
    return [row_values(n) for n in range(first, first + count)]


def fetch_proc(conn: Any, count: object, proc: str = PROC) -> list[tuple[object, ...]]:
    with conn.cursor() as cur:
        cur.callproc(proc, (count,))
        rows = [tuple(r) for r in cur.fetchall()]
        while cur.nextset():
            pass
        return rows


def fetch_into(cur: Any, rows: list[tuple[object, ...]]) -> None:
    while (row := cur.fetchone()) is not None:
        rows.append(tuple(row))


@pytest.fixture
def server(devserver_thread: DevServer) -> DevServer:
    return devserver_thread


@pytest.fixture
def conn(server: DevServer) -> Iterator[Any]:
    with connect(server) as c:
        yield c


@pytest.mark.parametrize("autocommit", [True, False])
def test_callproc_returns_every_value_of_the_formula(server: DevServer, autocommit: bool) -> None:
    with connect(server, autocommit=autocommit) as c, c.cursor() as cur:
        cur.callproc(PROC, (3000,))
        names = [d[0] for d in cur.description]
        rows = [tuple(r) for r in cur.fetchall()]
        assert not cur.nextset()
        assert cur.return_value == 0
        c.commit()
    assert names == [
        "Id", "ColInt", "ColBigInt", "ColDecimal", "ColVarchar", "ColNVarchar",
        "ColDate", "ColDateTime", "ColBit", "ColFloat",
    ]  # fmt: skip
    assert rows == expected(3000)


def test_nulls_arrive_as_none_and_big_integers_exactly(conn: Any) -> None:
    rows = fetch_proc(conn, 4 * NULL_PERIOD)
    assert rows == expected(4 * NULL_PERIOD)
    almost_empty = [r for n, r in enumerate(rows, start=1) if n % NULL_PERIOD == 0]
    assert almost_empty
    assert all(r[1:] == (None,) * 9 for r in almost_empty)
    assert all(r[0] is not None for r in rows)
    assert any(isinstance(r[2], int) and r[2] > 2**53 for r in rows)
    assert any(isinstance(r[5], str) and not r[5].isascii() for r in rows)


def test_execute_with_parameters_uses_sp_executesql(conn: Any) -> None:
    with conn.cursor() as cur:
        cur.execute("EXEC dbo.spGenerateData @RowCount = %s", (257,))
        assert [tuple(r) for r in cur.fetchall()] == expected(257)
        while cur.nextset():
            pass
        cur.execute("EXEC spGenerateData %(n)s", {"n": 5})
        assert [tuple(r) for r in cur.fetchall()] == expected(5)


def test_execute_without_parameters_is_a_sql_batch(conn: Any) -> None:
    with conn.cursor() as cur:
        cur.execute("SET NOCOUNT ON; EXEC [dbo].[spGenerateData] 33")
        assert [tuple(r) for r in cur.fetchall()] == expected(33)
        while cur.nextset():
            pass
        cur.execute("SELECT 1")
        assert cur.fetchall() == [(1,)]


def test_callproc_by_name_without_schema_and_with_named_parameter(conn: Any) -> None:
    with conn.cursor() as cur:
        cur.callproc("spGenerateData", {"@RowCount": 7})
        assert [tuple(r) for r in cur.fetchall()] == expected(7)


def test_several_requests_per_connection(conn: Any) -> None:
    for count in (1, 2, 500, 3):
        assert fetch_proc(conn, count) == expected(count)


def test_many_concurrent_connections(server: DevServer) -> None:
    def one(i: int) -> bool:
        with connect(server) as c:
            return fetch_proc(c, 100 + i) == expected(100 + i) and fetch_proc(c, 3) == expected(3)

    with ThreadPoolExecutor(max_workers=12) as pool:
        assert all(pool.map(one, range(24)))
    assert server.stats.connections_total >= 24


def test_wrong_password_is_error_18456(server: DevServer) -> None:
    with pytest.raises(pytds.OperationalError) as info:
        connect(server, password="wrong")
    assert info.value.msg_no == 18456
    assert f"Login failed for user '{DEV_USER}'." in str(info.value)
    assert server.stats.logins_failed >= 1


def test_unknown_database_fails_the_login(server: DevServer) -> None:
    with pytest.raises(pytds.OperationalError):
        connect(server, database="NoSuchDb")


def test_unknown_procedure_is_2812_and_connection_survives(conn: Any) -> None:
    with pytest.raises(pytds.ProgrammingError) as info:
        fetch_proc(conn, 5, proc="dbo.spNoSuchThing")
    assert info.value.msg_no == 2812
    assert fetch_proc(conn, 5) == expected(5)


@pytest.mark.parametrize("count", [0, -1, None, MAX_ROW_COUNT + 1])
def test_out_of_range_row_count_is_the_throw_of_the_tsql(conn: Any, count: object) -> None:
    with pytest.raises(pytds.OperationalError) as info:
        fetch_proc(conn, count)
    assert info.value.msg_no == 50000
    assert ROW_COUNT_MESSAGE in str(info.value)
    assert fetch_proc(conn, 2) == expected(2)


@pytest.mark.parametrize(
    ("params", "number"),
    [
        ((), 201),
        ((5, 6), 8144),
        ({"@Rows": 5}, 8145),
        (("abc",), 8114),
        ((2**40,), 8115),
    ],
)
def test_bad_parameters_get_sql_servers_numbers(conn: Any, params: Any, number: int) -> None:
    with conn.cursor() as cur:
        with pytest.raises(pytds.Error) as info:
            cur.callproc(PROC, params)
        assert info.value.msg_no == number
    assert fetch_proc(conn, 3) == expected(3)


def test_unsupported_statement_is_a_clear_error(conn: Any) -> None:
    with conn.cursor() as cur, pytest.raises(pytds.Error) as info:
        cur.execute("SELECT name FROM sys.tables")
    assert "dev server does not support" in str(info.value)
    assert fetch_proc(conn, 3) == expected(3)


@pytest.mark.parametrize("after", [0, 700])
def test_mid_stream_error_arrives_after_the_rows_before_it(
    server: DevServer, conn: Any, after: int
) -> None:
    server.faults.error_after_rows = after
    got: list[tuple[object, ...]] = []
    with conn.cursor() as cur:
        cur.callproc(PROC, (5000,))
        with pytest.raises(pytds.OperationalError) as info:
            fetch_into(cur, got)
    assert info.value.msg_no == 8134
    assert got == expected(after)
    server.faults.error_after_rows = None
    assert fetch_proc(conn, 10) == expected(10)


def test_dropped_socket_is_a_connection_error(server: DevServer, conn: Any) -> None:
    server.faults.drop_after_rows = 1500
    got: list[tuple[object, ...]] = []
    with conn.cursor() as cur:
        cur.callproc(PROC, (100_000,))
        with pytest.raises((pytds.Error, ConnectionError)):
            fetch_into(cur, got)
    assert got == expected(len(got))
    assert len(got) <= 1500


def test_cancel_mid_stream_then_reuse_the_connection(server: DevServer, conn: Any) -> None:
    with conn.cursor() as cur:
        cur.callproc(PROC, (MAX_ROW_COUNT,))
        first = [tuple(cur.fetchone()) for _ in range(100)]
        cur.cancel()
    assert first == expected(100)
    assert server.stats.attentions == 1
    # The server stopped producing when the attention arrived (a few chunks at most).
    assert server.stats.rows_sent - server.stats.rows_at_last_attention <= AFTER_ATTENTION
    assert fetch_proc(conn, 20) == expected(20)


# Rows the socket buffers between the dev server and a reader that holds off can take: ~54k
# measured with Linux's default limits (a send buffer grows to 4 MiB, ~80 bytes a row).
HELD_ROWS_BOUND = 120_000
# A server that ignored the reader would send ~500k rows/s: a short witness is enough here.
WITNESS_ROWS = 20_000


def test_a_paused_reader_pauses_the_server(server: DevServer, conn: Any) -> None:
    with conn.cursor() as cur:
        cur.callproc(PROC, (MAX_ROW_COUNT,))
        cur.fetchone()  # then stop reading
        poll(lambda: server.stats.backpressure_pauses > 0, what="production to wait for us")
        fetch_elsewhere(server.port, WITNESS_ROWS)
        held = assert_held(server.stats, bound=HELD_ROWS_BOUND, witnessed=WITNESS_ROWS)
        # Reading more rows than were sent for us makes the server produce again.
        for _ in range(held + 1):
            cur.fetchone()
        assert server.stats.rows_sent - WITNESS_ROWS > held
        cur.cancel()
    assert fetch_proc(conn, 2) == expected(2)


def test_transactions_commit_and_rollback(server: DevServer) -> None:
    with connect(server, autocommit=False) as c:
        assert fetch_proc(c, 4) == expected(4)
        c.commit()
        assert fetch_proc(c, 4) == expected(4)
        c.rollback()
        assert fetch_proc(c, 2) == expected(2)


@pytest.mark.parametrize("blocksize", [512, 32767])
def test_negotiated_packet_size(server: DevServer, blocksize: int) -> None:
    with connect(server, blocksize=blocksize) as c:
        assert fetch_proc(c, 1000) == expected(1000)


def test_refused_and_slow_logins(server: DevServer) -> None:
    server.faults.refuse_logins = True
    with pytest.raises(pytds.OperationalError) as info:
        connect(server)
    assert info.value.msg_no == 18456
    server.faults.refuse_logins = False
    server.faults.login_delay = 0.3
    started = time.monotonic()
    with connect(server) as c:
        assert time.monotonic() - started >= 0.3
        assert fetch_proc(c, 1) == expected(1)


def test_first_row_and_row_delays(server: DevServer, conn: Any) -> None:
    server.faults.first_row_delay = 0.2
    server.faults.row_delay = 0.05
    server.faults.row_delay_every = 100
    started = time.monotonic()
    assert fetch_proc(conn, 450) == expected(450)
    assert time.monotonic() - started >= 0.2 + 4 * 0.05


def test_close_ends_live_connections_and_the_port_can_be_reused() -> None:
    with run_in_thread() as first:
        port = first.port
        c = connect(first)
        cur = c.cursor()
        cur.callproc(PROC, (MAX_ROW_COUNT,))
        cur.fetchone()
        errors: list[BaseException] = []

        def drain() -> None:
            try:
                while cur.fetchone() is not None:
                    pass
            except BaseException as exc:
                errors.append(exc)

        reader = threading.Thread(target=drain)
        reader.start()
    reader.join(timeout=30)
    assert not reader.is_alive()
    assert errors
    assert isinstance(errors[0], (pytds.Error, ConnectionError, OSError))
    c.close()
    with run_in_thread(port=port) as second, connect(second) as c2:
        assert fetch_proc(c2, 3) == expected(3)


def streamed_and_checked(conn: Any, count: int, batch_size: int) -> Iterator[int]:
    """Streams ``count`` rows with fetchmany, each checked against the formula; after every
    batch yields how many rows arrived so far (and at the end checks none is missing)."""
    n = 0
    with conn.cursor() as cur:
        cur.callproc(PROC, (count,))
        while batch := cur.fetchmany(batch_size):
            for row in batch:
                n += 1
                assert tuple(row) == row_values(n)
            yield n
    assert n == count


def test_a_few_thousand_rows_streamed_with_fetchmany(conn: Any) -> None:
    for _ in streamed_and_checked(conn, 20_000, 1000):
        pass


@pytest.mark.slow
def test_a_million_rows_with_flat_client_memory(conn: Any) -> None:
    psutil = pytest.importorskip("psutil")
    process = psutil.Process()
    rss_at_100k = 0
    for n in streamed_and_checked(conn, 1_000_000, 5000):
        if n == 100_000:
            rss_at_100k = process.memory_info().rss
    grown = process.memory_info().rss - rss_at_100k
    assert grown < 30 * 1024 * 1024, f"client memory grew by {grown} bytes"


def test_a_client_closing_mid_stream_ends_production(server: DevServer) -> None:
    c = connect(server)
    cur = c.cursor()
    cur.callproc(PROC, (MAX_ROW_COUNT,))
    cur.fetchone()
    poll(lambda: server.stats.backpressure_pauses > 0, what="a backpressure pause")
    at_close = server.stats.rows_sent
    c.close()  # pytds closes the socket without cancelling
    poll(lambda: server.stats.connections_open == 0, what="the connection to end")
    # The chunk being written when the socket closed, no more.
    assert server.stats.rows_sent - at_close <= AFTER_ATTENTION
