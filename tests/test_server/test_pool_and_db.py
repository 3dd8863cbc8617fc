"""The pool and the watched pytds connection, against the dev server running on its own thread."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable

import pytest

from server import db
from server.config import DbSettings
from server.db import Attention, DbConnection
from server.errors import DatabaseError, DatabaseUnavailable, ShuttingDown, TooManyExports
from server.pool import ConnectionPool, Lease
from sql.devserver import DEV_PASSWORD, DevServer, run_in_thread
from sql.report_data import row_values
from tests.polling import poll
from tests.test_server.conftest import port_held

POLL_S = 0.05
# Budgets only a broken server exhausts: roomy, because on a loaded 2-core CI machine the dev
# server's thread may not run for a second or more.
LOGIN_TIMEOUT_S = 10.0
CANCEL_TIMEOUT_S = 10.0


def _settings(server: DevServer, **overrides: object) -> DbSettings:
    values: dict[str, object] = {
        "port": server.port,
        "password": DEV_PASSWORD,
        "login_timeout_s": LOGIN_TIMEOUT_S,
        "encrypt": "off",  # the dev server of these tests has no certificate
        **overrides,
    }
    return DbSettings(**values)  # type: ignore[arg-type]


def _connect(server: DevServer, **overrides: object) -> DbConnection:
    return db.connect(
        _settings(server, **overrides), poll_interval_s=POLL_S, cancel_timeout_s=CANCEL_TIMEOUT_S
    )


def _pool(
    server: DevServer, *, login_timeout_s: float = LOGIN_TIMEOUT_S, **kwargs: object
) -> ConnectionPool[DbConnection]:
    # The address, taken now: the server may go away later.
    settings = _settings(server, login_timeout_s=login_timeout_s)
    options: dict[str, object] = {"min_size": 0, "max_size": 2, "idle_timeout_s": 30.0, **kwargs}
    return ConnectionPool(
        lambda: db.connect(settings, poll_interval_s=POLL_S, cancel_timeout_s=CANCEL_TIMEOUT_S),
        **options,  # type: ignore[arg-type]
    )


def _when(condition: Callable[[], bool], action: Callable[[], object]) -> threading.Thread:
    """On a helper thread: ``action()`` once ``condition()`` holds (or once waiting for it has
    failed, so the test's own thread is not left blocked)."""

    def run() -> None:
        try:
            poll(condition, what="the condition to act on")
        finally:
            action()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_pool_is_lazy_and_reuses_clean_connections(devserver_thread: DevServer) -> None:
    pool = _pool(devserver_thread)
    lease = pool.lease()
    assert devserver_thread.stats.connections_total == 0  # a lease alone opens nothing
    conn, reused = lease.acquire()
    assert not reused
    lease.release(conn, reusable=True)
    assert (pool.idle, pool.in_use) == (1, 0)
    again = pool.lease()
    conn2, reused2 = again.acquire()
    assert reused2
    assert conn2 is conn
    again.release(conn2, reusable=False)  # e.g. after a socket error: closed, not pooled
    assert (pool.idle, pool.in_use) == (0, 0)
    assert devserver_thread.stats.connections_total == 1
    pool.close()


def test_pool_refuses_beyond_its_maximum_without_waiting(devserver_thread: DevServer) -> None:
    pool = _pool(devserver_thread, max_size=2)
    first, second = pool.lease(), pool.lease()
    with pytest.raises(TooManyExports):
        pool.lease()
    assert pool.in_use == 2
    first.release(None, reusable=False)
    first.release(None, reusable=False)  # a second release of the same lease changes nothing
    assert pool.in_use == 1
    pool.lease().release(None, reusable=False)
    second.release(None, reusable=False)
    assert pool.in_use == 0


def _three_leased(
    server: DevServer, now: list[float]
) -> tuple[ConnectionPool[DbConnection], list[Lease[DbConnection]], list[DbConnection]]:
    """A pool (min 1, max 3, idle timeout 30 s on the clock ``now[0]``) with 3 connections lent."""
    pool = ConnectionPool(
        lambda: _connect(server),
        min_size=1,
        max_size=3,
        idle_timeout_s=30.0,
        clock=lambda: now[0],
    )
    leases = [pool.lease() for _ in range(3)]
    return pool, leases, [lease.acquire()[0] for lease in leases]


def test_idle_connections_above_the_minimum_expire(devserver_thread: DevServer) -> None:
    now = [100.0]
    pool, leases, conns = _three_leased(devserver_thread, now)
    for lease, conn in zip(leases, conns, strict=True):
        lease.release(conn, reusable=True)
    assert pool.idle == 3
    now[0] += 31.0
    lease = pool.lease()
    lease.release(None, reusable=False)  # expiry runs whenever a lease is given back
    assert pool.idle == 1, "the minimum stays warm"
    pool.close()


def test_expire_idle_closes_only_what_idled_past_the_timeout_above_the_minimum(
    devserver_thread: DevServer,
) -> None:
    now = [100.0]
    pool, leases, conns = _three_leased(devserver_thread, now)
    leases[0].release(conns[0], reusable=True)
    leases[1].release(conns[1], reusable=True)
    now[0] += 20.0
    leases[2].release(conns[2], reusable=True)  # idle 20 s less than the other two
    now[0] += 15.0
    assert pool.expire_idle() == 2, "the two older ones, oldest first; the minimum stays"
    assert pool.idle == 1
    assert pool.expire_idle() == 0, "never below the minimum"
    pool.close()


def test_dead_idle_connection_fails_the_checkout_check() -> None:
    login_timeout_s = 30.0  # what a new login would cost if the refusal were not seen at once
    with run_in_thread(host="127.0.0.1", port=0) as server:
        port = server.port
        pool = _pool(server, login_timeout_s=login_timeout_s)
        lease = pool.lease()
        conn, _ = lease.acquire()
        lease.release(conn, reusable=True)
        assert conn.is_healthy()
    # The server is gone (its port held, so connecting is refused): the idle connection sees
    # EOF, is dropped, and a new login fails fast instead of using up the login budget.
    with port_held(port):
        poll(lambda: not conn.is_healthy(), what="the idle connection to see EOF")
        lease = pool.lease()
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable):
            lease.acquire()
        assert time.monotonic() - started < login_timeout_s / 3
        lease.release(None, reusable=False)
        assert (pool.idle, pool.in_use) == (0, 0)


