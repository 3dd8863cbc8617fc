"""Export API fixtures: the API in the test's event loop, talking to the dev server over TCP."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import os
import re
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any

import aiohttp
import psutil
import pytest

from server.app import ExportApi
from server.config import ApiConfig, DbSettings
from sql.devserver import DEV_PASSWORD, DevServer
from tests.polling import apoll, poll

StartApi = Callable[..., Awaitable[ExportApi]]

# Small pool and short timeouts: tests wait for conditions, and short limits keep them quick.
# Budgets that only a broken server should exhaust (login, cancel acknowledgement) stay roomy:
# on a loaded 2-core CI machine the dev server may not be scheduled for a second or more.
TEST_DEFAULTS: dict[str, Any] = {
    "port": 0,
    "pool_min": 1,
    "pool_max": 4,
    "first_row_timeout_s": 10.0,
    "row_timeout_s": 10.0,
    "client_write_timeout_s": 30.0,
    "cancel_timeout_s": 10.0,
    "poll_interval_s": 0.05,
    "memory_log_every_rows": 0,
    "shutdown_grace_s": 2.0,
    # Exports in a worker process, as in production; tests that are about several workers, or
    # about the in-process mode, ask for their own count.
    "workers": 1,
}


def api_config(db_port: int, **overrides: Any) -> ApiConfig:
    db_overrides = overrides.pop("db", {})
    # In clear by default: the dev server of most tests has no certificate (the encryption
    # tests give it one and turn encryption on).
    db_settings = {
        "port": db_port,
        "password": DEV_PASSWORD,
        "login_timeout_s": 10.0,
        "encrypt": "off",
    }
    db = DbSettings(**{**db_settings, **db_overrides})
    return dataclasses.replace(ApiConfig(db=db), **{**TEST_DEFAULTS, **overrides})


# Where exports run: a worker process, or threads of the HTTP process (--workers 0). A module
# whose tests must hold in both runs each of them twice:
#     pytestmark = pytest.mark.parametrize("export_workers", EXPORT_MODES, ids=EXPORT_MODE_IDS)
EXPORT_MODES = (1, 0)
EXPORT_MODE_IDS = ("worker-process", "in-process")


# The three ways an export's rows are decoded and written, as API settings; a test that must
# hold on each asks for ``row_path`` (the settings to pass to ``start_api``).
ROW_PATHS = {
    "compiled": {"fast_rows": True, "compiled_rows": True},
    "generated": {"fast_rows": True, "compiled_rows": False},
    "pytds": {"fast_rows": False},
}


@pytest.fixture(params=list(ROW_PATHS), ids=list(ROW_PATHS))
def row_path(request: pytest.FixtureRequest) -> dict[str, bool]:
    return ROW_PATHS[request.param]


@pytest.fixture
def export_workers() -> int:
    """The worker count ``start_api`` uses unless a test asks for one."""
    return int(TEST_DEFAULTS["workers"])


@pytest.fixture
async def start_api(devserver: DevServer, export_workers: int) -> AsyncIterator[StartApi]:
    """``await start_api(**config_overrides)``: a started ExportApi against ``devserver``."""
    started: list[ExportApi] = []

    async def start(**overrides: Any) -> ExportApi:
        db_port = overrides.pop("db_port", devserver.port)
        overrides.setdefault("workers", export_workers)
        api = ExportApi(api_config(db_port, **overrides))
        await api.start()
        started.append(api)
        return api

    yield start
    for api in started:
        await api.close(grace_s=0.5)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


# A client's receive buffer when it holds off reading: far below a download's size, so the
# download cannot end in kernel buffers while the client waits.
PAUSED_CLIENT_RCVBUF = 64 * 1024


def _small_receive_buffer(addr_info: Any) -> socket.socket:
    family, kind, proto, _, _ = addr_info
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, PAUSED_CLIENT_RCVBUF)
    return sock


@pytest.fixture
async def paused_http() -> AsyncIterator[aiohttp.ClientSession]:
    """A client whose downloads stall the chain when it holds off reading (a small socket
    receive buffer and read buffer): ``get`` returns at the headers; the body waits."""
    connector = aiohttp.TCPConnector(socket_factory=_small_receive_buffer, force_close=True)
    async with aiohttp.ClientSession(
        connector=connector, read_bufsize=PAUSED_CLIENT_RCVBUF
    ) as session:
        yield session


async def read_until_aborted(response: aiohttp.ClientResponse) -> tuple[bytes, bool]:
    """The body as far as it came, and whether the transfer ended in an error (the response is
    closed either way)."""
    chunks = []
    try:
        async for chunk in response.content.iter_any():
            chunks.append(chunk)
    except aiohttp.ClientPayloadError:
        return b"".join(chunks), True
    finally:
        response.close()
    return b"".join(chunks), False


# One sample line of the text format: name, optional {labels}, value.
SAMPLE = re.compile(
    r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>[a-z_]+="[^"]*"(?:,[a-z_]+="[^"]*")*)\})?'
    r" (?P<value>[-+]?(?:\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\+Inf))$"
)


def parse_metrics(text: str) -> tuple[dict[str, float], dict[str, str]]:
    """Strict parse of the exposition format: every line is HELP, TYPE or a valid sample.
    Returns the samples and each family's type."""
    assert text.endswith("\n")
    samples: dict[str, float] = {}
    typed: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge", "histogram")
            assert name not in typed, f"two TYPE lines for {name}"
            typed[name] = kind
            continue
        match = SAMPLE.match(line)
        assert match, f"not a valid sample line: {line!r}"
        name = match["name"]
        family = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in typed or family in typed, f"{name} has no TYPE line before it"
        key = f"{name}{{{match['labels']}}}" if match["labels"] else name
        assert key not in samples, f"duplicate sample {key}"
        samples[key] = float(match["value"])
    return samples, typed


