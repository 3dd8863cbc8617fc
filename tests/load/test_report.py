"""The report's arithmetic and verdicts, on hand-made results."""

from __future__ import annotations

import datetime as dt
import random
import statistics

import pytest

from sql import sales_data
from tests.load.client import AbortPhase, Outcome, Result
from tests.load.monitor import parse_metrics
from tests.load.plan import Behaviour
from tests.load.report import Measurements, build_report, classify_aborts, percentile, render
from tests.load.reports import ReportQuery, expectation

SIZE = 5_000_000
MARGIN = 1_000_000


def result(
    index: int,
    behaviour: Behaviour,
    outcome: Outcome,
    *,
    received: int = 0,
    phase: AbortPhase | None = None,
    **fields: object,
) -> Result:
    r = Result(index, behaviour, "rowCount=1000", started_s=0.0, ended_s=1.0, outcome=outcome)
    r.bytes = received
    r.abort_phase = phase
    for name, value in fields.items():
        setattr(r, name, value)
    return r


def test_percentiles_match_the_standard_library() -> None:
    rng = random.Random(3)
    values = [rng.expovariate(1.0) for _ in range(501)]
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    for q in (1, 50, 95, 99):
        assert percentile(values, q) == pytest.approx(cuts[q - 1])
    assert percentile([], 50) is None
    assert percentile([4.0], 99) == 4.0


def test_aborts_are_classified_by_where_they_landed() -> None:
    results = [
        result(0, Behaviour.ABORT, Outcome.ABORTED, received=10, phase=AbortPhase.IN_BODY),
        result(
            1,
            Behaviour.ABORT,
            Outcome.ABORTED,
            received=SIZE - MARGIN - 1,
            phase=AbortPhase.IN_BODY,
        ),
        result(
            2, Behaviour.ABORT, Outcome.ABORTED, received=SIZE - MARGIN, phase=AbortPhase.IN_BODY
        ),
        result(3, Behaviour.ABORT, Outcome.ABORTED, phase=AbortPhase.BEFORE_HEADERS),
        result(4, Behaviour.SLOW, Outcome.TIMEOUT, received=100, phase=AbortPhase.IN_BODY),
        result(5, Behaviour.ABORT, Outcome.COMPLETED, received=SIZE, abort_not_reached=True),
        result(6, Behaviour.NORMAL, Outcome.COMPLETED, received=SIZE),
    ]
    assert classify_aborts(results, SIZE, MARGIN) == {
        "total": 5,
        "during_query": 3,  # 0, 1 and the timeout
        "before_headers": 1,
        "near_end": 1,
        "timeouts": 1,
        "not_reached": 1,
    }


ROWS_1000 = ReportQuery("report", (("rowCount", "1000"),))


def measurements(results: list[Result], **fields: object) -> Measurements:
    m = Measurements(
        config={"concurrency": 2, "target": "bff", "scenario": None},
        planned=len(results),
        report=ROWS_1000,
        expected=expectation(ROWS_1000),
        abort_margin=MARGIN,
        results=results,
        wall_s=2.0,
        drain_s=0.1,
    )
    for name, value in fields.items():
        setattr(m, name, value)
    return m


def checks_of(report: dict) -> dict[str, bool | None]:  # type: ignore[type-arg]
    return {c["name"]: c["ok"] for c in report["checks"]}


def stats(attentions: int) -> dict[str, int]:
    return {"attentions": attentions, "attentions_answered": attentions, "connections_open": 1}


def test_a_clean_run_passes_and_the_counts_add_up() -> None:
    results = [
        result(0, Behaviour.NORMAL, Outcome.COMPLETED, received=SIZE, rows=1000),
        result(
            1,
            Behaviour.BAD,
            Outcome.REFUSED_AS_EXPECTED,
            status=400,
            code="INVALID_ROW_COUNT",
            refusal="INVALID_ROW_COUNT",
        ),
        result(2, Behaviour.ABORT, Outcome.ABORTED, received=10, phase=AbortPhase.IN_BODY),
        result(3, Behaviour.NORMAL, Outcome.ERROR, status=503, code="TOO_MANY_EXPORTS"),
    ]
    report = build_report(
        measurements(results, db_before=stats(0), db_after=stats(1)), estimate_per_row=77
    )
    assert report["ok"], report["checks"]
    assert report["requests"]["by_outcome"] == {
        "aborted": 1,
        "completed": 1,
        "error": 1,
        "refused_as_expected": 1,
    }
    assert report["requests"]["errors"] == {"503 TOO_MANY_EXPORTS": 1}  # reported, not failed
    assert report["throughput"]["rows_per_s"] == 500.0
    assert "503 TOO_MANY_EXPORTS: 1" in render(report)
    # How long the error took to come back (a refusal must come at once), only errors counted.
    assert report["error_answer_s"]["count"] == 1
    assert report["error_answer_s"]["max"] == 1.0
    assert "| error answer | 1 |" in render(report)


