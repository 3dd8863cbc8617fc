"""Independent TDS clients against the dev server: FreeTDS ``tsql`` and pymssql.

Both are FreeTDS underneath (pymssql's wheel bundles its own build), a TDS implementation that
shares no code with pytds: pymssql sends SET options and batches after login, tsql sends SQL
batches and prints what it decoded.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from sql.devserver import DEV_DATABASE, DEV_PASSWORD, DEV_USER, DevServer
from sql.report_data import row_values

TSQL = shutil.which("tsql")


def run_tsql(server: DevServer, script: str) -> str:
    # `make test` installs freetds-bin first, so a missing tsql is a broken setup, not a reason
    # to skip: this is the project's check against an independent TDS implementation.
    assert TSQL is not None, "FreeTDS tsql is not installed (make system-deps installs freetds-bin)"
    result = subprocess.run(
        [TSQL, "-H", "127.0.0.1", "-p", str(server.port), "-U", DEV_USER, "-P", DEV_PASSWORD,
         "-D", DEV_DATABASE, "-o", "q"],
        input=script,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "TDSVER": "7.4"},
    )  # fmt: skip
    return result.stdout + result.stderr


def tsql_text(value: object) -> str:
    """How tsql prints the columns compared here."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return str(int(value))
    return str(value)


def test_tsql_reads_the_rows(devserver_thread: DevServer) -> None:
    count = 40
    out = run_tsql(devserver_thread, f"EXEC dbo.spGenerateData @RowCount = {count}\ngo\nexit\n")
    lines = [line.split("\t") for line in out.splitlines() if "\t" in line]
    assert lines[0][:3] == ["Id", "ColInt", "ColBigInt"]
    rows = lines[1:]
    assert len(rows) == count
    for n, cells in enumerate(rows, start=1):
        want = row_values(n)
        # Dates are printed in tsql's own format; compare every other column exactly.
        for i in (0, 1, 2, 3, 4, 5, 8, 9):
            assert cells[i] == tsql_text(want[i]), (n, i, cells[i], want[i])


def test_tsql_sees_errors_and_keeps_the_session(devserver_thread: DevServer) -> None:
    out = run_tsql(
        devserver_thread,
        "EXEC dbo.spNoSuch 1\ngo\nEXEC spGenerateData 0\ngo\nEXEC spGenerateData 2\ngo\nexit\n",
    )
    assert "Msg 2812" in out
    assert "Msg 50000" in out
    assert "Item-00000002" in out


@pytest.mark.parametrize("autocommit", [True, False])
def test_pymssql_batches_and_rpc(devserver_thread: DevServer, autocommit: bool) -> None:
    import pymssql  # a declared test dependency: no skip

    conn = pymssql.connect(
        server="127.0.0.1",
        port=devserver_thread.port,
        user=DEV_USER,
        password=DEV_PASSWORD,
        database=DEV_DATABASE,
        autocommit=autocommit,
        tds_version="7.4",
        login_timeout=10,
        timeout=30,
    )
    try:
        cur = conn.cursor()
        cur.execute("EXEC dbo.spGenerateData @RowCount = %d", (300,))
        assert cur.fetchall() == [row_values(n) for n in range(1, 301)]
        cur.callproc("dbo.spGenerateData", (17,))
        assert cur.fetchall() == [row_values(n) for n in range(1, 18)]
        with pytest.raises(pymssql.ProgrammingError):
            cur.execute("EXEC dbo.spNoSuch 1")
        cur.execute("EXEC spGenerateData 2")
        assert len(cur.fetchall()) == 2
        conn.commit()
    finally:
        conn.close()
