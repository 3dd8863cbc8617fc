"""Both demo reports of the built-in catalog through the whole stack (dev database, API, BFF) with
the real curl: the catalog listed, the sales report's two sheets read back by openpyxl,
python-calamine and LibreOffice with the rows sql.sales_data defines, its errors relayed."""

from __future__ import annotations

import datetime as dt
import io
import json
from pathlib import Path

import openpyxl
import pytest
from python_calamine import CalamineWorkbook

from sql import sales_data
from tests.e2e.conftest import Chain
from tests.e2e.test_curl import curl
from tests.libreoffice import libreoffice_sheets

START, END, REGION = dt.date(2024, 2, 1), dt.date(2024, 3, 31), "East"


def test_the_catalog_lists_both_demo_reports_through_the_bff(chain: Chain) -> None:
    done = curl("-f", f"{chain.bff.url}/reports")
    assert done.returncode == 0, done.stderr
    reports = {r["id"]: r for r in json.loads(done.stdout)["reports"]}
    assert list(reports) == ["report", "sales"]
    assert [p["name"] for p in reports["sales"]["parameters"]] == ["from", "to", "region"]


@pytest.mark.parametrize("region", [None, REGION])
def test_the_sales_report_is_two_sheets_every_reader_agrees_on(
    chain: Chain, tmp_path: Path, region: str | None
) -> None:
    target = tmp_path / "sales.xlsx"
    query = f"from={START}&to={END}" + (f"&region={region}" if region else "")
    done = curl("-f", "-o", str(target), "-D", "-", f"{chain.bff.url}/exports/sales?{query}")
    assert done.returncode == 0, done.stderr
    assert 'filename="sales-' in done.stdout.decode().lower()
    data = target.read_bytes()
    orders = list(sales_data.orders(START, END, region))
    summary = sales_data.summary(START, END, region)
    assert len(orders) > 400  # several TDS packets of rows
    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
    assert book.sheetnames == ["Orders", "Summary by region"]
    got_orders = list(book["Orders"].iter_rows(values_only=True))
    got_summary = list(book["Summary by region"].iter_rows(values_only=True))
    book.close()
    assert got_orders[0] == (
        "Order",
        "Date",
        "Region",
        "Customer",
        "Quantity",
        "Unit price",
        "Amount",
    )
    assert got_summary[0] == ("Region", "Orders", "Quantity", "Amount")
    assert [
        (oid, day.date(), reg, customer, qty, price, amount)
        for oid, day, reg, customer, qty, price, amount in got_orders[1:]
    ] == [(*row[:5], float(row[5]), float(row[6])) for row in orders]
    assert got_summary[1:] == [(r, n, q, float(a)) for r, n, q, a in summary]
    calamine = CalamineWorkbook.from_filelike(io.BytesIO(data))
    assert calamine.sheet_names == ["Orders", "Summary by region"]
    assert len(calamine.get_sheet_by_name("Orders").to_python()) == 1 + len(orders)
    office = libreoffice_sheets(data)
    assert set(office) == {"Orders", "Summary by region"}
    assert len(office["Orders"]) == 1 + len(orders)
    first = office["Orders"][1]
    assert (first[0], first[2], first[3]) == (str(orders[0][0]), orders[0][2], orders[0][3])
    assert [row[0] for row in office["Summary by region"][1:]] == [r[0] for r in summary]
    assert [int(row[1]) for row in office["Summary by region"][1:]] == [r[1] for r in summary]


@pytest.mark.parametrize(
    ("query", "code"),
    [
        (f"from={END}&to={START}", "INVALID_PARAMETER"),
        (f"from={START}", "MISSING_PARAMETER"),
        (f"from={START}&to={END}&region=Mars", "INVALID_PARAMETER"),
        (f"from={START}&to={END}&colour=red", "UNKNOWN_PARAMETER"),
    ],
)
def test_a_bad_sales_query_is_the_api_400_relayed(chain: Chain, query: str, code: str) -> None:
    done = curl("-D", "-", f"{chain.bff.url}/exports/sales?{query}")
    head, _, body = done.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400")
    assert json.loads(body)["error"]["code"] == code


def test_an_unknown_report_is_404(chain: Chain) -> None:
    done = curl("-D", "-", f"{chain.bff.url}/exports/no-such-report")
    head, _, body = done.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 404")
    assert json.loads(body)["error"]["code"] == "UNKNOWN_REPORT"
