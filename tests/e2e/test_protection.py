"""Auth, CORS, the per-client limit and the connection-level limits through the whole chain,
each on (services configured by environment, as an operator would) and off (the defaults)."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bff.config import DEFAULT_MAX_DOWNLOADS_PER_CLIENT
from scripts.stack import HOST, Service, start_api
from tests.e2e.conftest import Chain, metric
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


@pytest.fixture
def edge_limited(chain: Chain, bff_factory: Callable[..., Service]) -> Iterator[list[Service]]:
    """An API and a BFF with a 5 s header timeout and room for 3 connections, set by their
    environment variables."""
    api = start_api(
        0,
        db_port=chain.db.port,
        env={"API_HEADER_TIMEOUT": "5", "API_MAX_CONNECTIONS": "3"},
        log_dir=chain.log_dir,
    )
    try:
        bff = bff_factory(api_url=api.url, BFF_HEADER_TIMEOUT="5", BFF_MAX_CONNECTIONS="3")
        yield [api, bff]
    finally:
        api.stop()


def _closed_by_peer(sock: socket.socket) -> bool:
    """Blocks until the service closes ``sock`` (or 30 s pass); True if it sent nothing."""
    sock.settimeout(30)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_silent_connections_are_closed_and_give_way_at_the_cap(
    edge_limited: list[Service],
) -> None:
    for service in edge_limited:
        with contextlib.ExitStack() as stack:
            held = [
                stack.enter_context(socket.create_connection((HOST, service.port)))
                for _ in range(3)
            ]
            for sock in held:  # each answered once, so each is surely open: then idle
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
                assert sock.recv(65536).startswith(b"HTTP/1.1 200")
            extra = stack.enter_context(socket.create_connection((HOST, service.port)))
            # At the cap the newcomer takes the place of the longest idle connection.
            assert _closed_by_peer(held[0]), "the oldest idle connection makes room"
            # The others, and the newcomer, send nothing more: the header timeout ends them.
            assert all(_closed_by_peer(sock) for sock in [*held[1:], extra])
        prefix = "http" if service.name == "api" else "bff"
        assert metric(service, f"{prefix}_connections_evicted_total") == 1
        assert metric(service, f"{prefix}_connections_refused_total") == 0
        assert metric(service, f"{prefix}_connections_max") == 3


# More than a service's cap (512), from one address that is not the one the checks come from.
FLOOD = 600
FLOOD_SOURCE = "127.0.0.2"


def test_a_flood_of_idle_connections_from_one_address_keeps_nobody_else_out(
    chain: Chain, tmp_path: Path
) -> None:
    """600 idle connections from one address to each service: each keeps at most its
    per-client share of them, and health checks, metrics and downloads from another address
    are answered meanwhile."""
    with contextlib.ExitStack() as stack:
        for service in (chain.api, chain.bff):
            for _ in range(FLOOD):
                stack.enter_context(
                    socket.create_connection((HOST, service.port), source_address=(FLOOD_SOURCE, 0))
                )
        for service, prefix in ((chain.api, "http"), (chain.bff, "bff")):
            refused = f"{prefix}_connections_refused_per_client_total"
            poll(
                lambda service=service, refused=refused: metric(service, refused) == FLOOD - 128,
                what=f"{service.name} to refuse all but 128 of the flood",
            )
            with urllib.request.urlopen(f"{service.url}/healthz", timeout=10) as response:
                assert response.status == 200
        target = tmp_path / "during.xlsx"
        done = curl("-f", "-o", str(target), chain.report_url("rowCount=300"))
        assert done.returncode == 0, done.stderr
        assert data_rows(target) == 300


@pytest.mark.parametrize("through_bff", [False, True], ids=["api", "bff"])
def test_a_request_too_large_for_http_is_a_json_error(chain: Chain, through_bff: bool) -> None:
    long_url = chain.report_url("rowCount=" + "9" * 100_000, through_bff=through_bff)
    shown = curl("-w", "\n%{http_code}", long_url)
    body, status = shown.stdout.rsplit(b"\n", 1)
    assert status == b"414"
    assert json.loads(body)["error"]["code"] == "URI_TOO_LONG"
    assert b"999" not in body
    many = [arg for i in range(200) for arg in ("-H", f"X-Many-{i}: 1")]
    shown = curl(
        "-w", "\n%{http_code}", *many, chain.report_url("rowCount=5", through_bff=through_bff)
    )
    body, status = shown.stdout.rsplit(b"\n", 1)
    assert status == b"431"
    assert json.loads(body)["error"]["code"] == "HEADER_FIELDS_TOO_LARGE"