def test_closed_pool_takes_no_new_leases(devserver_thread: DevServer) -> None:
    pool = _pool(devserver_thread)
    lease = pool.lease()
    conn, _ = lease.acquire()
    pool.close()
    lease.release(conn, reusable=True)  # given back after close: closed, not kept
    assert pool.idle == 0
    with pytest.raises(ShuttingDown):
        pool.lease()


def test_attention_from_inside_a_blocked_read_leaves_the_connection_reusable(
    devserver_thread: DevServer,
) -> None:
    """The measured fact the export relies on: the owner thread's own read sends the attention,
    pytds consumes the acknowledgement, and the next request on the connection is complete."""
    first_row_delay_s = 60.0
    devserver_thread.faults.first_row_delay = first_row_delay_s
    conn = _connect(devserver_thread)
    cancel = threading.Event()
    conn.socket.watch(cancel.is_set, silence_limit_s=None, reason=Attention.ROW_TIMEOUT)
    # Cancelled once the server has the request: the owner thread is then waiting for rows.
    _when(lambda: devserver_thread.stats.requests == 1, cancel.set)
    cursor = conn.cursor()
    started = time.monotonic()
    cursor.callproc("dbo.spGenerateData", {"@RowCount": 100})
    assert cursor.fetchone() is None  # the ATTN acknowledgement ends the result early
    assert time.monotonic() - started < first_row_delay_s / 3, "not after the server's delay"
    assert conn.socket.attention_reason is Attention.CANCELLED
    cursor.cancel()  # nothing left to read: a no-op
    assert conn.is_idle()
    assert devserver_thread.stats.attentions == 1

    devserver_thread.faults.first_row_delay = 0.0
    conn.socket.reset()
    cursor = conn.cursor()
    cursor.callproc("dbo.spGenerateData", {"@RowCount": 50})
    rows = cursor.fetchall()
    assert [tuple(r) for r in rows] == [row_values(n) for n in range(1, 51)]
    while cursor.nextset():
        pass
    assert conn.is_idle()
    conn.close()


