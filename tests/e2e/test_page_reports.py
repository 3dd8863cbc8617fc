"""The page for every report of the catalog, in a real headless Chromium: a form per report,
the choice and values in the link, the API's rules checked before any request, a progress bar
with the rows the API has read, a download broken off by the database, keyboard-only use, an
accessibility check by axe-core, and the screenshots in docs/."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import os
import re
import signal
import struct
import urllib.request
from pathlib import Path
from typing import Any

import openpyxl
from playwright.sync_api import Locator, Page, expect

from scripts.stack import ROOT, start_api, start_bff
from sql import sales_data
from sql.devserver import DevServer, run_in_thread
from tests.e2e.axe import describe, violations
from tests.e2e.chromium import (
    VIEWPORT,
    browser_fixture,  # noqa: F401
    choose,
    fill,
    open_page,
    page_fixture,  # noqa: F401
)
from tests.e2e.conftest import Chain
from tests.e2e.test_curl import data_rows
from tests.polling import poll

START, END, REGION = dt.date(2024, 2, 1), dt.date(2024, 3, 31), "East"
SALES = {"from": START.isoformat(), "to": END.isoformat(), "region": REGION}
# Where the screenshot test leaves its pictures for docs/ (PAGE_SCREENSHOTS=docs); without it,
# in the test's own temporary folder.
SCREENSHOTS_ENV = "PAGE_SCREENSHOTS"
# Records every value the progress bars take and every text their state lines show, from the
# moment it is installed (through the DevTools protocol: the page's own CSP is untouched).
RECORD_PROGRESS = """() => {
    window.seenValues = [];
    window.seenTexts = [];
    new MutationObserver((records) => {
        for (const record of records) {
            const target = record.target;
            if (record.type === "attributes") {
                window.seenValues.push(target.getAttribute("aria-valuenow"));
            } else if (target.classList && target.classList.contains("state")) {
                window.seenTexts.push(target.textContent);
            }
        }
    }).observe(document.getElementById("downloads"), {
        subtree: true, childList: true, attributes: true, attributeFilter: ["aria-valuenow"],
    });
}"""


def _download(page: Page, target: Path) -> Path:
    with page.expect_download() as download_info:
        page.click("#download")
    download = download_info.value
    download.save_as(target)
    assert download.failure() is None
    return target


def test_each_demo_report_downloads_what_its_form_asks_for(
    chain: Chain, page: Page, tmp_path: Path
) -> None:
    open_page(page, f"{chain.bff.url}/")
    choose(page, "report")
    fill(page, {"rowCount": "2500"})
    report = _download(page, tmp_path / "report.xlsx")
    assert data_rows(report) == 2500
    book = openpyxl.load_workbook(report, read_only=True)
    assert book.sheetnames == ["Report"]
    book.close()
    expect(page.locator(".download .state.completed")).to_contain_text("Finished: 2,500 rows")

    choose(page, "sales")
    fill(page, SALES)
    sales = _download(page, tmp_path / "sales.xlsx")
    orders = list(sales_data.orders(START, END, REGION))
    summary = sales_data.summary(START, END, REGION)
    book = openpyxl.load_workbook(io.BytesIO(sales.read_bytes()), read_only=True)
    assert book.sheetnames == ["Orders", "Summary by region"]
    got_orders = list(book["Orders"].iter_rows(values_only=True))
    got_summary = list(book["Summary by region"].iter_rows(values_only=True))
    book.close()
    assert [row[0] for row in got_orders[1:]] == [order[0] for order in orders]
    assert {row[2] for row in got_orders[1:]} == {REGION}
    assert [row[0] for row in got_summary[1:]] == [row[0] for row in summary]
    # The newest download is first; its row count is the API's (every sheet's rows).
    newest = page.locator(".download").first
    rows = len(orders) + len(summary)
    expect(newest.locator(".state.completed")).to_contain_text(f"Finished: {rows:,} rows")
    expect(newest.locator(".download-title")).to_have_text(
        f"Sales orders · From {START} · To {END} · Region {REGION}"
    )


def test_bad_dates_show_the_rule_before_any_request_and_move_nothing(
    chain: Chain, page: Page
) -> None:
    open_page(page, f"{chain.bff.url}/")
    choose(page, "sales")
    button = page.locator("#download")
    before = _place(button)
    button.click()  # nothing filled in
    expect(page.locator("#p-from-error")).to_have_text("from is required")
    expect(page.locator("#p-to-error")).to_have_text("to is required")
    expect(page.locator("#p-from")).to_be_focused()
    expect(page.locator("#form-alert")).to_have_text(
        "Not downloaded: from is required (and 1 more)."
    )
    fill(page, {"from": "2024-03-01", "to": "2024-01-01"})
    button.click()
    expect(page.locator("#p-to-error")).to_have_text("from must not be after to")
    expect(page.locator("#p-from-error")).to_have_text("")
    expect(page.locator("#p-to")).to_have_attribute("aria-invalid", "true")
    fill(page, {"from": "2019-12-31", "to": "2024-01-01"})
    button.click()
    expect(page.locator("#p-from-error")).to_have_text(
        "from must be a date (YYYY-MM-DD) from 2020-01-01 to 2039-12-31"
    )
    expect(page.locator("#p-to-error")).to_have_text("")
    # Messages fill room kept for them: nothing below them moved.
    assert _place(button) == before
    # None of it reached the server.
    log = chain.bff.log_text()
    assert "/exports/ticket" not in log
    assert "/exports/sales" not in log


def _place(element: Locator) -> list[float]:
    """Where an element is in the document (not the viewport: focus may scroll the page)."""
    place: list[float] = element.evaluate(
        """e => { const box = e.getBoundingClientRect();
                  return [box.left + scrollX, box.top + scrollY, box.width, box.height]; }"""
    )
    return place


def test_a_value_the_api_refuses_shows_the_api_message(
    devdb: DevServer, page: Page, tmp_path: Path
) -> None:
    """The API decides: here its catalog changed after the page loaded (reloaded on SIGHUP)."""
    catalog = tmp_path / "catalog.toml"
    text = (ROOT / "sql" / "catalog.toml").read_text(encoding="utf-8")
    catalog.write_text(text, encoding="utf-8")
    api = start_api(0, db_port=devdb.port, env={"API_CATALOG": str(catalog)}, log_dir=tmp_path)
    try:
        bff = start_bff(0, api_url=api.url, log_dir=tmp_path)
        try:
            open_page(page, f"{bff.url}/")
            stricter = text.replace("max = 1_048_576", "max = 500")
            catalog.write_text(stricter.replace("default = 30_000", "default = 300"))
            os.kill(api.pid, signal.SIGHUP)
            poll(lambda: _row_count_max(api.url) == 500, what="the API to reload its catalog")
            page.fill("#p-rowCount", "1000")  # within the bounds the page was given
            page.click("#download")
            message = "rowCount must be a whole number from 1 to 500"
            expect(page.locator("#downloads .state.failed")).to_have_text(
                f"Not downloaded: {message} (HTTP 400)"
            )
            expect(page.locator("#p-rowCount-error")).to_have_text(message)
            expect(page.locator("#p-rowCount")).to_have_attribute("aria-invalid", "true")
        finally:
            bff.stop()
    finally:
        api.stop()


def _row_count_max(api_url: str) -> int:
    with urllib.request.urlopen(f"{api_url}/reports", timeout=10) as response:
        reports = json.loads(response.read())["reports"]
    return int(reports[0]["parameters"][0]["max"])


def test_a_link_opens_the_filled_form_and_the_back_button_returns(chain: Chain, page: Page) -> None:
    base = f"{chain.bff.url}/"
    open_page(page, f"{base}#report=sales&from={START}&to={END}&region={REGION}")
    expect(page.locator("#report-sales")).to_be_checked()
    expect(page.locator("#p-from")).to_have_value(str(START))
    expect(page.locator("#p-to")).to_have_value(str(END))
    expect(page.locator("#p-region")).to_have_value(REGION)
    # An edit is in the link at once.
    fill(page, {"to": "2024-03-15"})
    expect(page).to_have_url(f"{base}#report=sales&from={START}&to=2024-03-15&region={REGION}")
    choose(page, "report")
    expect(page).to_have_url(f"{base}#report=report&rowCount=30000")
    expect(page.locator("#p-rowCount")).to_have_value("30000")
    page.go_back()
    expect(page.locator("#report-sales")).to_be_checked()
    expect(page.locator("#p-to")).to_have_value("2024-03-15")
    page.go_forward()
    expect(page.locator("#report-report")).to_be_checked()
    # A link to a report the catalog does not have shows the first one, and says so.
    open_page(page, f"{base}#report=nope&rowCount=5")
    expect(page.locator("#report-report")).to_be_checked()
    expect(page.locator("#catalog-status")).to_have_text(
        "There is no report “nope”; showing “Generated test data”."
    )


def test_the_progress_bar_moves_during_a_million_row_download(chain: Chain, page: Page) -> None:
    # A short pause every 100,000 rows: progress is seen part-way however fast the machine.
    chain.db.faults.row_delay, chain.db.faults.row_delay_every = 0.25, 100_000
    open_page(page, f"{chain.bff.url}/#report=report&rowCount=1000000")
    page.evaluate(RECORD_PROGRESS)
    with page.expect_download() as download_info:
        page.click("#download")
    expect(page.locator(".download .state.completed")).to_contain_text(
        "Finished: 1,000,000 rows", timeout=120_000
    )
    assert download_info.value.failure() is None
    values = [int(v) for v in page.evaluate("window.seenValues") if v is not None]
    texts: list[str] = page.evaluate("window.seenTexts")
    assert len(set(values)) >= 3, values
    assert values == sorted(values), values
    assert values[-1] == 100
    assert 0 < values[-2] < 100
    # While it streamed: rows out of the total, and the time left.
    assert any(re.search(r"[0-9,]+ of 1,000,000 rows \([0-9]+%\)", t) for t in texts), texts
    assert any(" left" in t for t in texts), texts
    bar = page.locator(".download [role=progressbar]")
    expect(bar).to_have_attribute("aria-valuetext", "finished")


def test_a_report_without_a_known_total_shows_rows_and_megabytes(chain: Chain, page: Page) -> None:
    chain.db.faults.row_delay, chain.db.faults.row_delay_every = 0.2, 4000
    open_page(page, f"{chain.bff.url}/#report=sales&from=2020-01-01&to=2025-12-31")
    page.evaluate(RECORD_PROGRESS)
    with page.expect_download():
        page.click("#download")
    bar = page.locator(".download [role=progressbar]")
    expect(bar).to_have_class(re.compile(r"\bindeterminate\b"))
    expect(bar).not_to_have_attribute("aria-valuenow", re.compile(".*"))
    expect(page.locator(".download .state")).to_contain_text(re.compile(r"[1-9][0-9,]* rows · "))
    expect(page.locator(".download .state.completed")).to_contain_text("Finished: ")
    texts: list[str] = page.evaluate("window.seenTexts")
    assert any(
        re.search(r"rows · [0-9.]+ [KM]B so far · [0-9]+:[0-9]{2} elapsed", t) for t in texts
    )


def test_stopping_the_database_mid_download_ends_as_broken_off(page: Page, tmp_path: Path) -> None:
    with contextlib.ExitStack() as database:
        db = database.enter_context(run_in_thread(host="127.0.0.1", port=0))
        db.faults.row_delay, db.faults.row_delay_every = 0.1, 2000
        api = start_api(0, db_port=db.port, log_dir=tmp_path)
        try:
            bff = start_bff(0, api_url=api.url, log_dir=tmp_path)
            try:
                open_page(page, f"{bff.url}/#report=report&rowCount=200000")
                with page.expect_download() as download_info:
                    page.click("#download")
                bar = page.locator(".download [role=progressbar]")
                expect(bar).to_have_attribute("aria-valuenow", re.compile(r"^[1-9][0-9]?$"))
                database.close()  # the dev database stops mid-stream
                expect(page.locator("#downloads .state.failed")).to_contain_text(
                    "The transfer broke off part-way"
                )
                assert download_info.value.failure() is not None
                expect(bar).to_be_hidden()
            finally:
                bff.stop()
        finally:
            api.stop()


def test_the_page_works_with_the_keyboard_alone(chain: Chain, page: Page, tmp_path: Path) -> None:
    open_page(page, f"{chain.bff.url}/")
    keys = page.keyboard
    _tab_to(page, "#report-report")
    keys.press("ArrowDown")  # the next report of the group
    expect(page.locator("#report-sales")).to_be_checked()
    _tab_to(page, "#p-from")
    keys.type("02012024")  # month, day, year: the date field's parts in en-US
    _tab_to(page, "#p-to")  # (Tab also visits a date field's parts and its picker)
    keys.type("03312024")
    _tab_to(page, "#p-region")
    keys.press("ArrowDown")  # (not set) -> Central
    keys.press("ArrowDown")  # -> East
    expect(page.locator("#p-region")).to_have_value(REGION)
    _tab_to(page, "#download")
    with page.expect_download() as download_info:
        keys.press("Enter")
    target = tmp_path / "sales.xlsx"
    download_info.value.save_as(target)
    book = openpyxl.load_workbook(target, read_only=True)
    assert book.sheetnames == ["Orders", "Summary by region"]
    orders = sum(1 for _ in book["Orders"].iter_rows(values_only=True))
    assert orders == 1 + len(list(sales_data.orders(START, END, REGION)))
    book.close()


def _tab_to(page: Page, selector: str, *, presses: int = 6) -> None:
    """Press Tab, as a person does, until ``selector`` has the focus."""
    target = page.locator(selector)
    for _ in range(presses):
        page.keyboard.press("Tab")
        if target.evaluate("element => element === document.activeElement"):
            return
    raise AssertionError(f"{presses} presses of Tab did not reach {selector}")


def test_the_page_passes_an_accessibility_check(chain: Chain, page: Page) -> None:
    """axe-core's WCAG 2.x A and AA rules in each state the page has, and by hand what axe
    cannot see: labels tied to controls, the progress bar's values, the live regions."""
    chain.db.faults.row_delay, chain.db.faults.row_delay_every = 0.2, 2000
    open_page(page, f"{chain.bff.url}/")
    _accessible(page)
    choose(page, "sales")
    page.click("#download")  # errors shown
    expect(page.locator("#p-from-error")).to_have_text("from is required")
    _accessible(page)
    choose(page, "report")
    fill(page, {"rowCount": "40000"})
    with page.expect_download():
        page.click("#download")
    bar = page.locator(".download [role=progressbar]")
    expect(bar).to_have_attribute("aria-valuenow", re.compile(r"^[1-9][0-9]?$"))
    _accessible(page)  # a download in progress
    expect(page.locator(".download .state.completed")).to_be_visible()
    _accessible(page)


