"""The pool and the watched pytds connection, against the dev server running on its own thread."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from server import db
from server.config import DbSettings
from server.db import DbConnection
from server.errors import DatabaseError, DatabaseUnavailable, ShuttingDown, TooManyExports
from server.pool import ConnectionPool, Lease
from sql.devserver import DEV_PASSWORD, DevServer, run_in_thread
from sql.report_data import row_values

POLL_S = 0.05


def _settings(server: DevServer, **overrides: object) -> DbSettings:
    values: dict[str, object] = {
        "port": server.port,
        "password": DEV_PASSWORD,
        "login_timeout_s": 3.0,
        **overrides,
    }
    return DbSettings(**values)  # type: ignore[arg-type]


def _connect(server: DevServer, **overrides: object) -> DbConnection:
    return db.connect(_settings(server, **overrides), poll_interval_s=POLL_S, cancel_timeout_s=3.0)


def _pool(server: DevServer, **kwargs: object) -> ConnectionPool[DbConnection]:
    settings = _settings(server)  # the address, taken now: the server may go away later
    options: dict[str, object] = {"min_size": 0, "max_size": 2, "idle_timeout_s": 30.0, **kwargs}
    return ConnectionPool(
        lambda: db.connect(settings, poll_interval_s=POLL_S, cancel_timeout_s=3.0),
        **options,  # type: ignore[arg-type]
    )


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
    with run_in_thread(host="127.0.0.1", port=0) as server:
        pool = _pool(server)
        lease = pool.lease()
        conn, _ = lease.acquire()
        lease.release(conn, reusable=True)
        assert conn.is_healthy()
    # The server is gone: the idle connection sees EOF, is dropped, and a new login fails fast.
    assert not conn.is_healthy()
    lease = pool.lease()
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable):
        lease.acquire()
    assert time.monotonic() - started < 2.0
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
    devserver_thread.faults.first_row_delay = 60.0
    conn = _connect(devserver_thread)
    cancel = threading.Event()
    conn.socket.watch(cancel.is_set, silence_limit_s=None, reason="test")
    threading.Timer(0.3, cancel.set).start()
    cursor = conn.cursor()
    started = time.monotonic()
    cursor.callproc("dbo.spGenerateData", {"@RowCount": 100})
    assert cursor.fetchone() is None  # the ATTN acknowledgement ends the result early
    assert time.monotonic() - started < 5.0
    assert conn.socket.attention_reason == "cancelled"
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
    conn.socket.watch(lambda: False, silence_limit_s=0.3, reason="first-row timeout")
    cursor = conn.cursor()
    cursor.callproc("dbo.spGenerateData", {"@RowCount": 100})
    assert cursor.fetchone() is None
    assert conn.socket.attention_reason == "first-row timeout"
    assert conn.is_idle()
    conn.close()


def test_slow_login_fails_within_the_login_budget(devserver_thread: DevServer) -> None:
    """pytds retries logins after socket timeouts, sleeping out the whole budget; ours does not."""
    devserver_thread.faults.login_delay = 10.0
    started = time.monotonic()
    with pytest.raises(DatabaseUnavailable):
        _connect(devserver_thread, login_timeout_s=0.5)
    assert time.monotonic() - started < 2.0


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
        watched = db.WatchedSocket(ours, poll_interval_s=POLL_S, cancel_timeout_s=0.3)
        attentions: list[float] = []
        watched.attach(lambda: attentions.append(time.monotonic()))
        watched.watch(lambda: True, silence_limit_s=None, reason="test")
        buffer = bytearray(8)
        started = time.monotonic()
        with pytest.raises(db.DatabaseStalled, match="no answer to a cancel"):
            watched.recv_into(buffer, 8)
        assert len(attentions) == 1, "exactly one attention, sent from inside the read"
        assert 0.3 <= time.monotonic() - started < 2.0
        assert peer.recv(1) == b"", "our side was shut down"
        watched.close()


def test_reads_return_data_as_it_arrives_and_silence_limits_apply_per_read() -> None:
    ours, peer = socket.socketpair()
    with peer:
        watched = db.WatchedSocket(ours, poll_interval_s=POLL_S, cancel_timeout_s=5.0)
        reasons: list[str | None] = []
        watched.attach(lambda: reasons.append(watched.attention_reason))
        watched.watch(lambda: False, silence_limit_s=0.3, reason="between-rows timeout")
        threading.Timer(0.2, peer.sendall, args=(b"abc",)).start()  # silent 0.2 s < 0.3 s
        buffer = bytearray(8)
        assert watched.recv_into(buffer, 8) == 3
        assert reasons == []
        threading.Timer(0.6, peer.sendall, args=(b"defg",)).start()  # silent 0.6 s > 0.3 s
        assert watched.recv_into(buffer, 8) == 4  # the read goes on after the attention
        assert reasons == ["between-rows timeout"]
        watched.close()
