"""The full chain for end-to-end tests: TDS dev server (in-process, so its counters and faults
are at hand) -> export API -> BFF, the latter two as real processes started by scripts.stack."""

from __future__ import annotations

import re
import shutil
import socket
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from scripts.stack import HOST, Service, start_api, start_bff
from sql.devserver import DevServer, run_in_thread
from sql.devserver.server import Faults
from tests.polling import poll


@dataclass
class Chain:
    db: DevServer
    api: Service
    bff: Service
    log_dir: Path

    def report_url(self, query: str, *, through_bff: bool = True) -> str:
        if through_bff:
            return f"{self.bff.url}/exports/report?{query}"
        return f"{self.api.url}/export/report?{query}"


@pytest.fixture(scope="session")
def devdb() -> Iterator[DevServer]:
    """One dev server for the whole run (it is cheap to share: tests reset its faults)."""
    if shutil.which("curl") is None:
        pytest.fail("curl is required (make system-deps installs it)")
    with run_in_thread(host="127.0.0.1", port=0) as db:
        yield db


@pytest.fixture
def chain(devdb: DevServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Chain]:
    """A fresh API and BFF per test (about a second to start): no test inherits another's
    pooled connections, counters or half-finished downloads."""
    log_dir = tmp_path_factory.mktemp("e2e-logs")
    devdb.faults = Faults()
    # Port 0: each service binds any free port and scripts.stack reads back which (no races).
    api = start_api(0, db_port=devdb.port, log_dir=log_dir)
    try:
        bff = start_bff(0, api_url=api.url, log_dir=log_dir)
        try:
            yield Chain(devdb, api, bff, log_dir)
            # Whatever a test did, the API must end with every connection back in the pool.
            poll(lambda: pool_in_use(api) == 0, what="API pool back to idle")
        finally:
            bff.stop()
    finally:
        api.stop()


@pytest.fixture
def dead_url() -> Iterator[str]:
    """The URL of a port where nothing listens, for "the API is down". The port stays bound
    (never listening) for the whole test, so connections are refused and no other process can
    start listening there meanwhile, as it could on a port merely probed free."""
    with socket.socket() as held:
        held.bind((HOST, 0))
        yield f"http://{HOST}:{held.getsockname()[1]}"


def metrics(service: Service) -> str:
    with urllib.request.urlopen(f"{service.url}/metrics", timeout=10) as response:
        return str(response.read().decode("utf-8"))


def metric(service: Service, pattern: str) -> float:
    """The value of the first metrics line matching ``pattern`` (a regex on name and labels)."""
    for line in metrics(service).splitlines():
        if re.match(pattern + r"\s", line):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no metric {pattern!r} in {service.name}'s /metrics")


def pool_in_use(api: Service) -> float:
    return metric(api, r'db_pool_connections\{state="in_use"\}')


@pytest.fixture
def bff_factory(chain: Chain) -> Iterator[Callable[..., Service]]:
    """Extra BFF processes (other settings, or a dead API) for one test; stopped after it."""
    started: list[Service] = []

    def factory(api_url: str | None = None, **env: str) -> Service:
        service = start_bff(0, api_url=api_url or chain.api.url, env=env, log_dir=chain.log_dir)
        started.append(service)
        return service

    yield factory
    for service in started:
        service.stop()
