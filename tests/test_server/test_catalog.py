"""The report catalog alone: every parameter type with valid, invalid and missing values; the
rules between parameters; every way a catalog file can be wrong, refused whole with the file,
report, key and reason; the description /reports serves."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import textwrap
import tomllib
from pathlib import Path

import pytest

from server.catalog import (
    DEFAULT_ROW_LIMIT,
    CatalogError,
    Report,
    ReportCall,
    builtin_catalog,
    load_catalog,
    parse_catalog,
)
from server.errors import ExportError
from server.params import from_wire
from sql import sales_data


def report_with(parameter: str, *, rules: str = "", extra: str = "") -> Report:
    """A one-report catalog whose parameters are ``parameter`` (TOML tables)."""
    text = f"""
        [[reports]]
        id = "r"
        title = "R"
        procedure = "dbo.spEcho"
        {extra}
        {parameter}
        {rules}
    """
    return parse_catalog(tomllib.loads(textwrap.dedent(text)), "test.toml").reports["r"]


def one(type_line: str, more: str = "") -> Report:
    return report_with(f'[[reports.parameters]]\nname = "p"\n{type_line}\n{more}')


def bound(report: Report, query: dict[str, list[str]]) -> dict[str, object]:
    call = report.bind(query)
    return {name: from_wire(decl, text) for name, decl, text in call.arguments}


# (type line, extra keys, accepted text -> value, refused texts)
TYPES = [
    (
        'type = "int"',
        "min = -5\nmax = 1000",
        {"0": 0, "-5": -5, "1000": 1000, "007": 7},
        ["", "1001", "-6", "+1", " 1", "1.0", "1e2", "0x1", "١", "abc", "9" * 50],
    ),
    (
        'type = "bigint"',
        "",
        {"9223372036854775807": 2**63 - 1, "-9223372036854775808": -(2**63)},
        ["9223372036854775808", "-9223372036854775809", "", "1_0"],
    ),
    (
        'type = "decimal(6,2)"',
        'min = "-100.00"\nmax = "9999.99"',
        {
            "12.5": decimal.Decimal("12.5"),
            "-100": decimal.Decimal("-100"),
            "0.01": decimal.Decimal("0.01"),
        },
        ["1.234", "10000", "-100.01", "1e2", "NaN", "", ".5", "5.", "+1"],
    ),
    (
        'type = "bit"',
        "",
        {"true": True, "false": False, "1": True, "0": False},
        ["", "yes", "TRUE", "2"],
    ),
    (
        'type = "date"',
        "min = 2020-01-01\nmax = 2030-12-31",
        {"2024-02-29": dt.date(2024, 2, 29), "2020-01-01": dt.date(2020, 1, 1)},
        ["2023-02-29", "2019-12-31", "2031-01-01", "2024-1-1", "20240101", "", "2024-01-01T00:00"],
    ),
    (
        'type = "datetime2"',
        'min = "2020-01-01T00:00:00"',
        {
            "2024-02-29T13:37": dt.datetime(2024, 2, 29, 13, 37),
            "2024-02-29 13:37:42.123456": dt.datetime(2024, 2, 29, 13, 37, 42, 123456),
        },
        [
            "2019-12-31T23:59:59",
            "2024-02-29T25:00",
            "2024-02-29T13:37:42.1234567",
            "2024-02-29",
            "",
        ],
    ),
    (
        'type = "nvarchar(5)"',
        "",
        {"": "", "abcde": "abcde", "'; --": "'; --", "a\x00b": "a\x00b", "😀😀": "😀😀"},
        ["abcdef", "😀😀😀"],  # a non-BMP character is two UTF-16 units, as SQL Server counts
    ),
    (
        'type = "enum"',
        'values = ["North", "South"]',
        {"North": "North", "South": "South"},
        ["north", "", "West", "North "],
    ),
]


@pytest.mark.parametrize(("type_line", "more", "good", "bad"), TYPES, ids=lambda v: str(v)[:20])
def test_each_type_accepts_its_values_and_refuses_the_rest_without_echoing_them(
    type_line: str, more: str, good: dict[str, object], bad: list[str]
) -> None:
    report = one(type_line, more)
    for text, value in good.items():
        assert bound(report, {"p": [text]}) == {"@p": value}, text
    for text in bad:
        with pytest.raises(ExportError) as caught:
            report.bind({"p": [text]})
        assert (caught.value.status, caught.value.code) == (400, "INVALID_PARAMETER"), text
        assert caught.value.message.startswith("p must be "), caught.value.message
        if len(text) > 3:
            assert text not in caught.value.message


@pytest.mark.parametrize(("type_line", "more", "good", "bad"), TYPES, ids=lambda v: str(v)[:20])
def test_a_missing_required_parameter_is_missing_and_an_optional_one_is_not_sent(
    type_line: str, more: str, good: dict[str, object], bad: list[str]
) -> None:
    required = one(type_line, more + "\nrequired = true")
    with pytest.raises(ExportError) as caught:
        required.bind({})
    assert (caught.value.status, caught.value.code, caught.value.message) == (
        400,
        "MISSING_PARAMETER",
        "p is required",
    )
    assert bound(one(type_line, more), {}) == {}  # the procedure's own default applies


def test_a_default_is_sent_when_the_value_is_absent() -> None:
    assert bound(one('type = "int"', "default = 7"), {}) == {"@p": 7}
    assert bound(one('type = "date"', "default = 2024-01-31"), {}) == {"@p": dt.date(2024, 1, 31)}
    assert bound(one('type = "decimal(4,1)"', 'default = "1.5"'), {}) == {
        "@p": decimal.Decimal("1.5")
    }
    assert bound(one('type = "enum"', 'values = ["a", "b"]\ndefault = "b"'), {}) == {"@p": "b"}


def test_typed_declarations_follow_the_catalog() -> None:
    call = one('type = "decimal(18,4)"').bind({"p": ["1.5"]})
    assert call.arguments == (("@p", "DECIMAL(18,4)", "1.5"),)
    call = one('type = "enum"', 'values = ["a", "bbb"]').bind({"p": ["a"]})
    assert call.arguments == (("@p", "NVARCHAR(3)", "a"),)
    call = one('type = "nvarchar(40)"', 'sql_name = "@Other"').bind({"p": ["x"]})
    assert call.arguments == (("@Other", "NVARCHAR(40)", "x"),)


def test_unknown_and_repeated_names_are_refused_first() -> None:
    report = report_with(
        '[[reports.parameters]]\nname = "a"\ntype = "int"\nrequired = true\n'
        '[[reports.parameters]]\nname = "b"\ntype = "int"'
    )
    with pytest.raises(ExportError) as caught:
        report.bind({"a": ["x"], "zz": ["1"]})  # unknown beats invalid
    assert caught.value.code == "UNKNOWN_PARAMETER"
    assert caught.value.message == (
        "unknown query parameter; the accepted parameters are: a, b (names are case-sensitive)"
    )
    with pytest.raises(ExportError, match="a must be given at most once"):
        report.bind({"a": ["1", "1"]})
    with pytest.raises(ExportError, match="this report takes no parameters"):
        report_with("").bind({"x": ["1"]})


def test_an_order_rule_refuses_a_reversed_range_and_accepts_equal_ends() -> None:
    parameters = (
        '[[reports.parameters]]\nname = "from"\ntype = "date"\n'
        '[[reports.parameters]]\nname = "to"\ntype = "date"\n'
    )
    report = report_with(
        parameters, rules='[[reports.rules]]\nkind = "order"\nfirst = "from"\nsecond = "to"'
    )
    assert bound(report, {"from": ["2024-01-01"], "to": ["2024-01-01"]})
    assert bound(report, {"from": ["2024-01-02"]}) == {"@from": dt.date(2024, 1, 2)}
    with pytest.raises(ExportError) as caught:
        report.bind({"from": ["2024-01-02"], "to": ["2024-01-01"]})
    assert (caught.value.code, caught.value.message) == (
        "INVALID_PARAMETER",
        "from must not be after to",
    )


def test_a_span_rule_refuses_a_range_longer_than_its_days_before_any_database_work() -> None:
    parameters = (
        '[[reports.parameters]]\nname = "from"\ntype = "date"\n'
        '[[reports.parameters]]\nname = "to"\ntype = "date"\n'
    )
    rule = '[[reports.rules]]\nkind = "span"\nfirst = "from"\nsecond = "to"\nmax_days = 31'
    report = report_with(parameters, rules=rule)
    assert bound(report, {"from": ["2024-01-01"], "to": ["2024-01-31"]})  # 31 days, both ends
    with pytest.raises(ExportError) as caught:
        report.bind({"from": ["2024-01-01"], "to": ["2024-02-01"]})
    assert (caught.value.code, caught.value.message) == (
        "INVALID_PARAMETER",
        "from to to must not span more than 31 days",
    )
    assert report.to_json()["rules"] == [
        {
            "kind": "span",
            "first": "from",
            "second": "to",
            "maxDays": 31,
            "message": "from to to must not span more than 31 days",
        }
    ]
    # The sales report's span is the procedure's own limit.
    sales = builtin_catalog().reports["sales"]
    (span,) = [r for r in sales.rules if r.kind == "span"]
    assert span.max_days == sales_data.MAX_DAYS


def test_the_demo_report_keeps_its_row_count_contract() -> None:
    demo = builtin_catalog(default_row_count=30_000, max_row_count=1_048_576).reports["report"]
    assert bound(demo, {}) == {"@RowCount": 30_000}
    with pytest.raises(ExportError) as caught:
        demo.bind({"rowCount": ["0"]})
    assert (caught.value.code, caught.value.message) == (
        "INVALID_ROW_COUNT",
        "rowCount must be a whole number from 1 to 1,048,576",
    )
    configured = builtin_catalog(procedure="dbo.spOther", max_row_count=5, default_row_count=2)
    call = configured.reports["report"].bind({})
    assert (call.procedure, call.arguments) == ("dbo.spOther", (("@RowCount", "INT", "2"),))


def test_the_example_catalog_file_is_the_built_in_one() -> None:
    example = load_catalog(Path(__file__).parents[2] / "sql" / "catalog.toml")
    assert example.to_json() == builtin_catalog().to_json()
    assert list(example.reports) == ["report", "sales"]


def test_a_call_survives_the_trip_to_the_worker() -> None:
    sales = builtin_catalog().reports["sales"]
    call = sales.bind({"from": ["2024-01-01"], "to": ["2024-03-31"], "region": ["East"]})
    again = ReportCall.from_json(json.loads(json.dumps(call.to_json())))
    assert again == call
    assert again.bound_values() == {
        "@From": ("DATE", dt.date(2024, 1, 1)),
        "@To": ("DATE", dt.date(2024, 3, 31)),
        "@Region": ("NVARCHAR(7)", "East"),
    }
    assert [again.sheet_name(i) for i in range(4)] == [
        "Orders",
        "Summary by region",
        "Sales orders",
        "Sales orders",
    ]


def test_the_description_for_the_page_and_scripts() -> None:
    described = {r["id"]: r for r in builtin_catalog().to_json()["reports"]}
    sales = described["sales"]
    assert sales["parameters"][0] == {
        "name": "from",
        "type": "date",
        "label": "From",
        "help": "The first order date included.",
        "required": True,
        "min": "2020-01-01",
        "max": "2039-12-31",
    }
    assert sales["parameters"][2]["values"] == ["Central", "East", "North", "South", "West"]
    assert sales["rules"] == [
        {"kind": "order", "first": "from", "second": "to", "message": "from must not be after to"},
        {
            "kind": "span",
            "first": "from",
            "second": "to",
            "maxDays": 3660,
            "message": "from to to must not span more than 3,660 days (about ten years)",
        },
    ]
    assert sales["sheets"] == ["Orders", "Summary by region"]
    assert sales["rowLimit"] == DEFAULT_ROW_LIMIT
    # The demo report returns rowCount rows; the sales report's count is not known ahead.
    assert described["report"]["rowCountParameter"] == "rowCount"
    assert sales["rowCountParameter"] is None
    big = one('type = "bigint"', "max = 9007199254740993").to_json()["parameters"][0]
    assert big["max"] == "9007199254740993"  # beyond a JavaScript number's exact integers
    assert one('type = "decimal(9,3)"').to_json()["parameters"][0]["scale"] == 3
    assert (
        one('type = "nvarchar(40)"', "max_length = 10").to_json()["parameters"][0]["maxLength"]
        == 10
    )


# The start of a report, and of one of its parameters, in the bad catalogs below.
R = 'id = "r"\ntitle = "R"\nprocedure = "dbo.p"\n'
P = R + '[[reports.parameters]]\nname = "a"\n'
# (TOML of the report's body, the key named in the error, words of the reason)
BAD_REPORTS = [
    (R + 'colour = "red"', "report 'r'.colour", "unknown key"),
    ('id = "R!"\ntitle = "R"\nprocedure = "dbo.p"', ".id", "must match"),
    ('id = "ticket"\ntitle = "R"\nprocedure = "dbo.p"', ".id", "reserved"),
    ('id = "r"\ntitle = 5\nprocedure = "dbo.p"', ".title", "must be a string"),
    ('id = "r"\ntitle = "R"', ".procedure", "is required"),
    ('id = "r"\ntitle = "R"\nprocedure = "p"', ".procedure", "schema-qualified"),
    ('id = "r"\ntitle = "R"\nprocedure = "dbo.p; DROP TABLE x"', ".procedure", "schema-qualified"),
    (R + "row_limit = 0", ".row_limit", "whole number"),
    (R + 'result_sets = "some"', ".result_sets", '"all"'),
    (R + 'filename = "../x"', ".filename", "must match"),
    (
        P + 'type = "int"\n[[reports.parameters]]\nname = "a"\ntype = "int"',
        "parameters[1].name",
        "another parameter has this name",
    ),
    (P + 'type = "money"', "parameters[0].type", "must be one of"),
    (P + 'type = "int"\nmin = 1\nmax = 10\ndefault = 11', "parameters[0].default", "outside"),
    (P + 'type = "int"\ndefault = "seven"', "parameters[0].default", "must be a whole number"),
    (P + 'type = "decimal(5,2)"\nmax = 1.5', "parameters[0].max", "write decimals as strings"),
    (P + 'type = "int"\nrequired = true\ndefault = 1', "parameters[0].default", "has no default"),
    (P + 'type = "enum"', "parameters[0].values", "needs its values"),
    (P + 'type = "nvarchar(5000)"', "parameters[0].type", "nvarchar(n) needs"),
    (P + 'type = "bit"\nmin = 0', "parameters[0].min", "bit has no bounds"),
    (
        P + 'type = "int"\n[[reports.rules]]\nkind = "order"\nfirst = "a"\nsecond = "b"',
        "rules[0].second",
        "names no parameter",
    ),
    (
        P + 'type = "int"\n[[reports.parameters]]\nname = "b"\ntype = "int"\n'
        '[[reports.rules]]\nkind = "span"\nfirst = "a"\nsecond = "b"\nmax_days = 3',
        "rules[0].first",
        "a span is between two dates",
    ),
    (
        P + 'type = "date"\n[[reports.parameters]]\nname = "b"\ntype = "date"\n'
        '[[reports.rules]]\nkind = "order"\nfirst = "a"\nsecond = "b"\nmax_days = 3',
        "rules[0].max_days",
        "only a span has max_days",
    ),
    (R + '[[reports.sheets]]\nname = "a/b"', "sheets[0].name", "invalid sheet name"),
    (R + 'row_count_parameter = "n"', ".row_count_parameter", "names no parameter"),
    (
        'id = "r"\ntitle = "R"\nprocedure = "dbo.p"\nrow_count_parameter = "a"\n'
        '[[reports.parameters]]\nname = "a"\ntype = "date"',
        ".row_count_parameter",
        "int or bigint",
    ),
    (R + '[[reports.sheets]]\nname = "A"\n[[reports.sheets]]\nname = "a"', ".sheets", "same name"),
    (R + "[[reports.sheets]]\ncolumns.X.width = 300", "sheets[0].columns.X.width", "0 to 255"),
    (R + '[[reports.sheets]]\ncolumns.X.number_format = ""', "columns.X.number_format", ""),
]


@pytest.mark.parametrize(("body", "key", "reason"), BAD_REPORTS)
def test_a_bad_catalog_names_the_file_report_key_and_reason(
    tmp_path: Path, body: str, key: str, reason: str
) -> None:
    path = tmp_path / "catalog.toml"
    path.write_text("[[reports]]\n" + body + "\n", encoding="utf-8")
    with pytest.raises(CatalogError) as caught:
        load_catalog(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: "), message
    assert key in message, message
    assert reason in message, message


def test_duplicate_ids_an_empty_catalog_and_broken_toml_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "catalog.toml"
    report = '[[reports]]\nid = "r"\ntitle = "R"\nprocedure = "dbo.p"\n'
    path.write_text(report + report)
    with pytest.raises(CatalogError, match=r"report 'r'\.id: another report has this id"):
        load_catalog(path)
    path.write_text("")
    with pytest.raises(CatalogError, match="the catalog has no report"):
        load_catalog(path)
    path.write_text("[[reports]\n")
    with pytest.raises(CatalogError, match="not valid TOML"):
        load_catalog(path)
    with pytest.raises(CatalogError, match="cannot read the catalog"):
        load_catalog(tmp_path / "missing.toml")
