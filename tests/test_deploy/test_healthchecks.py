"""The health check commands of the Dockerfile and compose.yaml, run for real against the API
and the BFF on this machine: 0 while the service answers, non-zero when nothing listens."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from scripts.stack import HOST, Stack, running_stack
from tests.test_deploy.deployfiles import (
    exec_form,
    healthcheck_command,
    loader_for,
    read_compose,
    read_dockerfile,
)

# A health check's own timeout in both files is 3 s; a loaded machine gets more.
RUN_TIMEOUT_S = 30


def health_checks() -> list[tuple[str, str, list[str]]]:
    """(where, module of the service it checks, command) for every check of our image."""
    final = read_dockerfile()[-1]
    default_command = exec_form(final.all("CMD")[-1].args)
    checks = [
        (
            "Dockerfile",
            loader_for(default_command)[0],
            healthcheck_command(final.all("HEALTHCHECK")[-1].args),
        )
    ]
    for name, service in read_compose()["services"].items():
        if "build" in service and "healthcheck" in service:
            command = service.get("command") or default_command
            test = service["healthcheck"]["test"]
            assert test[0] == "CMD"
            checks.append((f"compose {name}", loader_for(list(command))[0], list(test[1:])))
    return checks


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with running_stack() as started:
        yield started


def at_port(command: list[str], port: int) -> list[str]:
    """The command with the python of this environment and the service's port on this host."""
    assert command[0] == "python"
    rewritten = [re.sub(r"127\.0\.0\.1:\d+", f"{HOST}:{port}", part) for part in command]
    return [sys.executable, *rewritten[1:]]


@pytest.mark.parametrize(("where", "module", "command"), health_checks())
def test_a_health_check_passes_on_the_running_service_and_fails_without_it(
    stack: Stack, where: str, module: str, command: list[str]
) -> None:
    service = stack.api if module == "server.__main__" else stack.bff
    healthy = subprocess.run(
        at_port(command, service.port), capture_output=True, timeout=RUN_TIMEOUT_S, check=False
    )
    assert healthy.returncode == 0, f"{where}: {healthy.stderr.decode()}"
    with socket.socket() as held:  # bound, never listening: connections are refused
        held.bind((HOST, 0))
        down = subprocess.run(
            at_port(command, held.getsockname()[1]),
            capture_output=True,
            timeout=RUN_TIMEOUT_S,
            check=False,
        )
    assert down.returncode != 0, where
