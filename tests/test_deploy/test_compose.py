"""compose.yaml against the project: SQL Server, a schema job that must succeed first, two API
replicas and a BFF relaying to both; each setting it passes is one the service reads, each port
the one the service listens on, each health check on a route it answers; no secret in it."""

from __future__ import annotations

import ipaddress
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from httpedge.forwarded import TrustedProxies
from tests.test_deploy.deployfiles import (
    ROOT,
    command_list,
    env_instruction,
    exec_form,
    loader_for,
    read_compose,
    read_dockerfile,
    read_env_file,
    reads,
    service_environment,
    variables,
)

COMPOSE_TEXT = (ROOT / "compose.yaml").read_text(encoding="utf-8")
EXAMPLE_ENV = read_env_file(ROOT / ".env.example")
MSSQL_IMAGE = "mcr.microsoft.com/mssql/server:2022-latest"
# The variable that lists several upstream APIs for the BFF.
API_URLS = "API_URLS"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return read_compose()


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return dict(compose["services"])


def image_defaults() -> tuple[list[str], dict[str, str]]:
    """The image's default command and environment (from the Dockerfile's final stage)."""
    final = read_dockerfile()[-1]
    env: dict[str, str] = {}
    for instruction in final.all("ENV"):
        env.update(env_instruction(instruction.args))
    return exec_form(final.all("CMD")[-1].args), env


def ours(services: dict[str, Any]) -> dict[str, Any]:
    """The services that run the project's image."""
    return {name: s for name, s in services.items() if "build" in s}


SECRETS_DIR = "/run/secrets/"


def secret_files(service: dict[str, Any]) -> dict[str, str]:
    """Where compose mounts each of the service's secrets -> a file here with its value (the
    example env file's value of the variable the secret is made from)."""
    sources = read_compose().get("secrets") or {}
    mounted = {}
    for name in service.get("secrets") or ():
        value = EXAMPLE_ENV[sources[name]["environment"]]
        path = Path(tempfile.mkdtemp()) / name
        path.write_text(value, encoding="utf-8")
        mounted[SECRETS_DIR + name] = str(path)
    return mounted


def runtime(service: dict[str, Any]) -> tuple[str, Any, list[str], dict[str, str]]:
    """(module, loader, argv, environment) of a service running our image (its secrets'
    paths pointing to files with their example values)."""
    default_command, image_env = image_defaults()
    command = command_list(service.get("command")) or default_command
    module, loader, argv = loader_for(command)
    env = {**image_env, **service_environment(service, EXAMPLE_ENV)}
    files = secret_files(service)
    return module, loader, argv, {k: files.get(v, v) for k, v in env.items()}


def by_module(services: dict[str, Any], module: str) -> dict[str, Any]:
    return {n: s for n, s in ours(services).items() if runtime(s)[0] == module}


def url_port(url: str) -> tuple[str, int]:
    match = re.fullmatch(r"https?://([^:/]+):(\d+)(/.*)?", url)
    assert match, f"not a URL with a port: {url}"
    return match.group(1), int(match.group(2))


def test_sql_server_2022_with_the_eula_accepted_and_the_password_from_the_env_file(
    services: dict[str, Any],
) -> None:
    (name,) = [
        n for n, s in services.items() if s.get("image") == MSSQL_IMAGE and s.get("restart") != "no"
    ]
    env = services[name]["environment"]
    assert env["ACCEPT_EULA"] == "Y"
    assert variables(env["MSSQL_SA_PASSWORD"]) == {"MSSQL_PASSWORD"}
    assert "healthcheck" in services[name]


def test_the_schema_job_runs_every_sql_file_after_the_server_is_healthy(
    services: dict[str, Any],
) -> None:
    jobs = {n: s for n, s in services.items() if "sqlcmd" in str(s.get("command"))}
    (name,) = jobs
    job = jobs[name]
    (database,) = job["depends_on"]
    assert job["depends_on"][database]["condition"] == "service_healthy"
    assert services[database]["image"] == MSSQL_IMAGE
    script = " ".join(command_list(job.get("entrypoint")) + command_list(job.get("command")))
    mounts = {v.split(":")[1]: v.split(":")[0] for v in job["volumes"]}
    glob = re.search(r"(/\S+)/\*\.sql", script)
    assert glob, "the job does not run a directory's *.sql"
    source = ROOT / mounts[glob.group(1)]
    assert sorted(source.glob("*.sql")), f"{source} holds no .sql file"
    assert (source / "schema.sql").is_file()
    sqlcmd = script[script.index("sqlcmd") :]
    assert " -C " in sqlcmd  # trust the self-signed certificate (sqlcmd 18 encrypts)
    assert " -b " in sqlcmd  # an error in a script fails the job (and so the API's start)
    assert f"-S {database} " in sqlcmd
    assert job.get("restart") == "no"


def test_two_api_replicas_start_only_after_the_schema_job_succeeded(
    services: dict[str, Any],
) -> None:
    apis = by_module(services, "server.__main__")
    assert len(apis) == 2
    job = next(n for n, s in services.items() if "sqlcmd" in str(s.get("command")))
    for service in apis.values():
        assert service["depends_on"][job]["condition"] == "service_completed_successfully"


