"""A download against what its report must hold: rows per logical sheet over its rollover
sheets, header widths, the first and last rows' values; and the expectation itself, from the
report and its parameters (sql.report_data, sql.sales_data)."""

from __future__ import annotations

import datetime as dt
import decimal
import re

import pytest

from sql import report_data, sales_data
from tests.load.errors import InvalidDownload
from tests.load.expect import (
    Expectation,
    SheetExpectation,
    cell_problem,
    check_download,
    group_sheets,
)
from tests.load.reports import ORDERS_SHEET, SUMMARY_SHEET, ReportQuery, expectation
from tests.load.sheets import Cell
from tests.load.test_verify import (
    SALES_FROM,
    SALES_TO,
    rezip,
    sales_workbook,
    without_row,
    workbook,
)
from tests.load.verify import SheetVerdict, check_bytes

SALES = ReportQuery("sales", (("from", SALES_FROM.isoformat()), ("to", SALES_TO.isoformat())))


def test_the_expected_rows_come_from_the_report_and_its_parameters() -> None:
    every = expectation(SALES)
    east = expectation(ReportQuery("sales", (*SALES.params, ("region", "East"))))
    orders = list(sales_data.orders(SALES_FROM, SALES_TO))
    east_orders = list(sales_data.orders(SALES_FROM, SALES_TO, "East"))
    assert every.for_json() == {ORDERS_SHEET: len(orders), SUMMARY_SHEET: 5}
    assert east.for_json() == {ORDERS_SHEET: len(east_orders), SUMMARY_SHEET: 1}
    assert 0 < len(east_orders) < len(orders)
    assert every.sheets[0].first_row == orders[0]
    assert every.sheets[0].last_row == orders[-1]
    assert east.sheets[1].first_row == sales_data.summary(SALES_FROM, SALES_TO, "East")[0]
    assert every.describe() == f"{len(orders) + 5:,} rows ({ORDERS_SHEET} 400, {SUMMARY_SHEET} 5)"
    report = expectation(ReportQuery("report", (("rowCount", "1234"),)))
    assert report.data_rows == 1234
    assert report.sheets[0].last_row == report_data.row_values(1234)
    assert report.describe() == "1,234 rows"


def test_a_sales_download_with_rollover_holds_what_the_report_says() -> None:
    book = sales_workbook(SALES_FROM, SALES_TO, max_rows_per_sheet=150)
    check_download(check_bytes(book), expectation(SALES))  # no exception
    # The same workbook is not what a narrower query asks for.
    east = expectation(ReportQuery("sales", (*SALES.params, ("region", "East"))))
    with pytest.raises(InvalidDownload, match=r"sheet 'Orders': 400 data rows over 3 sheets"):
        check_download(check_bytes(book), east)


def test_one_sheet_short_of_rows_fails_and_says_which() -> None:
    book = sales_workbook(SALES_FROM, SALES_TO, max_rows_per_sheet=150)
    # The summary loses its last row: still a valid workbook, rows still numbered 1, 2, 3...
    short = rezip(book, "xl/worksheets/sheet4.xml", without_row(6))
    verdict = check_bytes(short)
    with pytest.raises(
        InvalidDownload, match=r"sheet 'Summary by region': 4 data rows, 5 expected"
    ):
        check_download(verdict, expectation(SALES))
    # The last rollover sheet of the orders loses its last row.
    short = rezip(book, "xl/worksheets/sheet3.xml", without_row(103))
    with pytest.raises(InvalidDownload, match=r"'Orders': 399 data rows over 3 sheets, 400 exp"):
        check_download(check_bytes(short), expectation(SALES))


