"""The HTTP edges of the whole chain with the real curl binary: a download that breaks
mid-stream fails in curl for HTTP/1.0 and HTTP/1.1 alike, HEAD answers without running the
procedure, and one request id (and the client's address) can be followed through both logs."""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from scripts.stack import Service, start_api
from tests.e2e.conftest import Chain
from tests.e2e.test_curl import curl
from tests.polling import poll

# curl's exit codes: 18 "transfer closed with outstanding read data remaining" (a chunked
# body without its final chunk), 56 "failure receiving network data" (a connection reset).
CURL_PARTIAL_FILE = 18
CURL_RECV_ERROR = 56


@pytest.mark.parametrize("fault", ["error_after_rows", "drop_after_rows"])
@pytest.mark.parametrize(
    ("version", "exit_code"),
    [("--http1.0", CURL_RECV_ERROR), ("--http1.1", CURL_PARTIAL_FILE)],
)
@pytest.mark.parametrize("through_bff", [False, True], ids=["api", "bff"])
def test_a_download_broken_mid_stream_fails_in_curl(
    chain: Chain, tmp_path: Path, through_bff: bool, version: str, exit_code: int, fault: str
) -> None:
    """HTTP/1.0 bodies end with the connection: without a reset, curl would exit 0 and keep a
    truncated file (nginx talks HTTP/1.0 to its upstreams by default)."""
    setattr(chain.db.faults, fault, 20_000)
    target = tmp_path / "broken.xlsx"
    done = curl(
        version, "-o", str(target), chain.report_url("rowCount=60000", through_bff=through_bff)
    )
    assert done.returncode == exit_code, (done.returncode, done.stderr)
    assert target.stat().st_size > 0  # it had started: the failure came mid-body
    assert not zipfile.is_zipfile(target)


@pytest.mark.parametrize("through_bff", [False, True], ids=["api", "bff"])
def test_an_http_1_0_download_that_completes_is_whole(
    chain: Chain, tmp_path: Path, through_bff: bool
) -> None:
    target = tmp_path / "whole.xlsx"
    done = curl(
        "--http1.0",
        "-f",
        "-o",
        str(target),
        chain.report_url("rowCount=3000", through_bff=through_bff),
    )
    assert done.returncode == 0, done.stderr
    with zipfile.ZipFile(target) as book:
        assert book.testzip() is None


@pytest.mark.parametrize("through_bff", [False, True], ids=["api", "bff"])
def test_head_answers_like_get_without_running_the_procedure(
    chain: Chain, through_bff: bool
) -> None:
    requests = chain.db.stats.requests
    ok = curl("-I", "-w", "%{http_code}", chain.report_url("rowCount=100", through_bff=through_bff))
    headers = ok.stdout.decode().lower()
    assert headers.endswith("200"), headers
    assert "content-disposition: attachment; filename=" in headers
    assert "x-request-id: " in headers
    bad = curl(
        "-I", "-w", "%{http_code}", chain.report_url("rowcount=100", through_bff=through_bff)
    )
    assert bad.stdout.decode().endswith("400")
    assert chain.db.stats.requests == requests, "HEAD ran no procedure"


def test_one_request_id_and_the_client_address_in_both_logs(
    chain: Chain, bff_factory: Callable[..., Service], tmp_path: Path
) -> None:
    """The BFF passes its request id and the address it saw; the API, told to trust the BFF's
    address, logs both. curl connects from another loopback address, so the BFF's address
    (127.0.0.1) and the client's (127.0.0.3) differ; the client's own X-Forwarded-For claim is
    not believed."""
    api = start_api(
        0, db_port=chain.db.port, env={"API_TRUSTED_PROXIES": "127.0.0.1"}, log_dir=chain.log_dir
    )
    try:
        bff = bff_factory(api_url=api.url)
        target = tmp_path / "traced.xlsx"
        done = curl(
            "-f",
            "--interface",
            "127.0.0.3",
            "-H",
            "X-Request-ID: trace-e2e-1",
            "-H",
            "X-Forwarded-For: 203.0.113.5",
            "-D",
            "-",
            "-o",
            str(target),
            f"{bff.url}/exports/report?rowCount=500",
        )
        assert done.returncode == 0, done.stderr
        assert "x-request-id: trace-e2e-1" in done.stdout.decode().lower()
        summary = re.compile(r"export \d+ completed: .*; request trace-e2e-1\n")
        poll(lambda: summary.search(api.log_text()) is not None, what="the API's summary line")
        started = (
            r"export \d+ \(request trace-e2e-1\): report report \(rowCount\) requested by "
            r"127\.0\.0\.3 via 127\.0\.0\.1\n"
        )
        assert re.search(started, api.log_text()), api.log_text()[-2000:]
        assert "203.0.113.5" not in api.log_text()
        poll(
            lambda: "download trace-e2e-1 of report completed" in bff.log_text(),
            what="the BFF's line",
        )
    finally:
        api.stop()
