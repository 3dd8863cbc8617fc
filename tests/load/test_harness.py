"""``python -m tests.load`` against the real stack (TDS dev server, API and BFF processes):
the counts add up, every completed download was checked, every abort during a query
cancelled it and the database says so, the stack ends idle."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from scripts.stack import Service, start_api, start_bff
from sql.devserver import DevServer, run_in_thread
from tests.load import options, reports
from tests.load.__main__ import main
from tests.load.plan import AbortRange, Shares, make_plan
from tests.load.reports import ReportQuery


@dataclass
class Stack:
    db: DevServer
    api: Service
    bff: Service

    def args(self) -> list[str]:
        return [
            "--url",
            self.bff.url,
            "--api-url",
            self.api.url,
            "--pids",
            f"api={self.api.pid},bff={self.bff.pid}",
            "--db-port",
            str(self.db.port),
        ]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The dev server in this process (so its counters can be read directly too), the API
    and the BFF as processes, shared by the tests that pass their URLs."""
    logs = tmp_path_factory.mktemp("load-logs")
    with run_in_thread(host="127.0.0.1", port=0) as db:
        api = start_api(0, db_port=db.port, log_dir=logs)
        try:
            bff = start_bff(
                0, api_url=api.url, env={"BFF_MAX_DOWNLOADS_PER_CLIENT": "0"}, log_dir=logs
            )
            try:
                yield Stack(db, api, bff)
            finally:
                bff.stop()
        finally:
            api.stop()


def run(args: list[str], tmp_path: Path) -> tuple[int, dict[str, Any]]:
    out = tmp_path / "report.json"
    status = main([*args, "--json", str(out)])
    return status, json.loads(out.read_text(encoding="utf-8"))


def check_verdicts(report: dict[str, Any]) -> dict[str, bool | None]:
    return {c["name"]: c["ok"] for c in report["checks"]}


def test_the_smoke_scenario_on_a_stack_of_its_own(tmp_path: Path) -> None:
    png = tmp_path / "run.png"
    status, report = run(["--start-stack", "--scenario", "smoke", "--plot", str(png)], tmp_path)
    assert status == 0, report["checks"]
    assert report["ok"]
    assert all(ok for ok in check_verdicts(report).values()), report["checks"]
    requests = report["requests"]
    assert requests["by_behaviour"] == {
        "normal": {"completed": 4},
        "slow": {"completed": 4},
        "abort": {"aborted": 4},
        "bad": {"refused_as_expected": 4},
    }
    completed = [r for r in report["results"] if r["outcome"] == "completed"]
    assert len(completed) == 8
    assert all(r["rows"] == 20_000 for r in completed)
    assert report["throughput"]["rows"] == 8 * 20_000
    # Aborts land 16-256 KiB into a ~1.5 MB file: each is during its query, each cancelled it.
    assert report["aborts"]["during_query"] == report["aborts"]["total"] == 4
    database = report["database"]
    assert database["attentions"] == 4
    assert database["delta"]["attentions_answered"] == 4
    for name in ("api", "bff"):
        health = report["health"][name]
        assert health["probes"] >= 1
        assert health["failures"] == 0
    for name in ("api", "bff", "devdb", "harness"):
        process = report["processes"][name]
        assert process["samples"] >= 1
        assert process["rss_peak_mib"] > 1
    # The exports ran in the API's worker processes, found and watched with the services.
    workers = [name for name in report["processes"] if name.startswith("worker ")]
    assert workers, report["processes"].keys()
    assert sum(report["processes"][name]["cpu_s"] for name in workers) > 0
    assert report["drain"]["seconds"] is not None
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_aborts_near_or_past_the_end_are_counted_apart(stack: Stack, tmp_path: Path) -> None:
    # A 3,000-row file is ~237 KB: aborting after 200-300 KB either lands within the last
    # bytes (the query may already be over: no attention is owed) or after the end (the
    # download completed first).
    attentions_before = stack.db.stats.attentions
    status, report = run(
        [
            *stack.args(),
            "--requests",
            "8",
            "--concurrency",
            "4",
            "--rows",
            "3000",
            "--abort-share",
            "1",
            "--abort-by",
            "bytes",
            "--abort-bytes",
            "200000:300000",
        ],
        tmp_path,
    )
    assert status == 0, report["checks"]
    aborts = report["aborts"]
    assert aborts["during_query"] == aborts["before_headers"] == 0
    assert aborts["near_end"] + aborts["not_reached"] == 8
    assert report["requests"]["by_outcome"].get("completed", 0) == aborts["not_reached"]
    attentions = report["database"]["attentions"]
    assert 0 <= attentions <= aborts["near_end"]
    # The procedure's counter and the server object's agree.
    assert attentions == stack.db.stats.attentions - attentions_before


