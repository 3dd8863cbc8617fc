"""The full chain with the real curl binary: downloads, errors, disconnects, aborts, slow reads."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
from collections.abc import Callable
from pathlib import Path

import openpyxl
import psutil
import pytest
from python_calamine import CalamineWorkbook

from scripts.stack import Service
from tests.backpressure import assert_held, fetch_elsewhere
from tests.e2e.conftest import Chain, metric, pool_in_use
from tests.polling import poll

# curl's exit codes for a transfer that ended before the body did: 18 partial file,
# 56 failure receiving network data (a chunked body cut off or reset).
CURL_TRANSFER_FAILED = {18, 56, 92}


def curl(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["curl", "--silent", "--show-error", "--no-progress-meter", *args],
        capture_output=True,
        timeout=timeout,
        check=False,
    )


def data_rows(path: Path) -> int:
    """Rows below the header in every sheet, as openpyxl and python-calamine each count them."""
    book = openpyxl.load_workbook(path, read_only=True)
    by_openpyxl = sum(sum(1 for _ in sheet.iter_rows(values_only=True)) - 1 for sheet in book)
    book.close()
    calamine = CalamineWorkbook.from_path(str(path))
    by_calamine = sum(
        len(calamine.get_sheet_by_name(name).to_python()) - 1 for name in calamine.sheet_names
    )
    assert by_openpyxl == by_calamine
    return by_openpyxl


def test_curl_downloads_a_workbook_through_the_bff(chain: Chain, tmp_path: Path) -> None:
    target = tmp_path / "report.xlsx"
    done = curl("-f", "-o", str(target), "-D", "-", chain.report_url("rowCount=2500"))
    assert done.returncode == 0, done.stderr
    headers = done.stdout.decode().lower()
    assert "content-disposition: attachment; filename=" in headers
    assert "x-request-id: " in headers
    assert data_rows(target) == 2500


def test_curl_bad_row_count_fails_with_the_api_400_relayed(chain: Chain) -> None:
    failed = curl("-f", "-o", "/dev/null", chain.report_url("rowCount=12x"))
    assert failed.returncode == 22  # curl -f: HTTP error >= 400
    assert b"400" in failed.stderr
    shown = curl("-w", "\n%{http_code}", chain.report_url("rowCount=-5"))
    body, status = shown.stdout.rsplit(b"\n", 1)
    assert status == b"400"
    assert json.loads(body)["error"]["code"] == "INVALID_ROW_COUNT"


# Fetched after a cancel: far more time than a query left running needs to refill its buffers.
AFTER_CANCEL_WITNESS_ROWS = 20_000


def test_killing_curl_mid_download_cancels_the_query(chain: Chain, tmp_path: Path) -> None:
    chain.db.faults.row_delay, chain.db.faults.row_delay_every = 0.05, 200  # ~4,000 rows/s
    attentions = chain.db.stats.attentions
    target = tmp_path / "partial.xlsx"
    process = subprocess.Popen(
        ["curl", "-sfo", str(target), chain.report_url("rowCount=1000000")],
    )
    try:
        poll(lambda: target.exists() and target.stat().st_size > 0, what="first bytes on disk")
        assert pool_in_use(chain.api) == 1
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    poll(lambda: pool_in_use(chain.api) == 0, what="API pool idle again")
    # The query is over, not merely unread: with the row delay off, the dev server serves another
    # fetch to the end and sends the cancelled one nothing more (a query left running would
    # refill its socket buffers meanwhile, tens of thousands of rows).
    stopped_at = chain.db.stats.rows_sent
    chain.db.faults.row_delay_every = 0
    fetch_elsewhere(chain.db.port, AFTER_CANCEL_WITNESS_ROWS)
    more = chain.db.stats.rows_sent - stopped_at - AFTER_CANCEL_WITNESS_ROWS
    assert more == 0, f"the cancelled query sent {more:,} more rows"
    poll(lambda: chain.db.stats.attentions == attentions + 1, what="attention at the database")
    outcome = r'bff_downloads_total\{outcome="client_disconnected"\}'
    poll(lambda: metric(chain.bff, outcome) >= 1, what="BFF counted the disconnect")


def test_the_next_download_after_a_cancelled_one_works(chain: Chain, tmp_path: Path) -> None:
    """A connection that saw an attention goes back to the pool only if it is clean."""
    chain.db.faults.row_delay, chain.db.faults.row_delay_every = 0.05, 200
    attentions = chain.db.stats.attentions
    target = tmp_path / "partial.xlsx"
    process = subprocess.Popen(["curl", "-sfo", str(target), chain.report_url("rowCount=100000")])
    try:
        poll(lambda: target.exists() and target.stat().st_size > 0, what="first bytes on disk")
    finally:
        process.kill()
        process.wait(timeout=10)
    poll(lambda: chain.db.stats.attentions == attentions + 1, what="attention at the database")
    poll(lambda: pool_in_use(chain.api) == 0, what="API pool idle again")
    chain.db.faults.row_delay_every = 0
    again = tmp_path / "again.xlsx"
    done = curl("-f", "-m", "60", "-o", str(again), chain.report_url("rowCount=3000"))
    assert done.returncode == 0, done.stderr
    assert data_rows(again) == 3000


def test_api_down_is_a_502_json(bff_factory: Callable[..., Service], dead_url: str) -> None:
    bff = bff_factory(api_url=dead_url)
    shown = curl("-w", "\n%{http_code}", f"{bff.url}/exports/report?rowCount=10")
    body, status = shown.stdout.rsplit(b"\n", 1)
    assert status == b"502"
    assert json.loads(body)["error"]["code"] == "PROXY_ERROR"
    assert curl("-f", "-o", "/dev/null", f"{bff.url}/exports/report").returncode == 22


@pytest.mark.parametrize("fault", ["error_after_rows", "drop_after_rows"])
def test_api_aborting_mid_body_makes_curl_fail(chain: Chain, tmp_path: Path, fault: str) -> None:
    setattr(chain.db.faults, fault, 20_000)
    target = tmp_path / "broken.xlsx"
    failed = curl("-f", "-o", str(target), chain.report_url("rowCount=60000"))
    assert failed.returncode in CURL_TRANSFER_FAILED, (failed.returncode, failed.stderr)
    assert target.stat().st_size > 0  # it had started: the failure came mid-body
    aborted = r'bff_downloads_total\{outcome="upstream_aborted"\}'
    poll(lambda: metric(chain.bff, aborted) >= 1, what="the BFF to count the upstream abort")


# Rows in flight between the dev server and a client that stopped reading, through the API and
# the BFF: socket buffers at each hop (the BFF's receive buffer grows while it relays) and a few
# chunks in each service: ~180k rows measured, reached a few seconds after the first pause.
HELD_ROWS_BOUND = 250_000
# Fetched meanwhile on another connection: a chain that kept pulling rows for the held-off client
# pulls about as many (its API worker decodes at the same pytds pace), from the ~60k it had at
# the first pause to past the bound.
WITNESS_ROWS = 250_000


def test_slow_client_through_the_bff_pauses_the_database_with_bounded_memory(
    chain: Chain,
) -> None:
    pauses, rows_before = chain.db.stats.backpressure_pauses, chain.db.stats.rows_sent
    rss_before = {s.name: psutil.Process(s.pid).memory_info().rss for s in (chain.api, chain.bff)}
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    client.connect(("127.0.0.1", chain.bff.port))
    try:
        client.sendall(b"GET /exports/report?rowCount=1000000 HTTP/1.1\r\nHost: e2e\r\n\r\n")
        assert client.recv(65536).startswith(b"HTTP/1.1 200")
        # Read nothing more: the BFF's writes wait, it stops reading the API, the API's queue
        # fills, its worker stops fetching and the dev server's production waits on TCP.
        poll(
            lambda: chain.db.stats.backpressure_pauses > pauses,
            within=60,
            what="dev server production paused",
        )
        fetch_elsewhere(chain.db.port, WITNESS_ROWS)
        # (The dev server is shared by the session: count this test's rows only.)
        held = assert_held(
            chain.db.stats, since=rows_before, bound=HELD_ROWS_BOUND, witnessed=WITNESS_ROWS
        )
        for service in (chain.api, chain.bff):
            grown = psutil.Process(service.pid).memory_info().rss - rss_before[service.name]
            assert grown < 50 * 1024 * 1024, (service.name, grown)
        # Reading again resumes production.
        client.setblocking(False)

        def read_some() -> bool:
            with contextlib.suppress(BlockingIOError):
                client.recv(1 << 20)
            return chain.db.stats.rows_sent - rows_before - WITNESS_ROWS >= held + 20_000

        poll(read_some, within=60, what="production to resume")
    finally:
        client.close()
    poll(lambda: pool_in_use(chain.api) == 0, what="API pool idle after the reader left")


# What the relay may hold for a download whose client reads nothing: the API's send buffer
# towards the BFF, the BFF's receive buffer from the API and its send buffer towards the client
# (512 KiB each, the services' default socket buffer), and the processes' own buffers (a chunk
# or two of 64 KiB in each); ~2 MiB measured (tests/bench/slow_reader.py). Left to Linux,
# those socket buffers grew to 15-22 MiB.
RELAY_BYTES_BOUND = 3 * 1024 * 1024
# The client's share: what it read (its first recv) and its own receive buffer (64 KiB, which
# Linux doubles).
CLIENT_BYTES = 65536 + 2 * 64 * 1024
# Polls in a row (tests.polling.INTERVAL_S apart) that the API's byte count must stay the
# same for: the download has filled every buffer on its way.
_STILL_POLLS = 50


def test_a_download_whose_client_reads_nothing_holds_little_in_the_relay(chain: Chain) -> None:
    written_before = metric(chain.api, "export_bytes_total")
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    client.connect(("127.0.0.1", chain.bff.port))
    try:
        client.sendall(b"GET /exports/report?rowCount=1000000 HTTP/1.1\r\nHost: e2e\r\n\r\n")
        assert client.recv(65536).startswith(b"HTTP/1.1 200")
        seen: list[float] = []

        def still() -> bool:
            seen.append(metric(chain.api, "export_bytes_total"))
            recent = seen[-_STILL_POLLS:]
            return len(recent) == _STILL_POLLS and len(set(recent)) == 1

        poll(still, within=60, what="the API to stop writing to the stalled download")
        held = seen[-1] - written_before - CLIENT_BYTES
        assert held < RELAY_BYTES_BOUND, f"{held / 2**20:.1f} MiB held between API and client"
    finally:
        client.close()
    poll(lambda: pool_in_use(chain.api) == 0, what="API pool idle after the reader left")
