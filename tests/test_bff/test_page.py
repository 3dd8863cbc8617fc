"""The page's files and headers, the download-status table, and configuration parsing."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import AsyncIterator

import aiohttp
import pytest

from bff.config import BffConfig, config_from
from bff.errors import BffError, ConfigError
from tests.commands import assert_taken_port_is_a_one_line_error
from tests.test_bff.conftest import CHUNK, BffFactory, Upstream


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_page_is_served_with_security_headers_and_the_api_bounds(
    make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    bff = await make_bff()
    async with client.get(f"http://127.0.0.1:{bff.port}/") as response:
        assert response.status == 200
        html = await response.text()
        headers = response.headers
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    csp = headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert 'data-max-rows="1048576"' in html
    assert 'value="30000"' in html
    # Self-contained: no inline script, nothing from another origin.
    assert not re.search(r"<script(?![^>]*\bsrc=)", html)
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)


@pytest.mark.parametrize(
    ("path", "content_type"),
    [("/static/page.js", "text/javascript"), ("/static/page.css", "text/css")],
)
async def test_assets_are_served_and_revalidated_by_etag(
    make_bff: BffFactory, client: aiohttp.ClientSession, path: str, content_type: str
) -> None:
    bff = await make_bff()
    url = f"http://127.0.0.1:{bff.port}{path}"
    async with client.get(url) as response:
        assert response.status == 200
        assert response.content_type == content_type
        etag = response.headers["ETag"]
        assert len(await response.read()) > 100
    async with client.get(url, headers={"If-None-Match": etag}) as response:
        assert response.status == 304


async def test_page_bounds_follow_the_configured_maximum(
    make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    bff = await make_bff(max_row_count=5000)
    async with client.get(f"http://127.0.0.1:{bff.port}/") as response:
        assert 'data-max-rows="5000"' in await response.text()


async def test_a_download_named_by_the_page_cookie_reports_its_state(
    upstream: Upstream, make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    bff = await make_bff()
    base = f"http://127.0.0.1:{bff.port}"
    download_id = "0123456789abcdef0123456789abcdef"
    async with client.get(f"{base}/exports/status/{download_id}") as response:
        assert response.status == 404
    headers = {"Cookie": f"bff_download={download_id}"}
    async with client.get(f"{base}/exports/report?chunks=3", headers=headers) as response:
        assert response.headers["X-Request-ID"] == download_id
        # The cookie is spent: the response clears it.
        assert "bff_download=;" in response.headers["Set-Cookie"]
        assert "Max-Age=0" in response.headers["Set-Cookie"]
        await response.read()
    assert upstream.headers[-1]["X-Request-ID"] == download_id
    async with client.get(f"{base}/exports/status/{download_id}") as response:
        status = await response.json()
    assert status == {
        "requestId": download_id,
        "state": "completed",
        "status": 200,
        "bytes": 3 * len(CHUNK),
        "error": None,
    }


async def test_a_failed_download_reports_the_api_message(
    upstream: Upstream, make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    bff = await make_bff()
    base = f"http://127.0.0.1:{bff.port}"
    headers = {"X-Request-ID": "req-1"}
    query = "status=400&code=INVALID_ROW_COUNT&message=rowCount%20must%20be%201..1048576"
    async with client.get(f"{base}/exports/report?{query}", headers=headers) as response:
        assert response.status == 400
        await response.read()
    async with client.get(f"{base}/exports/status/req-1") as response:
        status = await response.json()
    assert status["state"] == "failed"
    assert status["status"] == 400
    assert status["error"] == {
        "message": "rowCount must be 1..1048576",
        "code": "INVALID_ROW_COUNT",
    }


async def test_an_aborted_download_reports_aborted(
    upstream: Upstream, make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    bff = await make_bff()
    base = f"http://127.0.0.1:{bff.port}"
    headers = {"X-Request-ID": "req-2"}
    async with client.get(f"{base}/exports/report?abort=1", headers=headers) as response:
        with pytest.raises(aiohttp.ClientPayloadError):
            await response.read()
    async with client.get(f"{base}/exports/status/req-2") as response:
        status = await response.json()
    assert status["state"] == "aborted"
    assert status["bytes"] == 4 * len(CHUNK)


def test_config_defaults() -> None:
    config = config_from({})
    assert config == BffConfig()
    assert config.port == 3000
    assert config.api_url == "http://127.0.0.1:3001"
    assert config.tokens == ()
    assert config.cors_origins == ()
    assert config.max_downloads_per_client == 4


def test_config_defaults_when_no_flag_is_given() -> None:
    """What ``python -m bff`` with no flags and no environment passes in."""
    assert config_from({}, host=None, port=None, api_url=None) == BffConfig()
    assert config_from({"API_URL": "http://api:9000/"}, api_url=None).api_url == "http://api:9000"
    assert config_from({}, api_url="http://flag:1/").api_url == "http://flag:1"
    with pytest.raises(ConfigError):
        config_from({}, api_url="ftp://flag")


def test_config_from_environment_and_flags() -> None:
    env = {
        "API_URL": "http://api:9000/",
        "BFF_PORT": "8080",
        "BFF_TOKENS": "a, b ,",
        "BFF_CORS_ORIGINS": "https://app.example, http://localhost:5173",
        "BFF_MAX_DOWNLOADS_PER_CLIENT": "0",
        "BFF_UPSTREAM_HEADERS_TIMEOUT": "2.5",
    }
    config = config_from(env, port=9999, host=None)
    assert config.api_url == "http://api:9000"
    assert config.port == 9999  # the flag wins
    assert config.tokens == ("a", "b")
    assert config.cors_origins == ("https://app.example", "http://localhost:5173")
    assert config.max_downloads_per_client == 0
    assert config.upstream_headers_timeout_s == 2.5


@pytest.mark.parametrize(
    "env",
    [
        {"API_URL": "ftp://x"},
        {"API_URL": "http://x/?a=1"},
        {"BFF_PORT": "-1"},
        {"BFF_PORT": "eighty"},
        {"BFF_CORS_ORIGINS": "https://app.example/path"},
        {"BFF_UPSTREAM_READ_TIMEOUT": "0"},
        {"BFF_UPSTREAM_READ_TIMEOUT": "nan"},
        {"BFF_MAX_ROW_COUNT": "0"},
        {"BFF_PORT": "70000"},
        {"BFF_LOG_LEVEL": "LOUD"},
    ],
)
def test_bad_configuration_is_a_clear_error(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError) as info:
        config_from(env)
    assert isinstance(info.value, BffError)
    assert isinstance(info.value, ValueError)
    assert next(iter(env)) in str(info.value)


def test_the_command_refuses_bad_configuration_with_exit_code_2() -> None:
    env = {**os.environ, "BFF_MAX_DOWNLOADS_PER_CLIENT": "many"}
    done = subprocess.run(
        [sys.executable, "-m", "bff"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "BFF_MAX_DOWNLOADS_PER_CLIENT must be a whole number" in done.stderr


def test_the_command_exits_1_with_a_message_when_the_port_is_taken() -> None:
    assert_taken_port_is_a_one_line_error("bff")