def _accessible(page: Page) -> None:
    found = violations(page)
    assert found == [], describe(found)
    problems: list[Any] = page.evaluate(
        """() => {
        const problems = [];
        for (const control of document.querySelectorAll("input, select, textarea")) {
            if (!control.labels || !control.labels.length) problems.push(`${control.id}: no label`);
            for (const id of (control.getAttribute("aria-describedby") || "").split(/\\s+/)) {
                if (id && !document.getElementById(id)) problems.push(`${control.id}: no #${id}`);
            }
        }
        for (const bar of document.querySelectorAll("[role=progressbar]")) {
            if (!bar.hidden && !bar.classList.contains("indeterminate")) {
                const now = Number(bar.getAttribute("aria-valuenow"));
                if (!(now >= 0 && now <= 100)) problems.push("progressbar: aria-valuenow");
            }
            if (!bar.getAttribute("aria-labelledby")) problems.push("progressbar: no name");
        }
        if (!document.querySelector("[role=alert]")) problems.push("no alert region");
        if (!document.querySelector("[aria-live=polite]")) problems.push("no polite region");
        return problems;
    }"""
    )
    assert problems == []


def test_screenshots_of_the_form_and_of_a_download_in_progress(
    chain: Chain, page: Page, tmp_path: Path
) -> None:
    """The pictures docs/page.md shows: PAGE_SCREENSHOTS=docs python -m pytest -k screenshots."""
    out = Path(os.environ.get(SCREENSHOTS_ENV) or tmp_path)
    open_page(page, f"{chain.bff.url}/#report=sales&from=2024-01-01&to=2024-06-30&region=North")
    form_png = out / "page-form.png"
    page.screenshot(path=form_png, full_page=True)
    with page.expect_download():
        page.click("#download")
    expect(page.locator(".download .state.completed")).to_be_visible()
    chain.db.faults.row_delay, chain.db.faults.row_delay_every = 0.1, 4000
    choose(page, "report")
    fill(page, {"rowCount": "400000"})
    with page.expect_download():
        page.click("#download")
    # Part-way, with the time left known.
    line = page.locator(".download .state").first
    expect(line).to_contain_text(" left")
    poll(lambda: 30 <= _percent(page) <= 70, what="the bar between 30% and 70%")
    progress_png = out / "page-progress.png"
    page.screenshot(path=progress_png, full_page=True)
    for png in (form_png, progress_png):
        width, height = _png_size(png)
        assert width == VIEWPORT["width"]
        assert height >= 600


def _percent(page: Page) -> int:
    value = page.locator(".download [role=progressbar]").first.get_attribute("aria-valuenow")
    return int(value or 0)


def _png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    return int(width), int(height)
