"""`make run`'s launcher: brings up dev database, API and BFF, and Ctrl-C stops all three."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.request

from scripts.stack import ROOT, free_port, ready_check
from tests.e2e.conftest import poll


def test_run_stack_serves_the_page_and_stops_cleanly_on_ctrl_c() -> None:
    ports = {"--db-port": free_port(), "--api-port": free_port(), "--bff-port": free_port()}
    args = [a for flag, port in ports.items() for a in (flag, str(port))]
    process = subprocess.Popen(
        [sys.executable, "-m", "scripts.run_stack", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 60
        lines = []
        while time.monotonic() < deadline:
            line = process.stdout.readline()
            lines.append(line)
            if line.startswith("Ready: open http://127.0.0.1:"):
                break
            assert line, "".join(lines)
        else:
            raise AssertionError("".join(lines))
        bff = f"http://127.0.0.1:{ports['--bff-port']}"
        with urllib.request.urlopen(f"{bff}/", timeout=10) as page:
            assert b"Report export" in page.read()
        with urllib.request.urlopen(f"{bff}/exports/report?rowCount=10", timeout=30) as report:
            assert report.read(2) == b"PK"  # a zip, i.e. a workbook
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()
    # Nothing is left listening.
    for port in ports.values():
        poll(lambda port=port: not ready_check(port), within=10, what=f"port {port} closed")
