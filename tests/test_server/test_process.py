"""``python -m server`` as a real process: configuration errors, SIGTERM with a grace period."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import aiohttp
import pytest

from sql.devserver import DEV_PASSWORD, DevServer
from tests.commands import assert_taken_port_is_a_one_line_error
from tests.polling import apoll
from tests.test_server.readers import data_rows, is_valid_zip, openpyxl_sheets

LISTENING = re.compile(rb"listening on http://127\.0\.0\.1:(\d+)")


class ApiProcess:
    """The API process. Its log (stderr) is read all the time into ``log``: a pipe nobody reads
    fills at 64 KiB and would then block the API in the middle of a test."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        assert process.stderr is not None
        self.process = process
        self.port = 0
        self.log = bytearray()
        self.collector = asyncio.ensure_future(self._collect(process.stderr))

    async def _collect(self, stderr: asyncio.StreamReader) -> None:
        while chunk := await stderr.read(65_536):
            self.log += chunk

    async def wait_listening(self) -> None:
        await apoll(
            lambda: LISTENING.search(self.log) is not None or self.collector.done(),
            within=30,
            what="the API to listen",
        )
        match = LISTENING.search(self.log)
        assert match, f"the API exited before listening:\n{self.log.decode()}"
        self.port = int(match[1])

    async def finish(self, deadline_s: float) -> int:
        """Wait for the exit code and the end of the log."""
        await asyncio.wait_for(self.collector, deadline_s)
        return await asyncio.wait_for(self.process.wait(), deadline_s)


RunApi = Callable[..., Awaitable[ApiProcess]]


@pytest.fixture
async def run_api(devserver: DevServer) -> AsyncIterator[RunApi]:
    processes: list[ApiProcess] = []

    async def start(*flags: str) -> ApiProcess:
        env = {**os.environ, "MSSQL_PASSWORD": DEV_PASSWORD, "LOG_LEVEL": "INFO"}
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "server",
            "--port",
            "0",
            "--mssql-port",
            str(devserver.port),
            *flags,
            env=env,
            stderr=asyncio.subprocess.PIPE,
        )
        api = ApiProcess(process)
        processes.append(api)
        await api.wait_listening()
        return api

    yield start
    for api in processes:
        if api.process.returncode is None:
            api.process.kill()
            await api.process.wait()
        await asyncio.wait_for(api.collector, 30)  # the pipe ends with the process


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
    api = await run_api("--shutdown-grace", "0.5")
    target = f"http://127.0.0.1:{api.port}/export/report?rowCount=20000"
    async with http.get(target) as response:
        assert response.status == 200
        await apoll(lambda: devserver.stats.rows_sent >= 5_000, what="the stall")
        api.process.send_signal(signal.SIGTERM)
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()
    assert await api.finish(30) == 0
    await apoll(lambda: devserver.stats.attentions == 1, what="the query's cancellation")
    assert b"export 1 shutdown" in api.log


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
