"""Several APIs behind one BFF, each a real HTTP server: which one a download goes to, what
happens when one refuses connections or is not ready, how it comes back, what /metrics says."""

from __future__ import annotations

import os
import subprocess
import sys

import aiohttp
import pytest

from bff.app import BffServer
from bff.config import BffConfig, config_from
from bff.errors import ConfigError
from httpedge.prometheus import label_value
from tests import rawhttp
from tests.polling import apoll
from tests.rawhttp import RawClients
from tests.test_bff.conftest import CHUNK, BffFactory, Upstream, UpstreamFactory

# Long enough that no background check runs during a test after the first one (which runs
# as the BFF starts): what a test sees is what its downloads did.
NO_RECHECK_S = 3600.0
# Short, so tests about readiness and recovery see the checks' verdicts quickly.
QUICK_CHECK_S = 0.05


async def _download(client: aiohttp.ClientSession, bff: BffServer) -> int:
    """A small download through the BFF; its status, after checking a 200's body is whole."""
    async with client.get(f"http://127.0.0.1:{bff.port}/exports/report?chunks=2") as response:
        body = await response.read()
        if response.status == 200:
            assert body == 2 * CHUNK
        return response.status


async def _metrics(client: aiohttp.ClientSession, bff: BffServer) -> dict[str, float]:
    """Every sample of /metrics, keyed by name and labels as written."""
    async with client.get(f"http://127.0.0.1:{bff.port}/metrics") as response:
        text = await response.text()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            samples[series] = float(value)
    return samples


async def _downloads(client: aiohttp.ClientSession, bff: BffServer, count: int) -> None:
    for _ in range(count):
        assert await _download(client, bff) == 200


async def _two_apis(
    make_upstream: UpstreamFactory,
    make_bff: BffFactory,
    *,
    check_every_s: float,
    a_listening: bool = True,
    a_ready_status: int = 200,
) -> tuple[Upstream, Upstream, BffServer]:
    """Upstreams a (as told) and b (listening, ready), and a BFF over both in that order,
    once the BFF's first readiness check of each has come back."""
    a, b = await make_upstream(listening=a_listening), await make_upstream()
    a.ready_status = a_ready_status
    bff = await make_bff(api_urls=(a.url, b.url), health_interval_s=check_every_s)
    await _checked(bff, a, b)
    return a, b, bff


def _key(name: str, api: Upstream, **labels: str) -> str:
    """A series as /metrics writes it: the API's label first, then ``labels``."""
    pairs = [f'upstream="{api.url}"', *(f'{k}="{v}"' for k, v in labels.items())]
    return f"{name}{{{','.join(pairs)}}}"


def _served(*upstreams: Upstream) -> list[int]:
    return [len(u.requests) for u in upstreams]


async def _checked(bff: BffServer, *upstreams: Upstream) -> None:
    """Wait until the BFF's first readiness check of each upstream has come back."""
    urls = {u.url for u in upstreams}
    targets = [t for t in bff.app.balancer.targets if t.url in urls]
    await apoll(
        lambda: all(t.reason != "not checked yet" for t in targets),
        what="a readiness check of each upstream",
    )


# -- configuration -------------------------------------------------------------------------------


def test_api_urls_lists_several_apis_each_checked_as_api_url_is() -> None:
    env = {"API_URLS": " http://api-1:3001/ , http://api-2:3001,"}
    assert config_from(env).api_urls == ("http://api-1:3001", "http://api-2:3001")
    assert config_from({}, api_urls="http://a:1,http://b:2").api_urls == (
        "http://a:1",
        "http://b:2",
    )
    assert BffConfig().api_urls == ("http://127.0.0.1:3001",)


def test_flags_name_the_apis_as_a_whole_over_the_environment() -> None:
    env = {"API_URLS": "http://env-1:1,http://env-2:2"}
    assert config_from(env, api_url="http://flag:1").api_urls == ("http://flag:1",)
    assert config_from({"API_URL": "http://env:1"}, api_urls="http://f:1,http://g:2").api_urls == (
        "http://f:1",
        "http://g:2",
    )


@pytest.mark.parametrize(
    ("env", "flags", "named"),
    [
        ({"API_URL": "http://a:1", "API_URLS": "http://b:1"}, {}, ("API_URL", "API_URLS")),
        ({}, {"api_url": "http://a:1", "api_urls": "http://b:1"}, ("--api-url", "--api-urls")),
        ({"API_URLS": "http://a:1,ftp://b"}, {}, ("API_URLS", "ftp://b")),
        ({"API_URLS": "http://a:1,http://b/?x=1"}, {}, ("API_URLS", "query")),
        ({"API_URLS": " , ,"}, {}, ("API_URLS", "at least one")),
        ({"API_URLS": "http://a:1,http://a:1/"}, {}, ("API_URLS", "http://a:1")),
        ({}, {"api_urls": "http://a:1,nope"}, ("--api-urls", "nope")),
    ],
)
def test_bad_api_lists_are_clear_errors(
    env: dict[str, str], flags: dict[str, str], named: tuple[str, str]
) -> None:
    with pytest.raises(ConfigError) as info:
        config_from(env, **flags)
    for word in named:
        assert word in str(info.value)