def test_the_bff_waits_for_healthy_apis_and_publishes_its_own_port(
    services: dict[str, Any],
) -> None:
    (bff,) = by_module(services, "bff.__main__").values()
    for api in by_module(services, "server.__main__"):
        assert bff["depends_on"][api]["condition"] == "service_healthy"
    _, loader, argv, env = runtime(bff)
    port = loader(argv, env).port
    (published,) = bff["ports"]
    assert int(str(published).rsplit(":", 1)[1]) == port


def test_every_setting_passed_to_a_service_is_one_it_reads(services: dict[str, Any]) -> None:
    for name, service in ours(services).items():
        _, loader, argv, env = runtime(service)
        for variable in service_environment(service, EXAMPLE_ENV):
            assert reads(loader, argv, env, variable), f"{name}: {variable} is read by nothing"


def test_the_services_listen_on_every_interface_inside_their_containers(
    services: dict[str, Any],
) -> None:
    for name, service in ours(services).items():
        _, loader, argv, env = runtime(service)
        assert loader(argv, env).host == "0.0.0.0", name


def test_the_bff_relays_to_both_replicas(services: dict[str, Any]) -> None:
    (bff,) = by_module(services, "bff.__main__").values()
    _, loader, argv, env = runtime(bff)
    apis = by_module(services, "server.__main__")
    urls = env[API_URLS].split(",")
    for url in urls:
        host, port = url_port(url)
        assert host in apis, f"{url}: no such service"
        _, api_loader, api_argv, api_env = runtime(apis[host])
        assert port == api_loader(api_argv, api_env).port
    assert {url_port(u)[0] for u in urls} == set(apis)
    assert reads(loader, argv, env, API_URLS)
    config = loader(argv, env)
    assert all(url in repr(config) for url in urls)


def test_the_apis_believe_x_forwarded_for_from_the_bff_alone(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    (bff,) = by_module(services, "bff.__main__").values()
    address = ipaddress.ip_address(bff["networks"]["default"]["ipv4_address"])
    (subnet,) = [
        ipaddress.ip_network(block["subnet"])
        for block in compose["networks"]["default"]["ipam"]["config"]
    ]
    assert address in subnet
    gateway = next(subnet.hosts())  # Docker gives a bridge network's first address to the host
    others = [str(host) for host in subnet.hosts() if host != address]
    for name, api in by_module(services, "server.__main__").items():
        _, loader, argv, env = runtime(api)
        proxies = TrustedProxies(loader(argv, env).trusted_proxies)
        assert proxies.trusts(str(address)), name
        assert not proxies.trusts(str(gateway)), name
        assert not any(proxies.trusts(host) for host in others), name


def test_every_long_running_service_has_a_health_check_on_its_own_port(
    services: dict[str, Any],
) -> None:
    for name, service in services.items():
        if service.get("restart") == "no":
            continue  # a one-shot job: done is its health
        assert "healthcheck" in service, name
        if "build" not in service:
            continue
        _, loader, argv, env = runtime(service)
        test = service["healthcheck"]["test"]
        assert test[0] == "CMD"
        url = re.search(r"https?://[^'\"]+", test[-1])
        assert url, f"{name}: health check without a URL"
        assert url_port(url.group(0)) == ("127.0.0.1", loader(argv, env).port), name
        assert url.group(0).endswith("/healthz"), name


def test_the_api_gets_time_to_finish_its_exports_on_stop(services: dict[str, Any]) -> None:
    for name, service in by_module(services, "server.__main__").items():
        _, loader, argv, env = runtime(service)
        stop = service["stop_grace_period"]
        assert stop.endswith("s")
        # Docker's SIGKILL must come after the API's own grace period ended.
        assert float(stop[:-1]) > loader(argv, env).shutdown_grace_s, name


def test_no_secret_is_written_in_the_compose_file(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for key, value in (service.get("environment") or {}).items():
            if key.endswith("_FILE") and str(value).startswith(SECRETS_DIR):
                continue  # where a secret is mounted, not the secret
            if re.search(r"PASSWORD|SECRET|TOKEN", key):
                assert re.fullmatch(r"\$\{\w+:\?[^}]*\}", str(value)), (
                    f"{name}: {key} must come from the environment, with no default"
                )


def test_the_api_reads_the_password_from_a_secret_file_never_a_variable(
    compose: dict[str, Any], services: dict[str, Any]
) -> None:
    for name, api in by_module(services, "server.__main__").items():
        assert "MSSQL_PASSWORD" not in (api.get("environment") or {}), name
        _, loader, argv, env = runtime(api)
        assert loader(argv, env).db.password == EXAMPLE_ENV["MSSQL_PASSWORD"], name
        assert api["environment"]["MSSQL_PASSWORD_FILE"] == SECRETS_DIR + "mssql_password"
    assert compose["secrets"]["mssql_password"] == {"environment": "MSSQL_PASSWORD"}


def test_every_variable_compose_needs_is_in_the_example_env_file() -> None:
    assert variables(COMPOSE_TEXT) <= set(EXAMPLE_ENV)
    for key, value in EXAMPLE_ENV.items():
        if re.search(r"PASSWORD|SECRET|TOKEN", key):
            assert value == "CHANGE_ME", f".env.example: {key} is not a placeholder"


def test_the_env_file_is_kept_out_of_git_and_of_the_image() -> None:
    ignored = subprocess.run(["git", "check-ignore", "--quiet", ".env"], cwd=ROOT, check=False)
    assert ignored.returncode == 0, ".env is not in .gitignore"
    dockerignore = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    assert ".env" in dockerignore
