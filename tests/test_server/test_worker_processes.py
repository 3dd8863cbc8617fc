"""``python -m server`` with its worker processes, as a service runs it: SIGTERM or a whole
process group's Ctrl-C drains every worker, a dead HTTP process leaves no worker and no query
behind, and the HTTP process answers at once while the workers are busy with exports."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator

import aiohttp
import psutil
import pytest

from scripts.stack import Service, start_devdb
from server.worker import WORKER_NICENESS
from sql.devserver import DevServer
from tests.polling import apoll
from tests.test_server.conftest import (
    ApiProcess,
    RunApi,
    all_gone,
    parse_metrics,
    read_until_aborted,
    worker_pids,
)
from tests.test_server.readers import data_rows, openpyxl_sheets

ROWS = 20_000


async def _metrics(http: aiohttp.ClientSession, api: ApiProcess) -> dict[str, float]:
    async with http.get(api.url("/metrics")) as response:
        return parse_metrics(await response.text())[0]


async def _one_export_on_each_worker(
    http: aiohttp.ClientSession, api: ApiProcess, rows: int
) -> list[aiohttp.ClientResponse]:
    responses = [await http.get(api.url(f"/export/report?rowCount={rows}")) for _ in range(2)]
    assert [r.status for r in responses] == [200, 200]
    samples = await _metrics(http, api)
    assert samples['export_worker_exports_active{worker="0"}'] == 1
    assert samples['export_worker_exports_active{worker="1"}'] == 1
    return responses


@pytest.mark.parametrize("to_group", [False, True], ids=["SIGTERM", "SIGINT-to-the-group"])
async def test_a_signal_lets_the_exports_of_every_worker_finish(
    devserver: DevServer, run_api: RunApi, http: aiohttp.ClientSession, to_group: bool
) -> None:
    """SIGTERM to the API, or SIGINT to its whole process group (Ctrl-C in a terminal, a
    service manager stopping everything at once): the workers ignore the signal, the API
    drains their exports within its grace period, then stops them."""
    devserver.faults.row_delay = 0.3  # 4 pauses: about 1.2 s for 20,000 rows
    devserver.faults.row_delay_every = 5_000
    api = await run_api("--shutdown-grace", "30", "--workers", "2")
    workers = await worker_pids(api, 2)
    responses = await _one_export_on_each_worker(http, api, ROWS)
    if to_group:
        os.killpg(api.process.pid, signal.SIGINT)
    else:
        api.process.send_signal(signal.SIGTERM)
    for response in responses:
        body, aborted = await read_until_aborted(response)
        assert not aborted
        assert len(list(data_rows(openpyxl_sheets(body)))) == ROWS
    assert await api.finish(30) == 0
    assert b"export 1 completed" in api.log
    assert b"export 2 completed" in api.log
    assert b"exited unexpectedly" not in api.log
    await apoll(lambda: all_gone(workers), what="the workers to exit")
    await apoll(lambda: devserver.stats.connections_open == 0, what="every connection closed")


async def test_workers_of_a_killed_api_cancel_their_queries_and_exit(
    devserver: DevServer,
    run_api: RunApi,
    paused_http: aiohttp.ClientSession,
) -> None:
    """The HTTP process dies (kill -9) while one export waits for its first row and another
    waits for a client that reads nothing: each worker sees its channels close, cancels its
    query with an attention, and exits; no connection is left open."""
    api = await run_api("--workers", "2", "--pool-min", "0")
    workers = await worker_pids(api, 2)
    stalled = await paused_http.get(api.url("/export/report?rowCount=1000000"))
    assert stalled.status == 200
    await apoll(lambda: devserver.stats.backpressure_pauses > 0, what="the stalled download")
    devserver.faults.first_row_delay = 60.0
    waiting = asyncio.ensure_future(paused_http.get(api.url("/export/report?rowCount=10")))
    await apoll(lambda: devserver.stats.requests == 2, what="the second export's call")
    api.process.kill()
    await apoll(lambda: devserver.stats.attentions == 2, what="both queries' cancellation")
    await apoll(lambda: all_gone(workers), what="the workers to exit")
    await apoll(lambda: devserver.stats.connections_open == 0, what="every connection closed")
    stalled.close()
    with contextlib.suppress(aiohttp.ClientError):
        (await waiting).close()


@pytest.fixture
def devdb_process() -> Iterator[Service]:
    """The dev database as a process of its own: it must not share this test's event loop, whose
    timing the test measures."""
    service = start_devdb(0)
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture
async def busy_downloads() -> AsyncIterator[list[asyncio.subprocess.Process]]:
    """curl processes, killed after the test."""
    processes: list[asyncio.subprocess.Process] = []
    yield processes
    for process in processes:
        if process.returncode is None:
            process.kill()
            await process.wait()


def _cpu_s(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


async def test_the_api_answers_at_once_while_its_workers_are_busy(
    devdb_process: Service,
    run_api: RunApi,
    http: aiohttp.ClientSession,
    busy_downloads: list[asyncio.subprocess.Process],
) -> None:
    """Every slot taken by a download the workers are busy encoding: a request beyond the limit
    gets its 503 at once, and /healthz answers at once, because no export runs in the HTTP
    process: the workers do the exports' work. The workers run at a lower priority, so the
    HTTP process gets a core first when both are runnable."""
    api = await run_api(
        "--workers", "2", "--pool-min", "2", "--pool-max", "4", db_port=devdb_process.port
    )
    workers = await worker_pids(api, 2)
    http_niceness = psutil.Process(api.process.pid).nice()
    assert [psutil.Process(pid).nice() for pid in workers] == [http_niceness + WORKER_NICENESS] * 2
    for _ in range(4):
        busy_downloads.append(
            await asyncio.create_subprocess_exec(
                "curl", "-sSo", os.devnull, api.url("/export/report?rowCount=1000000")
            )
        )
    await apoll(
        lambda: api.log.count(b"report report (rowCount) requested by") == 4,
        what="the four exports to start",
    )
    workers_cpu = sum(map(_cpu_s, workers))
    answers: list[float] = []
    probes: list[float] = []
    for _ in range(10):
        started = time.monotonic()
        async with http.get(api.url("/export/report?rowCount=10")) as response:
            assert response.status == 503
            assert (await response.json())["error"]["code"] == "TOO_MANY_EXPORTS"
        answers.append(time.monotonic() - started)
        started = time.monotonic()
        async with http.get(api.url("/healthz")) as response:
            assert response.status == 200
        probes.append(time.monotonic() - started)
        await asyncio.sleep(0.1)
    samples = await _metrics(http, api)
    assert samples["exports_active"] == 4, "the downloads were still running throughout"
    # The mechanism, not a share of a noisy machine: every answer came while the exports ran
    # (milliseconds on an idle machine; the bound leaves room for a loaded one), and the
    # exports' work was done in the workers. How fast, and what each process costs, is
    # measured by tests.bench.workers.
    assert max(answers + probes) < 2.0, (answers, probes)
    await apoll(
        lambda: sum(map(_cpu_s, workers)) - workers_cpu > 0.5,
        what="the workers to do the exports' work",
    )
    for process in busy_downloads:
        process.kill()
    await apoll(lambda: api.log.count(b"client_disconnected") == 4, what="the four exports to stop")
