"""`make run`'s launcher: brings up dev database, API and BFF, and Ctrl-C stops all three."""

from __future__ import annotations

import json
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import IO

import psutil
import pytest

from scripts.stack import ROOT, StackError, listening_ports, start_bff

READY_DEADLINE_S = 150.0
READY = re.compile(
    r"^Ready: open http://127\.0\.0\.1:(?P<bff>\d+)/ in a browser "
    r"\(API http://127\.0\.0\.1:(?P<api>\d+), dev database 127\.0\.0\.1:(?P<db>\d+)\)"
)


def _pump(stream: IO[str], lines: queue.Queue[str]) -> None:
    for line in iter(stream.readline, ""):
        lines.put(line)


def test_run_stack_serves_the_page_and_stops_cleanly_on_ctrl_c() -> None:
    # Port 0 for all three: the launcher prints the ports the services actually got.
    args = ["--db-port", "0", "--api-port", "0", "--bff-port", "0"]
    process = subprocess.Popen(
        [sys.executable, "-m", "scripts.run_stack", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    # Lines arrive through a thread, so the wait for "Ready" has a deadline of its own even
    # when the launcher prints nothing at all.
    assert process.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    pump = threading.Thread(target=_pump, args=(process.stdout, lines), daemon=True)
    pump.start()
    services: list[psutil.Process] = []
    survivors: list[psutil.Process] = []
    try:
        # Three services start one after the other (each takes ~1 s idle, far more on a loaded
        # CI box); give up before pytest's 180 s per-test timeout, so the failure shows what
        # the launcher printed.
        deadline = time.monotonic() + READY_DEADLINE_S
        seen: list[str] = []
        ready = None
        while ready is None:
            remaining = deadline - time.monotonic()
            assert remaining > 0, "no Ready line:\n" + "".join(seen)
            try:
                line = lines.get(timeout=min(remaining, 1.0))
            except queue.Empty:
                assert process.poll() is None, "the launcher exited:\n" + "".join(seen)
                continue
            seen.append(line)
            ready = READY.match(line)
        ports = {name: int(port) for name, port in ready.groupdict().items()}
        services = psutil.Process(process.pid).children()
        assert len(services) == 3
        # Each port printed is one the launcher's own children listen on.
        assert set(ports.values()) <= set().union(*(listening_ports(s.pid) for s in services))
        bff = f"http://127.0.0.1:{ports['bff']}"
        with urllib.request.urlopen(f"{bff}/", timeout=10) as page:
            assert b"Report export" in page.read()
        with urllib.request.urlopen(f"{bff}/exports/report?rowCount=10", timeout=30) as report:
            assert report.read(2) == b"PK"  # a zip, i.e. a workbook
        # Encrypted and verified, as production runs: the API warns of nothing.
        api = f"http://127.0.0.1:{ports['api']}"
        with urllib.request.urlopen(f"{api}/readyz", timeout=30) as answer:
            assert json.loads(answer.read()) == {"status": "ready"}
        assert any("encrypted, verified against the stack's own CA" in line for line in seen)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
        # The launcher stopped every service before it exited.
        survivors = [s for s in services if s.is_running()]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for service in services:  # whatever happened, no service outlives the test
            if service.is_running():
                service.kill()
        pump.join(timeout=10)
        process.stdout.close()
    assert survivors == []


def test_a_service_that_cannot_bind_fails_its_start_and_leaves_nothing_running(
    tmp_path: Path,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # Another server on the port must not pass for ours: the start fails with our log.
        with pytest.raises(StackError, match=f"cannot serve on 127.0.0.1:{port}"):
            start_bff(port, api_url="http://127.0.0.1:9", log_dir=tmp_path)
    ours = [p for p in psutil.Process().children() if "bff" in p.cmdline()]
    assert ours == []