def test_a_wrong_value_in_a_first_or_last_row_fails() -> None:
    book = sales_workbook(SALES_FROM, SALES_TO)
    first_id = next(sales_data.orders(SALES_FROM, SALES_TO))[0]

    def other_first_id(xml: bytes) -> bytes:
        return xml.replace(b"<v>%d</v>" % first_id, b"<v>%d</v>" % (first_id + 1), 1)

    wrong = check_bytes(rezip(book, "xl/worksheets/sheet1.xml", other_first_id))
    with pytest.raises(InvalidDownload, match=rf"'Orders' row 2 column 1: n '{first_id + 1}'"):
        check_download(wrong, expectation(SALES))

    def other_last_region(xml: bytes) -> bytes:
        return re.sub(rb"<t>West</t>", b"<t>Wes</t>", xml)

    wrong = check_bytes(rezip(book, "xl/worksheets/sheet2.xml", other_last_region))
    with pytest.raises(InvalidDownload, match=r"'Summary by region' row 6 column 1: inlineStr"):
        check_download(wrong, expectation(SALES))


def test_a_header_of_another_width_fails() -> None:
    book = workbook(20)
    report = expectation(ReportQuery("report", (("rowCount", "20"),)))
    check_download(check_bytes(book), report)
    narrower = Expectation((SheetExpectation("Report", 20, len(report_data.COLUMNS) - 1),))
    with pytest.raises(InvalidDownload, match="10 header cells, 9 columns expected"):
        check_download(check_bytes(book), narrower)


def sheet(name: str) -> SheetVerdict:
    return SheetVerdict(name, "xl/worksheets/sheet1.xml", 2, 1, None, None)


def test_rollover_sheets_are_grouped_under_their_sheet_by_the_writers_names() -> None:
    names = ["Orders", "Orders (2)", "Orders (3)", "Summary by region", "Summary by region (2)"]
    groups = group_sheets([sheet(n) for n in names], ["Orders", "Summary by region"])
    assert [[s.name for s in group] for group in groups] == [names[:3], names[3:]]
    # A 31-character name is cut to make room for " (2)", as the writer does.
    long = "A" * 31
    groups = group_sheets([sheet(long), sheet("A" * 27 + " (2)")], [long])
    assert len(groups[0]) == 2


@pytest.mark.parametrize(
    ("found", "message"),
    [
        (["Summary by region", "Orders"], "expected 'Orders' as sheet 1"),
        (["Orders", "Orders (3)", "Summary by region"], "expected 'Summary by region' as sheet 2"),
        (["Orders"], "expected 'Summary by region' as sheet 2"),
        (["Orders", "Summary by region", "Notes"], "unexpected sheet 'Notes'"),
    ],
)
def test_sheets_missing_out_of_order_or_extra_fail(found: list[str], message: str) -> None:
    with pytest.raises(InvalidDownload, match=message):
        group_sheets([sheet(n) for n in found], ["Orders", "Summary by region"])


def cell(kind: str, text: str | None) -> Cell:
    return Cell(0, kind, text)


@pytest.mark.parametrize(
    ("value", "good", "bad"),
    [
        (None, None, cell("n", "1")),
        (42, cell("n", "42"), cell("inlineStr", "42")),
        (2**53 + 1, cell("inlineStr", str(2**53 + 1)), cell("n", str(float(2**53 + 1)))),
        (True, cell("b", "1"), cell("n", "1")),
        (decimal.Decimal("12.50"), cell("n", "12.5"), cell("n", "12.51")),
        (decimal.Decimal(2**60), cell("inlineStr", str(2**60)), cell("n", "1.152921504606847e+18")),
        (1.25, cell("n", "1.25"), cell("n", "1.2")),
        ("Zürich", cell("inlineStr", "Zürich"), cell("inlineStr", "Zurich")),
        (dt.date(2024, 1, 1), cell("n", "45292"), cell("n", "45293")),
        (dt.datetime(2024, 1, 1, 12), cell("n", "45292.5"), cell("n", "45292.51")),
    ],
)
def test_cells_are_compared_by_the_writers_typing_rules(
    value: object, good: Cell | None, bad: Cell
) -> None:
    assert cell_problem(value, good) is None
    assert cell_problem(value, bad) is not None
    if value is not None:
        assert cell_problem(value, None) == f"no cell, expected {value!r}"
