"""Exports in worker processes: a worker killed mid-download, the service-wide limit across
workers, per-worker metrics, and cancellation reaching a worker that waits on its channel."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable

import aiohttp
import psutil
import pytest

from server.metrics import Outcome
from server.relay import Relay
from sql.devserver import DevServer
from tests.polling import apoll
from tests.test_server.conftest import (
    StartApi,
    download,
    parse_metrics,
    read_until_aborted,
    url,
    wait_idle,
)
from tests.test_server.readers import is_valid_zip

# ~12 MB of workbook: twice what every buffer between the database and a client that holds off
# reading holds (~60k rows: test_backpressure), so such a download cannot finish meanwhile.
ROWS = 150_000
MIB = 1024 * 1024
CHUNK_BYTES = 64 * 1024
# The export channel's capacity with the tests' --queue-chunks (the default: 4 chunks).
CHANNEL_BYTES = 4 * CHUNK_BYTES


async def _held_downloads(
    session: aiohttp.ClientSession, api_url: str, ids: list[str], rows: int = ROWS
) -> dict[str, aiohttp.ClientResponse]:
    """Downloads started one after the other, each past its headers, none read yet."""
    responses = {}
    for request_id in ids:
        response = await session.get(
            f"{api_url}/export/report?rowCount={rows}", headers={"X-Request-ID": request_id}
        )
        assert response.status == 200, await response.text()
        responses[request_id] = response
    return responses


async def test_a_killed_worker_aborts_only_its_downloads_and_is_replaced(
    devserver: DevServer,
    start_api: StartApi,
    paused_http: aiohttp.ClientSession,
    http: aiohttp.ClientSession,
) -> None:
    api = await start_api(workers=2, pool_max=6)
    responses = await _held_downloads(paused_http, url(api, ""), [f"before-{n}" for n in range(4)])
    # The fewest exports first, the first worker on a tie: two downloads each.
    on_worker = [{r.request_id for r in h.relays.values()} for h in api.workers.handles]
    assert sorted(map(len, on_worker)) == [2, 2], on_worker
    victim = api.workers.handles[0]
    assert victim.pid is not None
    os.kill(victim.pid, signal.SIGKILL)

    for request_id, response in responses.items():
        body, aborted = await read_until_aborted(response)
        if request_id in on_worker[0]:
            assert aborted, f"{request_id}: its worker died, the transfer must fail"
            assert not is_valid_zip(body)
        else:
            assert not aborted, f"{request_id}: the other worker's download must go on"
            assert is_valid_zip(body)
    await wait_idle(api)
    assert api.metrics.requests(Outcome.INTERNAL_ERROR) == 2
    assert api.metrics.requests(Outcome.COMPLETED) == 2

    # A replacement took the dead worker's place, and serves new downloads.
    replacement = api.workers.handles[0]
    assert replacement is not victim
    await apoll(lambda: replacement.is_up, what="the replacement worker to be up")
    assert replacement.pid not in (None, victim.pid)
    responses = await _held_downloads(paused_http, url(api, ""), ["after-0", "after-1"])
    assert {r.request_id for r in replacement.relays.values()}, "the replacement got one"
    for response in responses.values():
        body, aborted = await read_until_aborted(response)
        assert not aborted
        assert is_valid_zip(body)
    await wait_idle(api)

    # The dead worker's connections were closed with it: the database has exactly the
    # connections the workers' pools hold.
    await apoll(
        lambda: devserver.stats.connections_open == api.pool.idle + api.pool.in_use,
        what="the database's open connections to equal the pools'",
    )
    async with http.get(url(api, "/metrics")) as response:
        samples, _ = parse_metrics(await response.text())
    assert samples["export_worker_restarts_total"] == 1
    assert samples["export_workers"] == 2


# Polls in a row (tests.polling.INTERVAL_S apart: 0.2 s) that a stalled channel's backlog
# must stay the same for.
_STILL_POLLS = 10


def _stalled(relays: list[Relay]) -> Callable[[], bool]:
    """A condition: every export blocked writing its channel, i.e. chunks wait in each
    channel (nobody reads them: the clients stalled) and no more arrive. Not a byte
    threshold: how much a Unix socket holds depends on how its writes were split."""
    seen: list[list[int]] = []

    def stalled() -> bool:
        backlogs = [r.channel_backlog() for r in relays]
        seen.append(backlogs)
        recent = seen[-_STILL_POLLS:]
        return (
            len(recent) == _STILL_POLLS
            and all(b == backlogs for b in recent)
            and min(backlogs) >= CHUNK_BYTES
        )

    return stalled


async def test_metrics_report_each_worker_and_the_whole_service(
    devserver: DevServer,
    start_api: StartApi,
    paused_http: aiohttp.ClientSession,
    http: aiohttp.ClientSession,
) -> None:
    api = await start_api(workers=2, pool_max=4)
    responses = await _held_downloads(paused_http, url(api, ""), ["a", "b"])
    relays = [r for h in api.workers.handles for r in h.relays.values()]
    await apoll(_stalled(relays), what="both exports blocked on their channels")
    async with http.get(url(api, "/metrics")) as response:
        samples, _ = parse_metrics(await response.text())
    # What the two stalled clients hold up: their channels, full; not their whole files.
    assert samples["export_channel_bytes"] == sum(r.channel_backlog() for r in relays)
    assert samples["export_channel_bytes"] <= 2 * (CHANNEL_BYTES + CHUNK_BYTES // 4)
    assert samples["export_workers"] == 2
    assert samples["exports_active"] == 2
    assert samples['db_pool_connections{state="in_use"}'] == 2
    for handle in api.workers.handles:
        assert samples[f'export_worker_exports_active{{worker="{handle.index}"}}'] == 1
        assert handle.pid is not None
        reported = samples[f'process_resident_memory_bytes{{worker="{handle.index}"}}']
        actual = psutil.Process(handle.pid).memory_info().rss
        assert 10 * MIB < reported < 200 * MIB
        assert abs(reported - actual) < 20 * MIB, "the worker's own RSS, not another process's"
    # Without a label: the HTTP process (here, the test's own process).
    assert samples["process_resident_memory_bytes"] > 10 * MIB

    sizes = 0
    for response in responses.values():
        body, aborted = await read_until_aborted(response)
        assert not aborted
        sizes += len(body)
    await wait_idle(api)
    async with http.get(url(api, "/metrics")) as response:
        samples, _ = parse_metrics(await response.text())
    assert samples["export_rows_total"] == 2 * ROWS, "rows counted across both workers"
    assert samples["export_bytes_total"] == sizes
    assert samples["exports_active"] == 0
    assert samples['export_requests_total{outcome="completed"}'] == 2
    assert samples['db_pool_connections{state="idle"}'] == 2
    assert samples['db_pool_connections{state="in_use"}'] == 0


async def test_the_limit_holds_for_the_whole_service_and_refuses_at_once(
    devserver: DevServer,
    start_api: StartApi,
    paused_http: aiohttp.ClientSession,
    http: aiohttp.ClientSession,
) -> None:
    """Three slots, two workers: the third download is the limit although each worker's pool
    could lend more; the fourth request is refused at once, and so is /readyz (it needs a
    connection too)."""
    api = await start_api(workers=2, pool_max=3, retry_after_s=3)
    responses = await _held_downloads(paused_http, url(api, ""), ["a", "b", "c"])
    assert sorted(len(h.relays) for h in api.workers.handles) == [1, 2]
    for path in ("/export/report?rowCount=10", "/readyz"):
        started = time.monotonic()
        async with http.get(url(api, path)) as response:
            assert response.status == 503, path
            assert response.headers["Retry-After"] == "3"
            assert (await response.json())["error"]["code"] == "TOO_MANY_EXPORTS"
        # Nothing to wait for: the answer needs no worker and no database.
        assert time.monotonic() - started < 2.0
    assert devserver.stats.requests == 3, "the refused requests reached no worker"
    response = responses.pop("a")
    response.close()  # one client gives up: its slot comes back once its worker is done
    await apoll(lambda: api.admission.taken < 3, what="the slot to come back")
    async with http.get(url(api, "/export/report?rowCount=10")) as ok:
        assert ok.status == 200
        assert is_valid_zip(await ok.read())
    for response in responses.values():
        response.close()
    await wait_idle(api)


@pytest.mark.parametrize("workers", [1, 0], ids=["worker-process", "in-process"])
async def test_a_worker_blocked_writing_to_a_stalled_client_is_cancelled_at_once(
    devserver: DevServer, start_api: StartApi, paused_http: aiohttp.ClientSession, workers: int
) -> None:
    """The client stops reading, the channel fills, the export waits in its write. When the
    client goes, the write itself wakes: the attention does not wait for a poll (a minute
    apart here: a poll could do it in time only by chance)."""
    poll_interval_s = 60.0
    api = await start_api(workers=workers, poll_interval_s=poll_interval_s)
    response = (await _held_downloads(paused_http, url(api, ""), ["stalled"], rows=1_000_000))[
        "stalled"
    ]
    # The channel holds all it can: the export is blocked in its write.
    (relay,) = (r for h in api.workers.handles for r in h.relays.values())
    await apoll(_stalled([relay]), what="the export blocked on its channel")
    closed_at = time.monotonic()
    response.close()
    await apoll(lambda: devserver.stats.attentions == 1, what="an attention")
    assert time.monotonic() - closed_at < poll_interval_s / 12
    await wait_idle(api)
    assert api.pool.idle == 1, "acknowledged cancel: the connection is kept"
    assert api.metrics.requests(Outcome.CLIENT_DISCONNECTED) == 1


async def test_exports_go_to_the_worker_with_the_fewest_and_reuse_warm_connections(
    devserver: DevServer, start_api: StartApi, http: aiohttp.ClientSession
) -> None:
    api = await start_api(workers=2, pool_min=0, pool_max=4)
    for _ in range(3):  # one after the other: always the worker with the idle connection
        async with http.get(url(api, "/export/report?rowCount=100")) as response:
            assert is_valid_zip(await response.read())
        await wait_idle(api)
    assert devserver.stats.connections_total == 1
    assert [h.idle for h in api.workers.handles] == [1, 0]
    # Two at once: one each.
    devserver.faults.first_row_delay = 60.0
    waiting = [asyncio.ensure_future(http.get(url(api, "/export/report?rowCount=10")))]
    await apoll(lambda: api.active_exports == 1, what="the first export")
    waiting.append(asyncio.ensure_future(http.get(url(api, "/export/report?rowCount=10"))))
    await apoll(lambda: api.active_exports == 2, what="the second export")
    assert [len(h.relays) for h in api.workers.handles] == [1, 1]
    for task in waiting:
        task.cancel()
    await asyncio.gather(*waiting, return_exceptions=True)
    await wait_idle(api)


async def _answers_in_time(
    http: aiohttp.ClientSession, target: str, status: int, within_s: float
) -> bool:
    """``GET target`` answered ``status`` within ``within_s``."""
    try:
        async with asyncio.timeout(within_s), http.get(target) as response:
            await response.read()
            return response.status == status
    except TimeoutError:
        return False


async def test_a_stopped_worker_gets_no_new_work_and_readyz_answers_for_the_database(
    start_api: StartApi, http: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    """A worker stopped with SIGSTOP (its process alive, its sockets open, nothing answered):
    readiness checks and downloads go to the other worker, which serves them at once. The
    silence limit is far away: this is routing, not replacement."""
    api = await start_api(workers=2, pool_max=6, worker_silence_limit_s=120.0)
    stopped = api.workers.handles[0]  # the first choice on a tie
    assert stopped.pid is not None
    os.kill(stopped.pid, signal.SIGSTOP)
    try:
        streak = 0

        async def ready_five_times_in_a_row() -> bool:
            nonlocal streak
            ok = await _answers_in_time(http, url(api, "/readyz"), 200, within_s=1.0)
            streak = streak + 1 if ok else 0
            return streak >= 5

        deadline = time.monotonic() + 20
        while not await ready_five_times_in_a_row():
            assert time.monotonic() < deadline, "/readyz never answered 200 five times in a row"
        for _ in range(4):
            async with asyncio.timeout(10):
                body = await download(http, api, 1000)
            assert is_valid_zip(body)
        assert api.workers.handles[0] is stopped, "not replaced: the limit is far away"
        assert not stopped.relays
        assert psutil.Process(stopped.pid).status() == psutil.STATUS_STOPPED
    finally:
        os.kill(stopped.pid, signal.SIGCONT)
    await wait_idle(api)
    # The heartbeats are messages the HTTP process knows: no error logged for any of them.
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_a_worker_silent_past_the_limit_is_replaced_and_its_downloads_abort(
    devserver: DevServer,
    start_api: StartApi,
    paused_http: aiohttp.ClientSession,
    http: aiohttp.ClientSession,
) -> None:
    api = await start_api(workers=2, pool_max=6, worker_silence_limit_s=3.0)
    responses = await _held_downloads(paused_http, url(api, ""), ["on-0", "on-1"])
    on_worker = [{r.request_id for r in h.relays.values()} for h in api.workers.handles]
    assert on_worker == [{"on-0"}, {"on-1"}], on_worker
    victim = api.workers.handles[0]
    assert victim.pid is not None
    os.kill(victim.pid, signal.SIGSTOP)
    try:
        async with asyncio.timeout(60):
            body, aborted = await read_until_aborted(responses["on-0"])
        assert aborted, "a download on a worker that went silent must fail visibly"
        assert not is_valid_zip(body)
        body, aborted = await read_until_aborted(responses["on-1"])
        assert not aborted
        assert is_valid_zip(body)
        replacement = await apoll(
            lambda: api.workers.handles[0] is not victim and api.workers.handles[0],
            what="a replacement for the silent worker",
        )
        await apoll(lambda: replacement.is_up, what="the replacement to be up")
        await apoll(lambda: not psutil.pid_exists(victim.pid), what="the silent worker to be gone")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim.pid, signal.SIGCONT)
    assert api.workers.restarts == 1
    assert is_valid_zip(await download(http, api, 1000))
    await wait_idle(api)
    assert api.metrics.requests(Outcome.INTERNAL_ERROR) == 1
