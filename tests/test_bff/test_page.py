"""The page's files and headers, the download-status table, and configuration parsing."""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys

import aiohttp
import pytest

from bff.config import DEFAULT_MAX_TICKETS_PER_CLIENT, BffConfig, config_from
from bff.downloads import DEFAULT_MAX_TICKETS, DownloadTable
from bff.errors import BffError, ConfigError
from tests.commands import assert_taken_port_is_a_one_line_error
from tests.test_bff.conftest import CHUNK, BffFactory, Upstream

# A second loopback address: another person's browser, as the BFF sees its peer.
ANOTHER_CLIENT = "127.0.0.2"


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
    # The reports come from /reports at run time: the file is served as it is.
    assert "__" not in html
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


async def test_the_script_puts_catalog_text_in_the_page_as_text_only(
    make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    """Titles, labels, help and messages come from the catalog and the API: never parsed as
    HTML, and nothing is evaluated as code."""
    bff = await make_bff()
    async with client.get(f"http://127.0.0.1:{bff.port}/static/page.js") as response:
        script = await response.text()
    assert "textContent" in script
    for risky in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert risky not in script, risky
    assert "new Function" not in script


async def _ticket(client: aiohttp.ClientSession, base: str) -> str:
    """What the page does before each download: ask for a ticket; check its cookie."""
    async with client.post(f"{base}/exports/ticket") as response:
        assert response.status == 201
        ticket = str((await response.json())["id"])
        cookie = response.headers["Set-Cookie"]
        assert response.headers["Location"] == f"/exports/status/{ticket}"
    assert re.fullmatch(r"[0-9a-f]{32}", ticket)
    assert cookie.startswith(f"bff_download={ticket};")
    for attribute in ("HttpOnly", "SameSite=Strict", "Path=/exports/", "Max-Age=60"):
        assert attribute in cookie, attribute
    return ticket


def _cookie(ticket: str) -> dict[str, str]:
    return {"Cookie": f"bff_download={ticket}"}


async def _download_then_status(
    client: aiohttp.ClientSession, base: str, query: str, ticket: str
) -> dict[str, object]:
    """The page's download with its ticket (the body read however it ends), then its status."""
    async with client.get(f"{base}/exports/report?{query}", headers=_cookie(ticket)) as response:
        with contextlib.suppress(aiohttp.ClientPayloadError):
            await response.read()
    async with client.get(f"{base}/exports/status/{ticket}") as response:
        assert response.status == 200
        return dict(await response.json())


async def test_a_download_named_by_its_ticket_reports_its_state(
    upstream: Upstream, make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    bff = await make_bff()
    base = f"http://127.0.0.1:{bff.port}"
    ticket = await _ticket(client, base)
    async with client.get(f"{base}/exports/status/{ticket}") as response:
        assert response.status == 404  # issued, not claimed by a download yet
    async with client.get(f"{base}/exports/report?chunks=3", headers=_cookie(ticket)) as response:
        assert response.headers["X-Request-ID"] == ticket
        # The cookie is spent: the response clears it.
        assert "bff_download=;" in response.headers["Set-Cookie"]
        assert "Max-Age=0" in response.headers["Set-Cookie"]
        await response.read()
    assert upstream.headers[-1]["X-Request-ID"] == ticket
    async with client.get(f"{base}/exports/status/{ticket}") as response:
        status = await response.json()
    assert status == {
        "requestId": ticket,
        "state": "completed",
        "status": 200,
        "bytes": 3 * len(CHUNK),
        "rows": None,  # this API tells no progress
        "error": None,
    }


async def test_a_failed_download_reports_the_api_message(
    upstream: Upstream, make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    bff = await make_bff()
    base = f"http://127.0.0.1:{bff.port}"
    query = "status=400&code=INVALID_ROW_COUNT&message=rowCount%20must%20be%201..1048576"
    status = await _download_then_status(client, base, query, await _ticket(client, base))
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
    status = await _download_then_status(client, base, "abort=1", await _ticket(client, base))
    assert status["state"] == "aborted"
    assert status["bytes"] == 4 * len(CHUNK)


async def test_ids_the_bff_did_not_issue_are_never_tracked(
    upstream: Upstream, make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    """A made-up id, in the page's cookie or in X-Request-ID, downloads normally but creates
    no status anyone could read (a guessable id would otherwise expose the download)."""
    bff = await make_bff()
    base = f"http://127.0.0.1:{bff.port}"
    made_up = "0123456789abcdef0123456789abcdef"
    async with client.get(f"{base}/exports/report?chunks=1", headers=_cookie(made_up)) as r:
        assert r.status == 200
        assert r.headers["X-Request-ID"] != made_up
        assert "bff_download=;" in r.headers["Set-Cookie"]  # cleared all the same
        await r.read()
    async with client.get(
        f"{base}/exports/report?chunks=1", headers={"X-Request-ID": "req-1"}
    ) as r:
        assert r.headers["X-Request-ID"] == "req-1"  # still the id of the logs
        await r.read()
    for unknown in (made_up, "req-1"):
        async with client.get(f"{base}/exports/status/{unknown}") as response:
            assert response.status == 404, unknown
            assert (await response.json())["error"]["code"] == "UNKNOWN_DOWNLOAD"


async def test_nobody_can_overwrite_a_download_they_did_not_start(
    upstream: Upstream, make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    bff = await make_bff()
    base = f"http://127.0.0.1:{bff.port}"
    ticket = await _ticket(client, base)
    before = await _download_then_status(client, base, "chunks=3", ticket)
    # Someone who learnt the id replays it, as the cookie and as X-Request-ID.
    failing = "status=500&code=X&message=overwritten"
    for headers in (_cookie(ticket), {"X-Request-ID": ticket}):
        async with client.get(f"{base}/exports/report?{failing}", headers=headers) as r:
            assert r.status == 500
            await r.read()
    async with client.get(f"{base}/exports/status/{ticket}") as response:
        after = await response.json()
    assert after == before
    assert (after["state"], after["status"], after["bytes"]) == ("completed", 200, 3 * len(CHUNK))


def _issue(table: DownloadTable, client: str = "203.0.113.7") -> str:
    ticket = table.issue(client)
    assert ticket is not None
    return ticket


def test_an_unclaimed_ticket_expires_and_a_claimed_one_cannot_be_claimed_again() -> None:
    now = [1000.0]
    table = DownloadTable(ticket_ttl_s=60, clock=lambda: now[0])
    late, used = _issue(table), _issue(table)
    assert table.claim(used) is not None
    assert table.claim(used) is None
    now[0] += 60
    assert table.claim(late) is None
    assert table.claim("not-issued") is None


def test_pending_tickets_are_bounded() -> None:
    table = DownloadTable(max_tickets=3)
    tickets = [_issue(table, f"192.0.2.{n}") for n in range(4)]
    assert table.claim(tickets[0]) is None  # the oldest made room
    assert all(table.claim(t) is not None for t in tickets[1:])


def test_a_client_holds_a_few_unclaimed_tickets_at_most() -> None:
    now = [1000.0]
    table = DownloadTable(max_tickets_per_client=2, ticket_ttl_s=60, clock=lambda: now[0])
    first, _ = _issue(table, "a"), _issue(table, "a")
    assert table.issue("a") is None
    _issue(table, "b")  # another client is not held to a's count
    assert table.claim(first) is not None
    assert table.held("a") == 1
    _issue(table, "a")  # a claimed ticket frees its place
    assert table.issue("a") is None
    now[0] += 60
    assert table.held("a") == 0  # and so does an expired one
    _issue(table, "a")


def test_no_limit_on_a_clients_tickets_when_it_is_zero() -> None:
    table = DownloadTable(max_tickets_per_client=0)
    assert len({_issue(table, "a") for _ in range(100)}) == 100


async def test_one_client_asking_for_many_tickets_cannot_push_out_another_persons(
    upstream: Upstream, make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    """Another client asks for more tickets than the table holds while a person's download is
    starting: it is refused once it holds its share, and the person's page still follows its
    download."""
    bff = await make_bff()
    base = f"http://127.0.0.1:{bff.port}"
    connector = aiohttp.TCPConnector(local_addr=(ANOTHER_CLIENT, 0))
    async with aiohttp.ClientSession(connector=connector) as person:
        ticket = await _ticket(person, base)
        answers: list[int] = []
        for _ in range(DEFAULT_MAX_TICKETS + 1):
            async with client.post(f"{base}/exports/ticket") as response:
                answers.append(response.status)
                body = await response.json()
                retry_after = response.headers.get("Retry-After")
        assert answers.count(201) == DEFAULT_MAX_TICKETS_PER_CLIENT
        assert answers.count(429) == DEFAULT_MAX_TICKETS + 1 - DEFAULT_MAX_TICKETS_PER_CLIENT
        assert body["error"]["code"] == "TOO_MANY_TICKETS"
        assert retry_after == str(BffConfig().retry_after_s)
        assert f"At most {DEFAULT_MAX_TICKETS_PER_CLIENT} downloads" in body["error"]["message"]
        status = await _download_then_status(person, base, "chunks=3", ticket)
    assert (status["state"], status["bytes"]) == ("completed", 3 * len(CHUNK))


def test_config_defaults() -> None:
    config = config_from({})
    assert config == BffConfig()
    assert config.port == 3000
    assert config.api_urls == ("http://127.0.0.1:3001",)
    assert config.tokens == ()
    assert config.cors_origins == ()
    assert config.max_downloads_per_client == 4


def test_config_defaults_when_no_flag_is_given() -> None:
    """What ``python -m bff`` with no flags and no environment passes in."""
    assert config_from({}, host=None, port=None, api_url=None) == BffConfig()
    assert config_from({"API_URL": "http://api:9000/"}, api_url=None).api_urls == (
        "http://api:9000",
    )
    assert config_from({}, api_url="http://flag:1/").api_urls == ("http://flag:1",)
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
    assert config.api_urls == ("http://api:9000",)
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
