"""Which report a run downloads, with which parameters, from which path: --report and --param
on the command line (valid, invalid, given twice), the query string as sent, the paths of the
API and the BFF, and the requests a report must refuse (--bad-share)."""

from __future__ import annotations

from urllib.parse import parse_qsl

import pytest

from tests.load import options, reports
from tests.load.__main__ import main
from tests.load.errors import LoadError
from tests.load.plan import AbortRange, Behaviour, Shares, make_plan
from tests.load.reports import (
    BAD_DATES,
    BAD_REGIONS,
    BAD_ROW_COUNTS,
    INVALID_PARAMETER,
    INVALID_ROW_COUNT,
    UNKNOWN_NAMES,
    UNKNOWN_PARAMETER,
    ReportQuery,
    encode_query,
    export_path,
)

SALES_ARGS = ["--report", "sales", "--param", "from=2024-01-01", "--param", "to=2024-01-31"]
SALES = ReportQuery("sales", (("from", "2024-01-01"), ("to", "2024-01-31")))


def test_the_default_report_is_asked_for_by_rows() -> None:
    assert options.parse([]).report == ReportQuery("report", (("rowCount", "30000"),))
    assert options.parse(["--rows", "5"]).report == ReportQuery("report", (("rowCount", "5"),))
    by_param = options.parse(["--param", "rowCount=7"])
    assert by_param.report == ReportQuery("report", (("rowCount", "7"),))
    # A scenario's rows are a default, which an explicit --param rowCount overrides.
    smoke = options.parse(["--scenario", "smoke", "--param", "rowCount=9"])
    assert smoke.report.params == (("rowCount", "9"),)
    assert options.parse(["--scenario", "smoke"]).report.params == (("rowCount", "20000"),)


def test_another_report_sends_its_parameters_in_the_given_order() -> None:
    given = ["to=2024-03-31", "region=East", "from=2024-01-01"]
    config = options.parse(["--report", "sales", *(a for p in given for a in ("--param", p))])
    assert config.report == ReportQuery(
        "sales", (("to", "2024-03-31"), ("region", "East"), ("from", "2024-01-01"))
    )
    assert config.report.query_string() == "to=2024-03-31&region=East&from=2024-01-01"
    assert config.for_json()["report"] == "sales"
    assert config.for_json()["params"] == {
        "to": "2024-03-31",
        "region": "East",
        "from": "2024-01-01",
    }
    # A scenario's rows do not apply to it.
    assert options.parse(["--scenario", "smoke", *SALES_ARGS]).report == SALES


def test_names_and_values_are_percent_encoded_exactly_as_given() -> None:
    query = encode_query([("a b", "x&y=z"), ("é", ""), ("n", "\uff15 /?#+")])
    assert query == "a%20b=x%26y%3Dz&%C3%A9=&n=%EF%BC%95%20%2F%3F%23%2B"
    assert parse_qsl(query, keep_blank_values=True) == [
        ("a b", "x&y=z"),
        ("é", ""),
        ("n", "\uff15 /?#+"),  # "+" sent as %2B: a literal "+" would read as a space
    ]


@pytest.mark.parametrize(
    ("target", "report", "path"),
    [
        ("bff", "report", "/exports/report"),
        ("api", "report", "/export/report"),
        ("bff", "sales", "/exports/sales"),
        ("api", "sales", "/export/sales"),
        ("api", "a/b c", "/export/a%2Fb%20c"),
    ],
)
def test_the_download_path_of_a_report(target: str, report: str, path: str) -> None:
    assert export_path(target, report) == path