@pytest.mark.parametrize(
    ("results", "fields", "failed"),
    [
        (
            [result(0, Behaviour.NORMAL, Outcome.INVALID, detail="truncated")],
            {},
            "every finished download is the workbook asked for",
        ),
        (
            [result(0, Behaviour.BAD, Outcome.ERROR, status=200)],
            {},
            "bad requests refused with 400 and their code",
        ),
        (
            [
                result(0, Behaviour.NORMAL, Outcome.COMPLETED, received=SIZE, rows=1000),
                result(1, Behaviour.ABORT, Outcome.ABORTED, received=10, phase=AbortPhase.IN_BODY),
            ],
            {"db_before": stats(0), "db_after": stats(0)},  # the query was not cancelled
            "aborts cancelled their queries",
        ),
        (
            [result(0, Behaviour.NORMAL, Outcome.COMPLETED, received=SIZE, rows=1000)],
            {"db_before": stats(0), "db_after": stats(1)},  # an attention nobody caused
            "aborts cancelled their queries",
        ),
        (
            [result(0, Behaviour.NORMAL, Outcome.COMPLETED, received=SIZE, rows=1000)],
            {"drain_s": None, "drain_timeout_s": 5.0, "final_metrics": {"exports_active": 1.0}},
            "API idle after the load",
        ),
        (
            [result(0, Behaviour.NORMAL, Outcome.COMPLETED, received=SIZE, rows=1000)],
            {"api_threads": (3, 40)},
            "no leaked API threads",
        ),
        (
            [result(0, Behaviour.NORMAL, Outcome.COMPLETED, received=SIZE, rows=1000)],
            {"db_connections_settled": False},
            "no leaked database connections",
        ),
    ],
)
def test_what_must_never_happen_fails_the_run(
    results: list[Result], fields: dict[str, object], failed: str
) -> None:
    report = build_report(measurements(results, **fields), estimate_per_row=77)
    verdicts = checks_of(report)
    assert verdicts[failed] is False
    assert not report["ok"]
    assert [name for name, ok in verdicts.items() if ok is False] == [failed]


def test_the_report_names_the_report_its_parameters_and_the_rows_expected() -> None:
    sales = ReportQuery("sales", (("from", "2024-01-01"), ("to", "2024-01-10"), ("region", "East")))
    orders = sum(1 for _ in sales_data.orders(dt.date(2024, 1, 1), dt.date(2024, 1, 10), "East"))
    m = measurements([result(0, Behaviour.NORMAL, Outcome.COMPLETED, received=SIZE)])
    m.report, m.expected = sales, expectation(sales)
    report = build_report(m, estimate_per_row=50)
    rows = f"{orders + 1} rows (Orders {orders}, Summary by region 1)"
    assert report["expected"] == {
        "report": "sales",
        "params": {"from": "2024-01-01", "to": "2024-01-10", "region": "East"},
        "rows": orders + 1,
        "sheets": {"Orders": orders, "Summary by region": 1},
        "summary": f"report sales (from=2024-01-01, to=2024-01-10, region=East): {rows}",
    }
    lines = render(report).splitlines()
    assert f"report sales (from=2024-01-01, to=2024-01-10, region=East): {rows} each" in lines
    default = build_report(measurements([]), estimate_per_row=77)
    assert "report report (rowCount=1000): 1,000 rows each" in render(default).splitlines()


def test_unanswered_attentions_fail_the_cancel_check() -> None:
    results = [
        result(0, Behaviour.NORMAL, Outcome.COMPLETED, received=SIZE, rows=1000),
        result(1, Behaviour.ABORT, Outcome.ABORTED, received=10, phase=AbortPhase.IN_BODY),
    ]
    after = {**stats(1), "attentions_answered": 0}
    report = build_report(
        measurements(results, db_before=stats(0), db_after=after), estimate_per_row=77
    )
    assert checks_of(report)["aborts cancelled their queries"] is False


def test_metrics_text_is_parsed_with_labels() -> None:
    text = (
        "# HELP exports_active Exports in progress.\n"
        "# TYPE exports_active gauge\n"
        "exports_active 3\n"
        'db_pool_connections{state="in_use"} 2\n'
        'export_duration_seconds_bucket{le="+Inf"} 7\n'
    )
    assert parse_metrics(text) == {
        "exports_active": 3.0,
        'db_pool_connections{state="in_use"}': 2.0,
        'export_duration_seconds_bucket{le="+Inf"}': 7.0,
    }