def test_silence_limit_sends_an_attention(devserver_thread: DevServer) -> None:
    devserver_thread.faults.first_row_delay = 60.0
    conn = _connect(devserver_thread)
    conn.socket.watch(lambda: False, silence_limit_s=0.3, reason=Attention.FIRST_ROW_TIMEOUT)
    cursor = conn.cursor()
    cursor.callproc("dbo.spGenerateData", {"@RowCount": 100})
    assert cursor.fetchone() is None
    assert conn.socket.attention_reason == "first-row timeout"
    assert conn.is_idle()
    conn.close()


def test_slow_login_fails_within_the_login_budget(devserver_thread: DevServer) -> None:
    """A server that does not answer the login: the read gives up when the login budget is
    spent (our socket holds pytds to it), not when the server finally answers."""
    login_delay_s = 60.0
    devserver_thread.faults.login_delay = login_delay_s
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable):
        _connect(devserver_thread, login_timeout_s=1.0)
    assert 1.0 <= time.monotonic() - started < login_delay_s / 3


def test_refused_login_is_a_database_error_not_unavailable(devserver_thread: DevServer) -> None:
    devserver_thread.faults.refuse_logins = True
    with pytest.raises(DatabaseError, match=r"refused the login \(error 18456\)") as info:
        _connect(devserver_thread)
    assert not isinstance(info.value, DatabaseUnavailable)
    assert info.value.status == 500
    assert not info.value.retry_later


def test_unacknowledged_attention_shuts_the_socket_down() -> None:
    """The in-thread watchdog: a peer that never answers the attention costs cancel_timeout_s,
    then the read fails and the socket is shut down (the connection is then discarded)."""
    ours, peer = socket.socketpair()
    with peer:
        cancel_timeout_s = 0.5
        watched = db.WatchedSocket(ours, poll_interval_s=POLL_S, cancel_timeout_s=cancel_timeout_s)
        attentions: list[float] = []
        watched.attach(lambda: attentions.append(time.monotonic()))
        watched.watch(lambda: True, silence_limit_s=None, reason=Attention.ROW_TIMEOUT)
        buffer = bytearray(8)
        started = time.monotonic()
        with pytest.raises(db.DatabaseStalled, match="no answer to a cancel"):
            watched.recv_into(buffer, 8)
        assert len(attentions) == 1, "exactly one attention, sent from inside the read"
        # Bounded by the cancel timeout (the peer would let the read wait forever).
        assert cancel_timeout_s <= time.monotonic() - started < 20 * cancel_timeout_s
        assert peer.recv(1) == b"", "our side was shut down"
        watched.close()


def test_reads_return_data_as_it_arrives_and_silence_limits_apply_per_read() -> None:
    ours, peer = socket.socketpair()
    with peer:
        limit_s = 2.0
        watched = db.WatchedSocket(ours, poll_interval_s=POLL_S, cancel_timeout_s=5.0)
        reasons: list[str | None] = []
        attention_at: list[float] = []

        def attention() -> None:
            reasons.append(watched.attention_reason)
            attention_at.append(time.monotonic())
            peer.sendall(b"defg")  # the data comes only after the attention

        watched.attach(attention)
        watched.watch(lambda: False, silence_limit_s=limit_s, reason=Attention.ROW_TIMEOUT)
        threading.Timer(0.05, peer.sendall, args=(b"abc",)).start()  # silent 0.05 s < 2 s
        buffer = bytearray(8)
        assert watched.recv_into(buffer, 8) == 3
        assert reasons == []
        second_read = time.monotonic()
        assert watched.recv_into(buffer, 8) == 4  # the read goes on after the attention
        assert reasons == ["between-rows timeout"]
        # The silence is counted from this read's start, not from watch() (which came at least
        # the first read's 0.05 s earlier).
        assert attention_at[0] - second_read >= limit_s
        watched.close()
