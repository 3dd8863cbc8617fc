"""Cancelling with the fast path: rows in flight are skipped, never decoded, and the
connection comes back idle and reusable, whatever the attention interrupted (rows fetched
before it either way: compiled and generated)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sql.devserver import DevServer, run_in_thread
from tdsrows import FastRows
from tests.devclient import dev_connect
from tests.test_tdsrows.support import FETCH_PARAMS

ROWS = 1_000_000  # far more than the socket buffers hold: the cancel must stop the server


@pytest.fixture
def server() -> Iterator[DevServer]:
    with run_in_thread(port=0) as srv:
        yield srv


@pytest.fixture
def conn(server: DevServer) -> Iterator[Any]:
    connection = dev_connect(server.port, blocksize=32767)
    yield connection
    connection.close()


def _still_usable(conn: Any) -> None:
    with conn.cursor() as cursor:
        cursor.callproc("dbo.spGenerateData", (3,))
        assert [r[0] for r in cursor.fetchall()] == [1, 2, 3]
        while cursor.nextset():
            pass


@pytest.mark.parametrize("compiled", FETCH_PARAMS)
def test_mid_stream_cancel_skips_the_rows_in_flight(
    server: DevServer, conn: Any, compiled: bool
) -> None:
    with conn.cursor() as cursor:
        cursor.callproc("dbo.spGenerateData", (ROWS,))
        fast = FastRows.open(cursor, compiled=compiled)
        assert fast.compiled_fetch == compiled
        for _ in range(5):
            assert fast.fetch()
        decoded = fast.rows
        fast.drain_cancelled()
        assert fast.rows == decoded  # skipped by their lengths, none decoded
        assert fast.fetch() == []
    assert server.stats.attentions == server.stats.attentions_answered == 1
    assert server.stats.rows_sent < ROWS
    _still_usable(conn)


@pytest.mark.parametrize("compiled", FETCH_PARAMS)
def test_an_attention_already_sent_is_not_sent_again(
    server: DevServer, conn: Any, compiled: bool
) -> None:
    with conn.cursor() as cursor:
        cursor.callproc("dbo.spGenerateData", (ROWS,))
        fast = FastRows.open(cursor, compiled=compiled)
        fast.fetch()
        cursor._session.put_cancel()  # what the export's socket does when a read is interrupted
        fast.drain_cancelled()
    assert server.stats.attentions == 1
    _still_usable(conn)


@pytest.mark.parametrize("compiled", FETCH_PARAMS)
def test_cancel_after_the_last_row_reads_the_separate_acknowledgement(
    server: DevServer, conn: Any, compiled: bool
) -> None:
    """The reply has ended (DONEPROC read by pytds): the DONE(ATTN) comes as its own message."""
    with conn.cursor() as cursor:
        cursor.callproc("dbo.spGenerateData", (10,))
        fast = FastRows.open(cursor, compiled=compiled)
        rows = []
        while batch := fast.fetch():
            rows += batch
        assert [r[0] for r in rows] == list(range(1, 11))
        fast.drain_cancelled()
    _still_usable(conn)


def test_cancel_before_the_first_row(server: DevServer, conn: Any) -> None:
    server.faults.first_row_delay = 30.0  # the attention wakes the server early
    with conn.cursor() as cursor:
        cursor.callproc("dbo.spGenerateData", (ROWS,))
        fast = FastRows.open(cursor)
        fast.drain_cancelled()
    server.faults.first_row_delay = 0.0
    assert server.stats.rows_sent == 0
    _still_usable(conn)
