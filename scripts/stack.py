"""Start and stop the dev stack (TDS dev database, export API, BFF) as real processes.

Used by ``make run`` (through ``scripts.run_stack``), by the end-to-end tests and by the
end-to-end benchmark. Each service is a ``python -m ...`` subprocess in its own process group (so a
Ctrl-C in the terminal reaches only the launcher, which then stops them in order), polled until
ready, stopped with SIGTERM and, after a grace period, SIGKILL.

Port 0 means "any free port": the service binds port 0 itself and we read the port it got from
its own listening socket (psutil), so there is no probe-then-bind race with other processes,
and a readiness check can never be answered by somebody else's server on a recycled port.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import psutil

from sql.devserver.certs import DevCertificates, write_dev_certificates

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
# Starting Python, importing aiohttp and pytds and binding takes ~1 s on an idle machine; a
# loaded 2-core CI box can be ten times slower.
DEFAULT_READY_TIMEOUT_S = 60.0
# The API's own shutdown grace is 25 s; a stack being torn down has no downloads worth
# waiting that long for, so SIGKILL follows sooner.
DEFAULT_STOP_GRACE_S = 10.0
# The dev server's fixed login (sql.devserver's DEV_* defaults).
DEV_USER = "sa"
DEV_PASSWORD = "DevOnly_Passw0rd!"
DEV_DATABASE = "ExportDemo"


class StackError(RuntimeError):
    """A service did not start, or exited while we waited for it."""


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def log_text(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def stop(self, grace_s: float = DEFAULT_STOP_GRACE_S) -> int:
        """SIGTERM, wait up to ``grace_s``, then SIGKILL; returns the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=grace_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        return self.process.returncode


def free_port() -> int:
    """A port that was free a moment ago. Racy (another process may take it before it is
    bound): the start_* functions take port 0 instead, which is race-free."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def listening_ports(pid: int) -> set[int]:
    """TCP ports process ``pid`` is listening on (empty if it has exited)."""
    try:
        connections = psutil.Process(pid).net_connections(kind="tcp")
    except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
        return set()
    return {c.laddr.port for c in connections if c.status == psutil.CONN_LISTEN}


_log_numbers = itertools.count(1)


def _spawn(name: str, args: list[str], env: Mapping[str, str], log_dir: Path | None) -> Service:
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
    log_path = (
        None if log_dir is None else log_dir / f"{name}-{os.getpid()}-{next(_log_numbers)}.log"
    )
    log = None if log_path is None else log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env=full_env,
        stdout=log,
        stderr=subprocess.STDOUT if log is not None else None,
        # A process group, not a session: Linux's autogroup scheduler gives every session
        # an equal share of the CPU as a whole, so a service alone in its session waited
        # hundreds of milliseconds behind busy sessions for its turn (/healthz p99 200-450 ms
        # under 50 downloads on two cores, 10-14 ms in one session with the rest).
        process_group=0,
    )
    return Service(name, process, 0, log_path, log)


def _wait(service: Service, requested_port: int, health_path: str | None, timeout_s: float) -> None:
    """Wait until ``service`` listens (on ``requested_port`` unless that is 0) and, for HTTP
    services, answers ``health_path`` with 200. Stops the service if it does not get there,
    including when the wait itself is interrupted (a test timeout, Ctrl-C)."""
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            if service.process.poll() is not None:
                raise StackError(
                    f"{service.name} exited with {service.process.returncode} while starting:\n"
                    + service.log_text()[-4000:]
                )
            if not service.port:
                ports = listening_ports(service.pid)
                if requested_port in ports or (requested_port == 0 and len(ports) == 1):
                    service.port = requested_port or ports.pop()
            if service.port and ready_check(
                service.port if health_path is None else service.url + health_path
            ):
                return
            if time.monotonic() > deadline:
                raise StackError(f"{service.name} not ready within {timeout_s} s")
            time.sleep(0.05)
    except BaseException:
        service.stop()
        raise


def ready_check(ready: object) -> bool:
    """``ready`` is a port (TCP connect succeeds) or a URL (answers 200)."""
    if isinstance(ready, int):
        with contextlib.suppress(OSError), socket.create_connection((HOST, ready), timeout=1):
            return True
        return False
    assert isinstance(ready, str)
    try:
        with urllib.request.urlopen(ready, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start_devdb(
    port: int,
    *,
    certs: DevCertificates | None = None,
    log_dir: Path | None = None,
    timeout_s: float = DEFAULT_READY_TIMEOUT_S,
) -> Service:
    """The dev database; with ``certs``, clients may (and the API will) encrypt."""
    args = ["-m", "sql.devserver", "--host", HOST, "--port", str(port)]
    args += ["--user", DEV_USER, "--password", DEV_PASSWORD, "--database", DEV_DATABASE]
    if certs is not None:
        args += ["--tls-cert", str(certs.server_cert), "--tls-key", str(certs.server_key)]
    service = _spawn("devdb", args, {}, log_dir)
    _wait(service, port, None, timeout_s)
    return service


def start_api(
    port: int,
    *,
    db_port: int,
    ca_file: Path | None = None,
    env: Mapping[str, str] | None = None,
    log_dir: Path | None = None,
    timeout_s: float = DEFAULT_READY_TIMEOUT_S,
) -> Service:
    """The export API; with ``ca_file``, encrypted to the database and verified against it
    (as production runs), else in clear."""
    db_env = {
        "MSSQL_HOST": HOST,
        "MSSQL_PORT": str(db_port),
        "MSSQL_USER": DEV_USER,
        "MSSQL_PASSWORD": DEV_PASSWORD,
        "MSSQL_DATABASE": DEV_DATABASE,
        "MSSQL_ENCRYPT": "off",
    }
    if ca_file is not None:
        db_env |= {"MSSQL_ENCRYPT": "on", "MSSQL_CA_FILE": str(ca_file)}
    args = ["-m", "server", "--host", HOST, "--port", str(port)]
    service = _spawn("api", args, {**db_env, **(env or {})}, log_dir)
    _wait(service, port, "/healthz", timeout_s)
    return service


def start_bff(
    port: int,
    *,
    api_url: str | Sequence[str],
    env: Mapping[str, str] | None = None,
    log_dir: Path | None = None,
    timeout_s: float = DEFAULT_READY_TIMEOUT_S,
) -> Service:
    """``api_url``: one API's URL, or several for the BFF to spread downloads over."""
    apis = ["--api-url", api_url] if isinstance(api_url, str) else ["--api-urls", ",".join(api_url)]
    args = ["-m", "bff", "--host", HOST, "--port", str(port), *apis]
    service = _spawn("bff", args, dict(env or {}), log_dir)
    _wait(service, port, "/healthz", timeout_s)
    return service


