"""Auth, CORS and the per-client limit through the whole chain, each on (a BFF configured by
environment, as an operator would) and off (the default BFF)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from bff.config import DEFAULT_MAX_DOWNLOADS_PER_CLIENT
from scripts.stack import Service
from tests.e2e.conftest import Chain
from tests.e2e.test_curl import curl, data_rows
from tests.polling import poll

TOKEN = "e2e-Token-1"


def _status(result: subprocess.CompletedProcess[bytes]) -> str:
    return result.stdout.decode().rsplit("\n", 1)[-1]


def test_protection_off_by_default(chain: Chain, tmp_path: Path) -> None:
    target = tmp_path / "r.xlsx"
    done = curl(
        "-f",
        "-o",
        str(target),
        "-D",
        "-",
        "-H",
        "Origin: http://elsewhere.example",
        chain.report_url("rowCount=100"),
    )
    assert done.returncode == 0, done.stderr
    assert "access-control-allow-origin" not in done.stdout.decode().lower()
    assert data_rows(target) == 100


def test_protection_on(chain: Chain, bff_factory: Callable[..., Service], tmp_path: Path) -> None:
    bff = bff_factory(
        BFF_TOKENS=f"other,{TOKEN}",
        BFF_CORS_ORIGINS="http://app.example",
        BFF_MAX_DOWNLOADS_PER_CLIENT="1",
        BFF_RETRY_AFTER="9",
    )
    url = f"{bff.url}/exports/report?rowCount=200"
    auth = ("-H", f"Authorization: Bearer {TOKEN}")
    # Auth: no token, wrong token -> 401 before the API is asked.
    assert _status(curl("-o", "/dev/null", "-w", "\n%{http_code}", url)) == "401"
    wrong = curl("-o", "/dev/null", "-w", "\n%{http_code}", "-H", "Authorization: Bearer x", url)
    assert _status(wrong) == "401"
    target = tmp_path / "r.xlsx"
    assert curl("-f", "-o", str(target), *auth, url).returncode == 0
    assert data_rows(target) == 200
    # CORS: a listed origin gets the headers, another is refused.
    listed = curl("-o", "/dev/null", "-D", "-", *auth, "-H", "Origin: http://app.example", url)
    assert "access-control-allow-origin: http://app.example" in listed.stdout.decode().lower()
    other = curl(
        "-o", "/dev/null", "-w", "\n%{http_code}", *auth, "-H", "Origin: http://evil.example", url
    )
    assert _status(other) == "403"
    # Per-client limit: one download at a time from this address.
    chain.db.faults.row_delay, chain.db.faults.row_delay_every = 0.05, 200
    first_file = tmp_path / "first.xlsx"
    first = subprocess.Popen(
        ["curl", "-sfo", str(first_file), *auth, f"{bff.url}/exports/report?rowCount=100000"]
    )
    try:
        poll(lambda: first_file.exists() and first_file.stat().st_size > 0, what="first running")
        second = curl("-o", "/dev/null", "-D", "-", "-w", "\n%{http_code}", *auth, url)
        assert _status(second) == "429"
        assert "retry-after: 9" in second.stdout.decode().lower()
    finally:
        first.kill()
        first.wait()


def test_per_client_limit_off_lets_one_client_run_more_than_the_default(
    chain: Chain, bff_factory: Callable[..., Service], tmp_path: Path
) -> None:
    """BFF_MAX_DOWNLOADS_PER_CLIENT=0 turns the limit off: more downloads at once from one
    address than the default limit allows all run (with the limit on, see above, the extra
    one is a 429)."""
    bff = bff_factory(BFF_MAX_DOWNLOADS_PER_CLIENT="0")
    # ~4,000 rows/s: the long downloads are still running when the extra one is over.
    chain.db.faults.row_delay, chain.db.faults.row_delay_every = 0.05, 200
    files = [tmp_path / f"running-{i}.xlsx" for i in range(DEFAULT_MAX_DOWNLOADS_PER_CLIENT)]
    long_url = f"{bff.url}/exports/report?rowCount=1000000"
    running = [subprocess.Popen(["curl", "-sfo", str(f), long_url]) for f in files]
    try:
        poll(
            lambda: all(f.exists() and f.stat().st_size > 0 for f in files),
            what=f"{len(files)} downloads running at once",
        )
        extra = tmp_path / "one-more.xlsx"
        done = curl("-f", "-o", str(extra), f"{bff.url}/exports/report?rowCount=300")
        assert done.returncode == 0, done.stderr
        assert data_rows(extra) == 300
        assert all(p.poll() is None for p in running), "the slow ones were still running"
    finally:
        for process in running:
            process.kill()
            process.wait()