@pytest.mark.parametrize("target", ["bff", "api"])
def test_a_run_downloads_from_its_reports_path(target: str) -> None:
    config = options.parse(["--target", target, *SALES_ARGS])
    assert config.path == export_path(target, "sales")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--param", "novalue"], "argument --param: expected NAME=VALUE"),
        (["--param", "=2024-01-01"], "argument --param: expected NAME=VALUE"),
        (["--report", "nosuch"], "argument --report: invalid choice: 'nosuch'"),
    ],
)
def test_malformed_options_are_usage_errors(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        options.parse(args)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([*SALES_ARGS, "--param", "from=2024-01-02"], "--param from is given more than once"),
        (["--param", "rowCount=5", "--param", "rowCount=5"], "rowCount is given more than once"),
        (["--rows", "5", "--param", "rowCount=6"], "--rows and --param rowCount say the same"),
        (["--param", "rowCount=abc"], "rowCount must be a whole number of at least 1"),
        (["--param", "rows=5"], "report 'report' takes rowCount; not rows"),
        ([*SALES_ARGS, "--rows", "5"], "--rows is the 'report' report's rowCount"),
        (["--report", "sales", "--param", "to=2024-01-31"], "needs --param from=YYYY-MM-DD"),
        ([*SALES_ARGS[:4], "--param", "to=2024-02-30"], "to must be a date YYYY-MM-DD"),
        ([*SALES_ARGS, "--param", "region=Atlantis"], "region must be one of Central, East"),
        ([*SALES_ARGS, "--param", "Region=East"], "takes from, to, region; not Region"),
        (
            ["--report", "sales", "--param", "from=2024-02-01", "--param", "to=2024-01-01"],
            "@From must not be after @To",
        ),
    ],
)
def test_parameters_the_api_would_refuse_are_usage_errors(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(LoadError, match=message):
        options.parse(args)
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_sheets_xml_is_parsed_unless_a_scenario_or_the_option_says_not() -> None:
    assert options.parse([]).xml_check
    assert not options.parse(["--no-xml-check"]).xml_check
    assert not options.parse(["--scenario", "smoke"]).xml_check
    assert options.parse(["--scenario", "smoke", "--xml-check"]).xml_check


def test_a_value_may_hold_an_equals_sign_and_be_empty() -> None:
    assert options.build_parser().parse_args(["--param", "a==b", "--param", "c="]).params == [
        ("a", "=b"),
        ("c", ""),
    ]


def test_the_default_report_refuses_only_bad_row_counts_with_its_own_code() -> None:
    bad = reports.bad_requests(ReportQuery("report", (("rowCount", "100"),)))
    assert [(b.query, b.code) for b in bad] == [
        (encode_query([("rowCount", value)]), INVALID_ROW_COUNT) for value in BAD_ROW_COUNTS
    ]


def test_sales_refuses_a_bad_value_of_each_given_parameter_or_an_unknown_name() -> None:
    query = ReportQuery("sales", (*SALES.params, ("region", "East")))
    sent = [
        (parse_qsl(b.query, keep_blank_values=True), b.code) for b in reports.bad_requests(query)
    ]
    good = list(query.params)
    invalid = [pairs for pairs, code in sent if code == INVALID_PARAMETER]
    unknown = [pairs for pairs, code in sent if code == UNKNOWN_PARAMETER]
    assert len(sent) == len(invalid) + len(unknown)
    # Each invalid variant changes one value, in its place; one swaps from and to.
    changed = [
        [(name, value) for (name, value), was in zip(pairs, good, strict=True) if value != was[1]]
        for pairs in invalid
    ]
    assert [c for c in changed if len(c) == 1] == [
        *([("from", v)] for v in BAD_DATES),
        *([("to", v)] for v in BAD_DATES),
        *([("region", v)] for v in BAD_REGIONS),
    ]
    assert [c for c in changed if len(c) == 2] == [[("from", "2024-01-31"), ("to", "2024-01-01")]]
    # Each unknown variant adds one name the report does not take.
    assert [pairs[:-1] for pairs in unknown] == [good] * len(UNKNOWN_NAMES)
    assert [pairs[-1][0] for pairs in unknown] == list(UNKNOWN_NAMES)
    # Every one of them is refused by the harness's own reading of the contract as well.
    for pairs, _ in sent:
        with pytest.raises(LoadError):
            reports.resolve("sales", pairs, None)


def test_a_plan_for_sales_sends_its_query_and_refusals_with_their_codes() -> None:
    plan = make_plan(
        requests=40,
        query=SALES.query_string(),
        bad=reports.bad_requests(SALES),
        shares=Shares(bad=0.5),
        aborts=AbortRange(),
        expected_size=1000,
        seed=3,
    )
    bad = [r for r in plan if r.behaviour is Behaviour.BAD]
    assert len(bad) == 20
    assert {r.refusal for r in bad} == {INVALID_PARAMETER, UNKNOWN_PARAMETER}
    assert all(r.query != SALES.query_string() for r in bad)
    assert {r.query for r in plan if r.behaviour is not Behaviour.BAD} == {SALES.query_string()}