def test_straight_to_the_api(stack: Stack, tmp_path: Path) -> None:
    status, report = run(
        [
            *stack.args(),
            "--target",
            "api",
            "--requests",
            "6",
            "--concurrency",
            "3",
            "--rows",
            "2000",
            "--bad-share",
            "0.5",
        ],
        tmp_path,
    )
    assert status == 0, report["checks"]
    assert report["requests"]["by_outcome"] == {"completed": 3, "refused_as_expected": 3}
    assert report["config"]["target"] == "api"


def test_more_downloads_than_the_pool_are_refused_and_reported(tmp_path: Path) -> None:
    status, report = run(
        [
            "--start-stack",
            "--api-pool-max",
            "2",
            "--requests",
            "4",
            "--concurrency",
            "4",
            "--rows",
            "30000",
        ],
        tmp_path,
    )
    assert status == 0, report["checks"]  # 503s are the API's answer to overload, not a failure
    outcomes = report["requests"]["by_outcome"]
    refused = report["requests"]["errors"].get("503 TOO_MANY_EXPORTS", 0)
    assert refused >= 1
    assert outcomes.get("completed", 0) + refused == 4


SALES_JANUARY = ["--report", "sales", "--param", "from=2024-01-01", "--param", "to=2024-01-31"]
REFUSALS = {"INVALID_PARAMETER", "UNKNOWN_PARAMETER"}


def seed_sending(codes: set[str], query: ReportQuery, requests: int, bad_share: float) -> int:
    """The first seed whose plan sends bad requests of each of ``codes`` (the same plan the
    run makes from the same settings)."""
    for seed in itertools.count(1):
        plan = make_plan(
            requests=requests,
            query=query.query_string(),
            bad=reports.bad_requests(query),
            shares=Shares(bad=bad_share),
            aborts=AbortRange(),
            expected_size=0,
            seed=seed,
        )
        if {r.refusal for r in plan if r.refusal} == codes:
            return seed
    raise AssertionError("unreachable")


@pytest.mark.parametrize("target", ["bff", "api"])
def test_the_sales_report_with_refused_parameters(
    stack: Stack, tmp_path: Path, target: str
) -> None:
    args = [*SALES_JANUARY, "--param", "region=East", "--target", target]
    query = options.parse(args).report
    seed = seed_sending(REFUSALS, query, requests=8, bad_share=0.5)
    load = ["--requests", "8", "--concurrency", "4", "--bad-share", "0.5", "--seed", str(seed)]
    status, report = run([*stack.args(), *args, *load], tmp_path)
    assert status == 0, report["checks"]
    assert report["requests"]["by_outcome"] == {"completed": 4, "refused_as_expected": 4}
    refusals = {r["code"] for r in report["results"] if r["outcome"] == "refused_as_expected"}
    assert refusals == REFUSALS
    expected = report["expected"]
    assert expected["report"] == "sales"
    assert expected["params"] == {"from": "2024-01-01", "to": "2024-01-31", "region": "East"}
    assert set(expected["sheets"]) == {"Orders", "Summary by region"}
    assert expected["sheets"]["Summary by region"] == 1
    completed = [r for r in report["results"] if r["outcome"] == "completed"]
    assert all(r["rows"] == expected["rows"] for r in completed)
    assert report["config"]["xml_check"]


def test_a_sales_report_rolled_over_to_several_sheets(tmp_path: Path) -> None:
    # 1,240 orders at 500 rows a sheet: "Orders", "Orders (2)", "Orders (3)", then the summary.
    status, report = run(
        [
            "--start-stack",
            "--api-env",
            "API_MAX_ROWS_PER_SHEET=500",
            *SALES_JANUARY,
            "--requests",
            "2",
            "--concurrency",
            "2",
        ],
        tmp_path,
    )
    assert status == 0, report["checks"]
    assert report["requests"]["by_outcome"] == {"completed": 2}
    assert report["expected"]["sheets"] == {"Orders": 1240, "Summary by region": 5}
    assert all(r["rows"] == 1245 for r in report["results"])
