"""The database password never shows: not in any process's argv, not in the worker processes'
environment, not in the log, not in an answer; read from a file (MSSQL_PASSWORD_FILE)."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import psutil

from sql.devserver import DEV_PASSWORD
from tests.test_server.conftest import ApiProcess, RunApi, worker_pids


def secret_file(path: Path, password: str) -> Path:
    path.write_text(password + "\n", encoding="utf-8")  # as secrets are mounted
    return path


async def api_with_password_file(run_api: RunApi, path: Path) -> ApiProcess:
    """The API as a process, its password in the file ``path`` only."""
    return await run_api(
        "--workers",
        "2",
        env={"MSSQL_PASSWORD": None, "MSSQL_PASSWORD_FILE": str(path), "LOG_LEVEL": "DEBUG"},
    )


def shown_anywhere(pids: list[int], secret: str) -> list[str]:
    """Where ``secret`` shows in these processes' argv and environment."""
    found = []
    for pid in pids:
        process = psutil.Process(pid)
        if any(secret in arg for arg in process.cmdline()):
            found.append(f"argv of {pid}")
        if any(secret in value for value in process.environ().values()):
            found.append(f"environment of {pid}")
    return found


async def test_the_password_is_in_no_argv_environment_log_or_answer(
    run_api: RunApi, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    api = await api_with_password_file(run_api, secret_file(tmp_path / "pw", DEV_PASSWORD))
    async with http.get(api.url("/export/report?rowCount=50")) as response:
        assert response.status == 200
        await response.read()
    workers = await worker_pids(api, 2)
    assert shown_anywhere([api.process.pid, *workers], DEV_PASSWORD) == []
    assert DEV_PASSWORD.encode() not in api.log


async def test_a_refused_password_is_not_repeated_in_the_answer_or_the_log(
    run_api: RunApi, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    wrong = "Not-The-Password-4711"
    api = await api_with_password_file(run_api, secret_file(tmp_path / "pw", wrong))
    async with http.get(api.url("/export/report?rowCount=50")) as response:
        assert response.status == 500
        error = (await response.json())["error"]
    assert error["code"] == "DATABASE_ERROR"
    assert "refused the login" in error["message"]
    assert wrong not in error["message"]
    async with http.get(api.url("/readyz")) as response:
        assert wrong not in await response.text()
    workers = await worker_pids(api, 2)
    assert shown_anywhere([api.process.pid, *workers], wrong) == []
    assert wrong.encode() not in api.log


async def test_workers_do_not_inherit_a_password_given_in_the_environment(
    run_api: RunApi, http: aiohttp.ClientSession
) -> None:
    api = await run_api("--workers", "2")  # MSSQL_PASSWORD in the HTTP process's environment
    workers = await worker_pids(api, 2)
    assert shown_anywhere(workers, DEV_PASSWORD) == []
    assert shown_anywhere([api.process.pid], DEV_PASSWORD) == [f"environment of {api.process.pid}"]