def test_the_command_refuses_api_url_and_api_urls_together_with_exit_code_2() -> None:
    env = {**os.environ, "API_URL": "http://a:1", "API_URLS": "http://b:1,http://c:1"}
    done = subprocess.run(
        [sys.executable, "-m", "bff"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2
    assert "API_URL and API_URLS are both set" in done.stderr


# -- which API a download goes to -------------------------------------------------------------


async def test_equally_busy_apis_take_downloads_in_turn(
    make_upstream: UpstreamFactory, make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    apis = [await make_upstream() for _ in range(3)]
    bff = await make_bff(api_urls=tuple(a.url for a in apis))
    seen = []
    for _ in range(6):
        assert await _download(client, bff) == 200
        seen.append(_served(*apis))
    assert seen == [[1, 0, 0], [1, 1, 0], [1, 1, 1], [2, 1, 1], [2, 2, 1], [2, 2, 2]]


async def test_the_api_with_the_fewest_running_downloads_comes_first(
    make_upstream: UpstreamFactory, make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    a, b, bff = await _two_apis(make_upstream, make_bff, check_every_s=NO_RECHECK_S)
    url = f"http://127.0.0.1:{bff.port}/exports/report?gate=1&chunks=2"
    async with client.get(url) as held:  # parked on a after its first chunk
        await held.content.readexactly(len(CHUNK))
        assert _served(a, b) == [1, 0]
        assert await _download(client, bff) == 200
        # In turn it would be a's again; a still runs one download and b none.
        assert await _download(client, bff) == 200
        assert _served(a, b) == [1, 2]
        samples = await _metrics(client, bff)
        assert samples[_key("bff_upstream_active_downloads", a)] == 1
        assert samples[_key("bff_upstream_active_downloads", b)] == 0
        a.release.set()
        await held.read()
    samples = await _metrics(client, bff)
    assert samples[_key("bff_upstream_active_downloads", a)] == 0
    assert samples[_key("bff_upstream_downloads_total", a, outcome="completed")] == 1
    assert samples[_key("bff_upstream_downloads_total", b, outcome="completed")] == 2


async def test_an_api_that_refuses_is_skipped_within_the_same_request(
    make_upstream: UpstreamFactory, make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    a, b, bff = await _two_apis(make_upstream, make_bff, check_every_s=NO_RECHECK_S)
    await a.stop()  # a is first in turn, and up as far as the BFF knows
    assert await _download(client, bff) == 200
    assert _served(a, b) == [0, 1]
    samples = await _metrics(client, bff)
    assert samples[_key("bff_upstream_up", a)] == 0
    assert samples[_key("bff_upstream_up", b)] == 1
    assert samples[_key("bff_upstream_failures_total", a, reason="connect")] == 1
    assert samples[_key("bff_upstream_failures_total", b, reason="connect")] == 0
    # Down now: the next downloads do not even try it.
    await _downloads(client, bff, 3)
    assert _served(a, b) == [0, 4]
    samples = await _metrics(client, bff)
    assert samples[_key("bff_upstream_failures_total", a, reason="connect")] == 1
    assert samples['bff_downloads_total{outcome="completed"}'] == 4
    assert samples['bff_downloads_total{outcome="proxy_error"}'] == 0


async def test_head_also_skips_an_api_that_refuses(
    make_upstream: UpstreamFactory, make_bff: BffFactory, raw: RawClients
) -> None:
    a, b, bff = await _two_apis(make_upstream, make_bff, check_every_s=NO_RECHECK_S)
    await a.stop()
    request = rawhttp.request("HEAD", "/exports/report?rowCount=5", "Connection: close")
    status, headers = rawhttp.head_answer(await raw.exchange(bff.port, request))
    assert status == 200
    assert "attachment" in headers["content-disposition"]
    assert [r.method for r in b.requests] == ["HEAD"]
    assert bff.app.balancer.targets[0].state == "down"


async def test_every_api_down_is_the_502_json_without_waiting(
    make_upstream: UpstreamFactory, make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    a, b = await make_upstream(listening=False), await make_upstream(listening=False)
    bff = await make_bff(api_urls=(a.url, b.url), health_interval_s=NO_RECHECK_S)
    async with client.get(f"http://127.0.0.1:{bff.port}/exports/report?chunks=2") as response:
        assert response.status == 502
        body = await response.json()
    assert body["error"]["code"] == "PROXY_ERROR"
    assert body["error"]["message"] == "The export service is unreachable."
    await _checked(bff, a, b)
    samples = await _metrics(client, bff)
    for api in (a, b):
        assert samples[_key("bff_upstream_up", api)] == 0
    # Known down: the next one is answered without a connection attempt.
    failures = [t.failures.total() for t in bff.app.balancer.targets]
    async with client.get(f"http://127.0.0.1:{bff.port}/exports/report?chunks=2") as response:
        assert response.status == 502
    assert [t.failures.total() for t in bff.app.balancer.targets] == failures
    assert samples['bff_downloads_total{outcome="proxy_error"}'] == 1


async def test_a_single_api_is_neither_checked_nor_skipped(
    make_upstream: UpstreamFactory, make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    """With one API there is no other to go to: every request tries it, so the first download
    after it comes back succeeds, without waiting for a check."""
    a = await make_upstream(listening=False)
    bff = await make_bff(api_urls=(a.url,), health_interval_s=QUICK_CHECK_S)
    assert await _download(client, bff) == 502
    assert (await _metrics(client, bff))[_key("bff_upstream_up", a)] == 0
    await a.start()
    assert await _download(client, bff) == 200
    samples = await _metrics(client, bff)
    assert samples[_key("bff_upstream_up", a)] == 1
    assert samples[_key("bff_upstream_failures_total", a, reason="connect")] == 1
    # A witness: a BFF over two other APIs, with the same interval, checks them several
    # times meanwhile; the one-API BFF has not asked a once.
    b, c = await make_upstream(), await make_upstream()
    await make_bff(api_urls=(b.url, c.url), health_interval_s=QUICK_CHECK_S)
    await apoll(lambda: b.readiness_checks >= 3, what="three checks of the witness")
    assert a.readiness_checks == 0


# -- readiness ----------------------------------------------------------------------------------


async def test_an_api_that_is_not_ready_gets_no_download_while_another_is_ready(
    make_upstream: UpstreamFactory, make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    a, b, bff = await _two_apis(
        make_upstream, make_bff, check_every_s=QUICK_CHECK_S, a_ready_status=503
    )
    assert bff.app.balancer.targets[0].state == "not_ready"
    url = f"http://127.0.0.1:{bff.port}/exports/report?gate=1&chunks=2"
    async with client.get(url) as held:  # b busier than a from now on
        await held.content.readexactly(len(CHUNK))
        await _downloads(client, bff, 3)
        assert _served(a, b) == [0, 4]
        b.release.set()
        await held.read()
    samples = await _metrics(client, bff)
    assert samples[_key("bff_upstream_up", a)] == 1  # reachable
    assert samples[_key("bff_upstream_ready", a)] == 0
    assert samples[_key("bff_upstream_ready", b)] == 1
    assert samples[_key("bff_upstream_failures_total", a, reason="check_not_ready")] >= 1


async def test_when_no_api_is_ready_they_are_tried_anyway_and_their_answer_relayed(
    make_upstream: UpstreamFactory, make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    a, b, bff = await _two_apis(
        make_upstream, make_bff, check_every_s=QUICK_CHECK_S, a_ready_status=503
    )
    b.ready_status = 503
    await apoll(
        lambda: all(t.state == "not_ready" for t in bff.app.balancer.targets),
        what="both not ready",
    )
    # A readiness check is up to one interval old: the API decides, and its answer (here a
    # 503 with its reason and Retry-After) is what the client gets.
    query = "status=503&code=TOO_MANY_EXPORTS&message=busy&retry=7"
    async with client.get(f"http://127.0.0.1:{bff.port}/exports/report?{query}") as response:
        assert response.status == 503
        assert response.headers["Retry-After"] == "7"
        assert (await response.json())["error"]["code"] == "TOO_MANY_EXPORTS"
    assert await _download(client, bff) == 200  # and one that can serve, serves
    assert _served(a, b) == [1, 1]


async def test_a_download_an_api_refuses_as_shutting_down_goes_to_the_next_api(
    make_upstream: UpstreamFactory, make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    """A draining API answers 503 SHUTTING_DOWN on a connection it still has open: it started
    nothing, so the download goes to another API, and the draining one is tried no more."""
    a, b, bff = await _two_apis(make_upstream, make_bff, check_every_s=NO_RECHECK_S)
    a.draining = True
    await _downloads(client, bff, 4)
    assert _served(a, b) == [1, 4], "a refused one; every download was served by b"
    target = bff.app.balancer.targets[0]
    assert (target.state, target.reason) == ("not_ready", "shutting down")


async def test_a_single_api_s_shutting_down_answer_is_relayed_whole(
    upstream: Upstream, make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    upstream.draining = True
    bff = await make_bff()
    async with client.get(f"http://127.0.0.1:{bff.port}/exports/report") as response:
        assert response.status == 503
        assert response.headers["Retry-After"] == "9"
        body = await response.json()
    assert body == {"error": {"message": "the service is shutting down", "code": "SHUTTING_DOWN"}}


async def test_a_refusing_api_is_used_again_once_its_check_passes(
    make_upstream: UpstreamFactory, make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    a, b, bff = await _two_apis(
        make_upstream, make_bff, check_every_s=QUICK_CHECK_S, a_listening=False
    )
    assert bff.app.balancer.targets[0].state == "down"
    assert await _download(client, bff) == 200
    assert _served(a, b) == [0, 1]
    samples = await _metrics(client, bff)
    assert samples[_key("bff_upstream_failures_total", a, reason="check_unreachable")] >= 1
    await a.start()
    await apoll(lambda: bff.app.balancer.targets[0].state == "up", what="a back up")
    await _downloads(client, bff, 2)
    assert _served(a, b) == [1, 2]
    samples = await _metrics(client, bff)
    assert samples[_key("bff_upstream_up", a)] == 1
    assert samples[_key("bff_upstream_ready", a)] == 1


async def test_an_api_that_becomes_ready_again_gets_downloads_again(
    make_upstream: UpstreamFactory, make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    a, b, bff = await _two_apis(
        make_upstream, make_bff, check_every_s=QUICK_CHECK_S, a_ready_status=503
    )
    assert bff.app.balancer.targets[0].state == "not_ready"
    await _downloads(client, bff, 2)
    assert _served(a, b) == [0, 2]
    a.ready_status = 200
    await apoll(lambda: bff.app.balancer.targets[0].state == "up", what="a ready again")
    await _downloads(client, bff, 2)
    assert _served(a, b) == [1, 3]


async def test_an_api_that_dies_mid_download_breaks_that_download_and_the_next_goes_elsewhere(
    make_upstream: UpstreamFactory, make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    a, b, bff = await _two_apis(make_upstream, make_bff, check_every_s=NO_RECHECK_S)
    url = f"http://127.0.0.1:{bff.port}/exports/report?gate=1&chunks=4"
    async with client.get(url) as dying:
        assert await dying.content.readexactly(len(CHUNK)) == CHUNK
        assert _served(a, b) == [1, 0]
        await a.stop()
        with pytest.raises(aiohttp.ClientPayloadError):
            await dying.read()
    # a is first in turn again (fewest running, both 0): the refusal sends it to b.
    await _downloads(client, bff, 2)
    assert _served(a, b) == [1, 2]
    samples = await _metrics(client, bff)
    broken = _key("bff_upstream_downloads_total", a, outcome="upstream_aborted")
    assert samples[broken] == 1
    assert samples[_key("bff_upstream_up", a)] == 0
    assert samples[_key("bff_upstream_active_downloads", a)] == 0


async def test_the_page_s_ticket_and_status_work_across_apis(
    make_upstream: UpstreamFactory, make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    a, b, bff = await _two_apis(make_upstream, make_bff, check_every_s=NO_RECHECK_S)
    await a.stop()
    base = f"http://127.0.0.1:{bff.port}"
    async with client.post(f"{base}/exports/ticket") as response:
        ticket = (await response.json())["id"]
    cookie = {"Cookie": f"bff_download={ticket}"}
    async with client.get(f"{base}/exports/report?chunks=3", headers=cookie) as response:
        assert len(await response.read()) == 3 * len(CHUNK)
    assert b.headers[-1]["X-Request-ID"] == ticket
    async with client.get(f"{base}/exports/status/{ticket}") as response:
        status = await response.json()
    assert status["state"] == "completed"
    assert (status["status"], status["bytes"]) == (200, 3 * len(CHUNK))


# -- the metrics' text ------------------------------------------------------------------------


def test_label_values_are_escaped_as_the_text_format_requires() -> None:
    assert label_value('http://h/"a"\\b\nc') == 'http://h/\\"a\\"\\\\b\\nc'
    assert label_value("http://127.0.0.1:3001") == "http://127.0.0.1:3001"


async def test_every_api_has_every_series_from_the_start(
    make_upstream: UpstreamFactory, make_bff: BffFactory, client: aiohttp.ClientSession
) -> None:
    a, b, bff = await _two_apis(make_upstream, make_bff, check_every_s=NO_RECHECK_S)
    samples = await _metrics(client, bff)
    for api in (a, b):
        for name in ("bff_upstream_up", "bff_upstream_ready", "bff_upstream_active_downloads"):
            assert _key(name, api) in samples
        for outcome in ("completed", "client_disconnected", "upstream_aborted", "proxy_timeout"):
            assert samples[_key("bff_upstream_downloads_total", api, outcome=outcome)] == 0
        for reason in ("connect", "check_unreachable", "check_not_ready"):
            assert _key("bff_upstream_failures_total", api, reason=reason) in samples
