"""Who does what in a run: exact shares, reproducible from the seed, parameters in range;
and the command line that asks for it."""

from __future__ import annotations

from collections import Counter

import pytest

from tests.load import options, reports
from tests.load.errors import LoadError
from tests.load.plan import AbortRange, Behaviour, Shares, apportion, make_plan
from tests.load.reports import BAD_ROW_COUNTS, INVALID_ROW_COUNT, ReportQuery, encode_query
from tests.load.targets import check_url, is_loopback_host

QUERY = ReportQuery("report", (("rowCount", "1000"),))


def plan(seed: int = 1, requests: int = 200, **kw: object) -> list:  # type: ignore[type-arg]
    settings: dict = {  # type: ignore[type-arg]
        "requests": requests,
        "query": QUERY.query_string(),
        "bad": reports.bad_requests(QUERY),
        "shares": Shares(slow=0.1, abort=0.3, bad=0.05),
        "aborts": AbortRange(),
        "expected_size": 77_000,
        "seed": seed,
    }
    settings.update(kw)
    return make_plan(**settings)


def test_shares_are_exact_and_add_up() -> None:
    counts = Counter(r.behaviour for r in plan())
    assert counts == {
        Behaviour.NORMAL: 110,
        Behaviour.SLOW: 20,
        Behaviour.ABORT: 60,
        Behaviour.BAD: 10,
    }
    assert apportion(7, {Behaviour.NORMAL: 1 / 3, Behaviour.SLOW: 1 / 3, Behaviour.BAD: 1 / 3}) in (
        {Behaviour.NORMAL: 3, Behaviour.SLOW: 2, Behaviour.BAD: 2},
        {Behaviour.NORMAL: 2, Behaviour.SLOW: 3, Behaviour.BAD: 2},
        {Behaviour.NORMAL: 2, Behaviour.SLOW: 2, Behaviour.BAD: 3},
    )


def test_the_same_seed_gives_the_same_run_and_another_seed_another() -> None:
    assert plan(seed=5) == plan(seed=5)
    assert plan(seed=5) != plan(seed=6)


def test_abort_points_stay_in_their_ranges() -> None:
    aborts = AbortRange(by="mixed", min_bytes=100, max_bytes=0, min_seconds=0.5, max_seconds=1.5)
    requests = [r for r in plan(aborts=aborts) if r.behaviour is Behaviour.ABORT]
    by_bytes = [r.abort_after_bytes for r in requests if r.abort_after_bytes is not None]
    by_time = [r.abort_after_seconds for r in requests if r.abort_after_seconds is not None]
    assert by_bytes
    assert by_time
    assert len(by_bytes) + len(by_time) == len(requests)
    assert all(100 <= b <= 77_000 for b in by_bytes)  # up to the expected size
    assert all(0.5 <= s <= 1.5 for s in by_time)


def test_bad_requests_use_the_documented_bad_values_and_others_the_row_count() -> None:
    bad_queries = {encode_query([("rowCount", value)]) for value in BAD_ROW_COUNTS}
    for request in plan():
        if request.behaviour is Behaviour.BAD:
            assert request.query in bad_queries
            assert request.refusal == INVALID_ROW_COUNT
        else:
            assert request.query == "rowCount=1000"
            assert request.refusal is None


def test_a_bad_share_without_bad_requests_is_refused() -> None:
    with pytest.raises(LoadError, match="no bad request"):
        plan(bad=())


@pytest.mark.parametrize(
    ("shares", "message"),
    [
        ({"slow": 0.6, "abort": 0.6}, "more than 1"),
        ({"bad": -0.1}, "between 0 and 1"),
    ],
)
def test_impossible_shares_are_refused(shares: dict[str, float], message: str) -> None:
    with pytest.raises(LoadError, match=message):
        Shares(**shares)


def test_a_scenario_sets_defaults_that_explicit_options_override() -> None:
    config = options.parse(["--scenario", "aborts-200", "--rows", "1234"])
    assert config.requests == 200
    assert config.concurrency == 20
    assert config.shares.abort == 0.3
    assert config.report == ReportQuery("report", (("rowCount", "1234"),))


def test_start_stack_passes_the_load_settings_to_the_services() -> None:
    config = options.parse(
        ["--start-stack", "--api-pool-max", "7", "--api-env", "API_QUEUE_CHUNKS=8"]
    )
    assert config.stack is not None
    assert config.stack.api_env["API_POOL_MAX"] == "7"
    assert config.stack.api_env["API_QUEUE_CHUNKS"] == "8"
    assert config.stack.bff_env["BFF_MAX_DOWNLOADS_PER_CLIENT"] == "0"
    assert config.stack.bff_env["BFF_MAX_CONNECTIONS_PER_CLIENT"] == "0"
    assert config.stack.api_env["API_MAX_CONNECTIONS_PER_CLIENT"] == "0"


def test_every_scenario_parses() -> None:
    for name in options.SCENARIOS:
        config = options.parse(["--scenario", name])
        assert config.requests >= config.concurrency >= 1


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "localhost", "[::1]"])
def test_loopback_targets_are_accepted(host: str) -> None:
    assert check_url(f"http://{host}:3000", allow_remote=False)


@pytest.mark.parametrize("host", ["10.1.2.3", "192.168.0.1", "8.8.8.8", "[2001:db8::1]"])
def test_other_targets_need_allow_remote(host: str) -> None:
    with pytest.raises(LoadError, match="not a loopback address"):
        check_url(f"http://{host}:3000", allow_remote=False)
    assert check_url(f"http://{host}:3000", allow_remote=True)
    assert not is_loopback_host(host.strip("[]"))


def test_a_remote_url_on_the_command_line_is_a_usage_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from tests.load.__main__ import main

    assert main(["--url", "http://10.1.2.3:3000", "--requests", "1"]) == 2
    assert "not a loopback address" in capsys.readouterr().err
