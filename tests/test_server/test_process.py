"""``python -m server`` as a real process: configuration errors, SIGTERM with a grace period."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import Sequence

import aiohttp
import pytest

from sql.devserver import DevServer
from tests.commands import assert_taken_port_is_a_one_line_error
from tests.polling import apoll
from tests.test_server.conftest import RunApi, all_gone, worker_pids
from tests.test_server.readers import data_rows, is_valid_zip, openpyxl_sheets


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_signal_lets_a_running_export_finish(
    devserver: DevServer, run_api: RunApi, http: aiohttp.ClientSession, signum: signal.Signals
) -> None:
    devserver.faults.row_delay = 0.3  # 4 pauses: about 1.2 s for 20,000 rows
    devserver.faults.row_delay_every = 5_000
    api = await run_api("--shutdown-grace", "30")
    target = f"http://127.0.0.1:{api.port}/export/report?rowCount=20000"
    async with http.get(target) as response:
        assert response.status == 200
        api.process.send_signal(signum)
        # Stop accepting: new connections are refused while the export goes on.
        await apoll(lambda: _refuses(api.port), what="the listener to close")
        body = await response.read()
    assert is_valid_zip(body)
    assert len(list(data_rows(openpyxl_sheets(body)))) == 20_000
    assert await api.finish(30) == 0
    assert b"export 1 completed" in api.log
    assert b"export API stopped" in api.log


async def test_sigterm_aborts_exports_still_running_after_the_grace_period(
    devserver: DevServer, run_api: RunApi, http: aiohttp.ClientSession
) -> None:
    devserver.faults.row_delay = 120.0  # stalls after 5,000 rows, far longer than the grace
    devserver.faults.row_delay_every = 5_000
    api = await run_api("--shutdown-grace", "0.5", "--workers", "2")
    workers = await worker_pids(api, 2)
    target = f"http://127.0.0.1:{api.port}/export/report?rowCount=20000"
    async with http.get(target) as first, http.get(target) as second:  # one on each worker
        assert (first.status, second.status) == (200, 200)
        await apoll(lambda: devserver.stats.rows_sent >= 10_000, what="both exports to stall")
        api.process.send_signal(signal.SIGTERM)
        for response in (first, second):
            with pytest.raises(aiohttp.ClientPayloadError):
                await response.read()
    assert await api.finish(30) == 0
    await apoll(lambda: devserver.stats.attentions == 2, what="both queries' cancellation")
    assert b"export 1 shutdown" in api.log
    assert b"export 2 shutdown" in api.log
    await apoll(lambda: all_gone(workers), what="the workers to exit")
    await apoll(lambda: devserver.stats.connections_open == 0, what="every connection closed")


def _refuses(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        ([], {}, b"MSSQL_PASSWORD"),
        (["--pool-max", "0"], {"MSSQL_PASSWORD": "x"}, b"--pool-max"),
        ([], {"MSSQL_PASSWORD": "x", "API_PORT": "http"}, b"API_PORT"),
    ],
)
async def test_bad_configuration_exits_2_with_a_message(
    argv: Sequence[str], env: dict[str, str], message: bytes
) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MSSQL_", "API_"))}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server",
        *argv,
        env={**clean, **env},
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    assert message in stderr


def test_the_command_exits_1_with_a_message_when_the_port_is_taken() -> None:
    assert_taken_port_is_a_one_line_error("server", env={"MSSQL_PASSWORD": "unused"})
