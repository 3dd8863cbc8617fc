"""Two export APIs behind one BFF, as real processes with the real curl: both serve, and when
one is killed mid-download its downloads fail visibly while new ones go to the other."""

from __future__ import annotations

import re
import signal
import subprocess
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from scripts.stack import Service, start_api, start_bff
from sql.devserver import DevServer
from sql.devserver.server import Faults
from tests.e2e.conftest import metric
from tests.e2e.test_curl import CURL_TRANSFER_FAILED, curl, data_rows
from tests.polling import poll

# The dev server pauses 50 ms every 200 rows (~4,000 rows/s): a 20,000-row download then runs
# ~5 s, long enough to kill an API in the middle of it on a loaded machine, without the CPU
# cost of a large export.
SLOW_ROWS = 20_000
# Small downloads after the kill: a few hundred ms each at that pace.
QUICK_ROWS = 400
# A download that keeps an API draining for ~15 s at that pace (within its 25 s grace): far
# longer than the few downloads made meanwhile take.
DRAIN_ROWS = 60_000


@dataclass
class Pair:
    apis: list[Service]
    bff: Service

    def report_url(self, rows: int) -> str:
        return f"{self.bff.url}/exports/report?rowCount={rows}"


def _pair(
    devdb: DevServer, tmp_path_factory: pytest.TempPathFactory, bff_env: dict[str, str]
) -> Iterator[Pair]:
    log_dir = tmp_path_factory.mktemp("scaleout-logs")
    devdb.faults = Faults(row_delay=0.05, row_delay_every=200)
    started: list[Service] = []
    try:
        for _ in range(2):
            started.append(start_api(0, db_port=devdb.port, log_dir=log_dir))
        apis = list(started)
        started.append(
            start_bff(0, api_url=[api.url for api in apis], env=bff_env, log_dir=log_dir)
        )
        yield Pair(apis, started[-1])
    finally:
        for service in reversed(started):
            service.stop()
        devdb.faults = Faults()


@pytest.fixture
def pair(devdb: DevServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    yield from _pair(devdb, tmp_path_factory, {})


@pytest.fixture
def unchecked_pair(devdb: DevServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    """A pair whose BFF checks the APIs' readiness once, at its start: what a download finds
    of an API is then what that download's own request met."""
    yield from _pair(devdb, tmp_path_factory, {"BFF_HEALTH_INTERVAL": "3600"})


def _bff_metric(pair: Pair, name: str, api: Service, **labels: str) -> float:
    pairs = [f'upstream="{api.url}"', *(f'{k}="{v}"' for k, v in labels.items())]
    return metric(pair.bff, re.escape(f"{name}{{{','.join(pairs)}}}"))


def _exports(api: Service) -> float:
    return metric(api, r'export_requests_total\{outcome="completed"\}')


def test_two_apis_share_downloads_and_a_killed_one_fails_only_its_own(
    pair: Pair, tmp_path: Path
) -> None:
    first, second = pair.apis
    files = [tmp_path / "one.xlsx", tmp_path / "two.xlsx"]
    url = pair.report_url(SLOW_ROWS)
    curls = [
        subprocess.Popen(
            ["curl", "-sS", "-o", str(path), "-H", f"X-Request-ID: scaleout-{n}", url],
            stderr=subprocess.DEVNULL,
        )
        for n, path in enumerate(files)
    ]
    try:
        # Each API runs one: the second download went to the API with none running.
        for api in pair.apis:
            poll(lambda api=api: metric(api, "exports_active") == 1, what=f"{api.url} exporting")
        # Each API has answered (its download's first bytes are in the file): a GET whose API
        # dies before answering may be sent again, on another API, by the BFF's HTTP client.
        for path in files:
            poll(lambda path=path: path.exists() and path.stat().st_size > 0, what=f"{path} begun")
        served_by = {
            n: next(api for api in pair.apis if f"(request scaleout-{n})" in api.log_text())
            for n in range(2)
        }
        assert {served_by[0].url, served_by[1].url} == {first.url, second.url}
        victim_curl, survivor_curl = (0, 1) if served_by[0] is first else (1, 0)

        first.process.kill()  # SIGKILL: no shutdown, the connections just end
        first.process.wait(timeout=30)

        # The download the dead API was serving fails, visibly: curl says so and the file
        # it wrote is not a workbook (no zip central directory).
        assert curls[victim_curl].wait(timeout=60) in CURL_TRANSFER_FAILED
        assert not zipfile.is_zipfile(files[victim_curl])
        # The other one is untouched.
        assert curls[survivor_curl].wait(timeout=120) == 0
        assert data_rows(files[survivor_curl]) == SLOW_ROWS
    finally:
        for process in curls:
            process.kill()
            process.wait()

    poll(lambda: _bff_metric(pair, "bff_upstream_up", first) == 0, what="the dead API down")
    assert _bff_metric(pair, "bff_upstream_up", second) == 1
    assert _bff_metric(pair, "bff_upstream_downloads_total", first, outcome="upstream_aborted") == 1
    # New downloads all go to the living API, and all arrive whole.
    before = _exports(second)
    for n in range(3):
        target = tmp_path / f"after-{n}.xlsx"
        done = curl("-f", "-o", str(target), pair.report_url(QUICK_ROWS))
        assert done.returncode == 0, done.stderr
        assert data_rows(target) == QUICK_ROWS
    assert _exports(second) == before + 3
    assert _bff_metric(pair, "bff_upstream_active_downloads", first) == 0
    completed_on_second = _bff_metric(
        pair, "bff_upstream_downloads_total", second, outcome="completed"
    )
    assert completed_on_second == 4  # the survivor and the three new ones


def test_a_draining_api_answers_at_once_and_the_bff_sends_downloads_to_the_other(
    unchecked_pair: Pair, tmp_path: Path
) -> None:
    """SIGTERM to an API while it streams: the BFF's kept-alive connection to it gets its 503
    SHUTTING_DOWN at once, and the download goes to the other API; the export that was
    running finishes whole and the API exits cleanly."""
    pair = unchecked_pair
    first, second = pair.apis
    for n in range(2):  # one on each API, in turn: the BFF keeps a connection to each
        warm = tmp_path / f"warm-{n}.xlsx"
        assert curl("-f", "-o", str(warm), pair.report_url(QUICK_ROWS)).returncode == 0
    running_file = tmp_path / "running.xlsx"
    running = subprocess.Popen(
        [
            "curl",
            "-sS",
            "-f",
            "-o",
            str(running_file),
            f"{first.url}/export/report?rowCount={DRAIN_ROWS}",
        ],
        stderr=subprocess.DEVNULL,
    )
    try:
        poll(lambda: metric(first, "exports_active") == 1, what="the first API exporting")
        first.process.send_signal(signal.SIGTERM)
        poll(lambda: "signal received" in first.log_text(), what="the drain")
        for n in range(4):
            target = tmp_path / f"during-{n}.xlsx"
            done = curl("-f", "-o", str(target), pair.report_url(QUICK_ROWS), timeout=60)
            assert done.returncode == 0, done.stderr
            assert data_rows(target) == QUICK_ROWS
        # All four were served while the first API still drained: none waited for its end.
        assert running.poll() is None, "the running export (the drain) was over already"
        assert running.wait(timeout=120) == 0
        assert data_rows(running_file) == DRAIN_ROWS
    finally:
        running.kill()
        running.wait()
    assert first.process.wait(timeout=60) == 0
    assert _bff_metric(pair, "bff_upstream_ready", first) == 0
    assert _bff_metric(pair, "bff_upstream_downloads_total", second, outcome="completed") == 5
