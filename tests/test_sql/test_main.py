"""``python -m sql.devserver`` as a process: options, environment fallback, a real client."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from sql.report_data import row_values
from tests.commands import assert_taken_port_is_a_one_line_error
from tests.devclient import dev_connect
from tests.polling import poll

ROOT = Path(__file__).resolve().parents[2]


def test_the_command_serves_with_credentials_from_the_environment() -> None:
    env = {
        **os.environ,
        "MSSQL_USER": "exporter",
        "MSSQL_PASSWORD": "S3cret-from-env",
        "MSSQL_DATABASE": "Reports",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "sql.devserver", "--host", "127.0.0.1", "--port", "0"],
        cwd=ROOT,
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stderr = proc.stderr
        assert stderr is not None

        def listening_port() -> int | None:
            line = stderr.readline()
            assert line, "the dev server exited before listening"
            m = re.search(r"on 127\.0\.0\.1:(\d+)", line)
            return int(m[1]) if m else None

        port = poll(listening_port, what="the dev server's listening line")
        with (
            dev_connect(
                port, user="exporter", password="S3cret-from-env", database="Reports"
            ) as conn,
            conn.cursor() as cur,
        ):
            cur.callproc("spGenerateData", (3,))
            assert [tuple(r) for r in cur.fetchall()] == [row_values(n) for n in (1, 2, 3)]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stderr is not None:
            proc.stderr.close()


def test_the_command_exits_1_with_a_message_when_the_port_is_taken() -> None:
    assert_taken_port_is_a_one_line_error("sql.devserver")
