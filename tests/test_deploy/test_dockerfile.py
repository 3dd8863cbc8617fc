"""The Dockerfile against the project: what it copies exists, what it installs is the package,
what it runs is our console script with options the service accepts, its health check hits a
route the service answers, and the final image runs unprivileged without build tools."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.test_deploy.deployfiles import (
    ROOT,
    Stage,
    env_instruction,
    exec_form,
    healthcheck_command,
    loader_for,
    packages_to_install,
    read_dockerfile,
    reads,
    split_options,
)

# Packages and tools a runtime image has no use for: compilers and build helpers.
BUILD_TOOLS = ("gcc", "g++", "build-essential", "make", "clang", "libc6-dev", "python3-dev")


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return read_dockerfile()


@pytest.fixture(scope="module")
def final(stages: list[Stage]) -> Stage:
    return stages[-1]


def image_env(final: Stage) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in final.all("ENV"):
        env.update(env_instruction(instruction.args))
    return env


def test_every_stage_is_slim_python_311_and_the_build_is_multi_stage(stages: list[Stage]) -> None:
    assert len(stages) >= 2
    assert {stage.image for stage in stages} == {"python:3.11-slim"}


def test_every_copied_file_exists_and_the_whole_package_is_copied(stages: list[Stage]) -> None:
    copied: set[str] = set()
    for stage in stages:
        for instruction in stage.all("COPY") + stage.all("ADD"):
            options, rest = split_options(instruction.args)
            if "from" in options:
                continue
            *sources, _ = exec_form(rest)
            for source in sources:
                assert (ROOT / source).exists(), f"COPY {source}: no such file in the project"
                copied.add(source.rstrip("/"))
    # setup.cfg builds the wheel: its metadata files and every package it includes.
    needed = {"pyproject.toml", "setup.cfg", "README.md", *packages_to_install()}
    assert needed <= copied, f"not copied: {sorted(needed - copied)}"


def test_the_final_stage_installs_the_wheels_built_in_the_build_stage(stages: list[Stage]) -> None:
    build, final = stages[0], stages[-1]
    assert any("pip wheel" in i.args and "--wheel-dir /wheels" in i.args for i in build.all("RUN"))
    installs = [i.args for i in final.all("RUN") if "pip install" in i.args]
    assert len(installs) == 1
    assert f"from={build.name}" in installs[0]  # mounted from the build stage, not copied
    assert "--no-index" in installs[0]  # nothing fetched or compiled in the final stage
    assert "xlsx-stream-export" in installs[0]
    assert not final.all("COPY"), "the final stage copies nothing: the wheels leave no layer"


def test_the_final_stage_has_no_build_tools(final: Stage) -> None:
    for instruction in final.all("RUN"):
        words = instruction.args.replace(";", " ").split()
        assert not set(words) & set(BUILD_TOOLS), instruction.args
        assert "apt-get install" not in instruction.args


def test_the_service_runs_as_an_unprivileged_user(final: Stage) -> None:
    users = final.all("USER")
    assert users, "no USER: the service would run as root"
    user = users[-1].args.split(":")[0]
    assert user not in ("root", "0")
    created = " ".join(i.args for i in final.all("RUN") if "useradd" in i.args)
    assert user in created.split(), f"USER {user} is not created in the final stage"
    position = final.instructions.index(users[-1])
    assert position < final.instructions.index(final.all("CMD")[-1])


def test_the_command_is_the_api_with_options_it_accepts(final: Stage) -> None:
    command = exec_form(final.all("CMD")[-1].args)
    module, loader, argv = loader_for(command)
    assert module == "server.__main__"
    config = loader(argv, {**image_env(final), "MSSQL_PASSWORD": "probe"})
    assert config.host == "0.0.0.0"  # reachable from other containers


def test_every_image_variable_is_read_by_a_service_or_by_python(final: Stage) -> None:
    python_env = subprocess.run(
        [sys.executable, "--help-env"], capture_output=True, text=True, check=True
    ).stdout
    env = {**image_env(final), "MSSQL_PASSWORD": "probe"}
    services = [loader_for([script]) for script in ("xlsx-export-api", "xlsx-export-bff")]
    for name in image_env(final):
        read = any(reads(loader, argv, env, name) for _, loader, argv in services)
        assert read or name in python_env.split(), f"ENV {name} is read by nothing"


def test_exposed_ports_are_the_services_ports(final: Stage) -> None:
    exposed = {int(p.split("/")[0]) for i in final.all("EXPOSE") for p in i.args.split()}
    env = {**image_env(final), "MSSQL_PASSWORD": "probe"}
    ports = set()
    for script in ("xlsx-export-api", "xlsx-export-bff"):
        _, loader, argv = loader_for([script])
        ports.add(loader(argv, env).port)
    assert exposed == ports


def test_the_health_check_probes_the_default_commands_port(final: Stage) -> None:
    (instruction,) = final.all("HEALTHCHECK")
    command = healthcheck_command(instruction.args)
    assert command[0] == "python"  # the slim image has no curl or wget
    _, loader, argv = loader_for(exec_form(final.all("CMD")[-1].args))
    port = loader(argv, {**image_env(final), "MSSQL_PASSWORD": "probe"}).port
    assert f"http://127.0.0.1:{port}/healthz" in command[-1]