@dataclass
class Stack:
    api: Service
    bff: Service
    devdb: Service | None = None

    def services(self) -> list[Service]:
        return [s for s in (self.bff, self.api, self.devdb) if s is not None]

    def stop(self) -> None:
        # Front to back: nothing new reaches the API once the BFF is gone.
        for service in self.services():
            service.stop()


@contextlib.contextmanager
def running_stack(
    *,
    db_port: int | None = None,
    start_db: bool = True,
    api_port: int | None = None,
    bff_port: int | None = None,
    api_env: Mapping[str, str] | None = None,
    bff_env: Mapping[str, str] | None = None,
    log_dir: Path | None = None,
    encrypt: bool = True,
) -> Iterator[Stack]:
    """Dev database (unless ``start_db`` is false: one is already on ``db_port``), API, BFF.

    ``encrypt``: the dev database gets a certificate from a CA made for this stack (written to
    a temporary directory, removed at the end) and the API connects to it encrypted and
    verified against that CA, as production should run; false: in clear. A database the stack
    did not start is the caller's to configure (``api_env``).
    """
    started: list[Service] = []
    with contextlib.ExitStack() as cleanup:
        certs = ca_file = None
        if start_db and encrypt:
            folder = cleanup.enter_context(tempfile.TemporaryDirectory(prefix="dev-certs-"))
            certs = write_dev_certificates(folder)
            ca_file = certs.ca
        try:
            devdb = None
            if start_db:
                devdb = start_devdb(db_port or 0, certs=certs, log_dir=log_dir)
                started.append(devdb)
                db_port = devdb.port
            assert db_port is not None, "db_port is required when start_db is false"
            api = start_api(
                api_port or 0, db_port=db_port, ca_file=ca_file, env=api_env, log_dir=log_dir
            )
            started.append(api)
            bff = start_bff(bff_port or 0, api_url=api.url, env=bff_env, log_dir=log_dir)
            started.append(bff)
            yield Stack(api=api, bff=bff, devdb=devdb)
        finally:
            for service in reversed(started):
                service.stop()