def url(api: ExportApi, path: str) -> str:
    return f"http://127.0.0.1:{api.port}{path}"


async def download(
    http: aiohttp.ClientSession, api: ExportApi, rows: int, *, status: int = 200
) -> bytes:
    """``GET /export/report?rowCount=rows``: the whole body, after checking the status."""
    async with http.get(url(api, f"/export/report?rowCount={rows}")) as response:
        assert response.status == status
        return await response.read()


async def wait_idle(api: ExportApi) -> None:
    """Every export over and every pooled connection given back."""
    await apoll(
        lambda: api.active_exports == 0 and api.pool.in_use == 0,
        what="exports to end and the pool's in-use count to return to 0",
    )


@contextlib.contextmanager
def port_held(port: int = 0, *, deadline_s: float = 10.0) -> Iterator[socket.socket]:
    """A socket bound to ``port`` (0: any free one) and never listening, for the block's duration:
    connections to that port are refused for sure, and no other process can take it. (A port
    probed free and then released can be taken by anyone before the test uses it.)

    SO_REUSEADDR, because a server that just stopped on this port leaves connections in
    TIME_WAIT there; the kernel still never hands this port out to another ``bind(0)``."""
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        poll(lambda: _bound(holder, port), within=deadline_s, what=f"port {port} to be free")
        yield holder


def _bound(sock: socket.socket, port: int) -> bool:
    """Bind ``sock`` to ``port`` on loopback; False while another socket still has it."""
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        return False
    return True


def held_port(holder: socket.socket) -> int:
    return int(holder.getsockname()[1])


LISTENING = re.compile(rb"listening on http://127\.0\.0\.1:(\d+)")


class ApiProcess:
    """``python -m server`` as a process. Its log (stderr) is read all the time into ``log``: a
    pipe nobody reads fills at 64 KiB and would then block the API in the middle of a test."""

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

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def finish(self, deadline_s: float) -> int:
        """Wait for the exit code and the end of the log."""
        await asyncio.wait_for(self.collector, deadline_s)
        return await asyncio.wait_for(self.process.wait(), deadline_s)


RunApi = Callable[..., Awaitable[ApiProcess]]


@pytest.fixture
async def run_api(devserver: DevServer) -> AsyncIterator[RunApi]:
    """``await run_api(*flags, db_port=...)``: the API as a process, against ``devserver``
    unless another database port is given."""
    processes: list[ApiProcess] = []

    async def start(
        *flags: str, db_port: int | None = None, env: Mapping[str, str | None] | None = None
    ) -> ApiProcess:
        """``env``: variables to set, or to leave out (None), on top of the defaults."""
        environ: dict[str, str | None] = {
            **os.environ,
            "MSSQL_PASSWORD": DEV_PASSWORD,
            "LOG_LEVEL": "INFO",
            "MSSQL_ENCRYPT": "off",  # the test's dev server has no certificate
            **(env or {}),
        }
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "server",
            "--port",
            "0",
            "--mssql-port",
            str(devserver.port if db_port is None else db_port),
            *flags,
            env={k: v for k, v in environ.items() if v is not None},
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # its own process group, as a service or a terminal gives it
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


def _worker_children(pid: int) -> list[int]:
    try:
        children = psutil.Process(pid).children()
    except psutil.NoSuchProcess:
        return []
    found = []
    for child in children:
        with contextlib.suppress(psutil.Error):
            if "server.worker" in child.cmdline():
                found.append(child.pid)
    return found


async def worker_pids(api: ApiProcess, count: int) -> list[int]:
    """The API process's worker processes (``count`` of them)."""
    return await apoll(
        lambda: (pids := _worker_children(api.process.pid)) and len(pids) == count and pids,
        what=f"{count} worker processes",
    )


def all_gone(pids: list[int]) -> bool:
    """None of these processes runs any more (a zombie nobody reaped has exited too)."""
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                return False
    return True
