"""The page in a real headless Chromium (Debian's, driven by Playwright; never a downloaded one):
the demo report downloaded, a bad row count caught before any request, the server's errors
shown as text."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from scripts.stack import Service, start_api
from tests.e2e.chromium import browser_fixture, open_page, page_fixture  # noqa: F401
from tests.e2e.conftest import Chain
from tests.e2e.test_curl import data_rows
from tests.polling import poll

ROW_RULE = "rowCount must be a whole number from 1 to 1,048,576"


def test_the_page_downloads_a_workbook(chain: Chain, page: Page, tmp_path: Path) -> None:
    open_page(page, f"{chain.bff.url}/")
    expect(page.locator("h1")).to_have_text("Report export")
    # The demo report is the catalog's first: chosen, with its default filled in.
    expect(page.locator("#report-report")).to_be_checked()
    expect(page.locator("#p-rowCount")).to_have_value("30000")
    page.fill("#p-rowCount", "1234")
    with page.expect_download() as download_info:
        page.click("#download")
    download = download_info.value
    assert download.suggested_filename.startswith("report-")
    assert download.suggested_filename.endswith(".xlsx")
    target = tmp_path / download.suggested_filename
    download.save_as(target)
    assert download.failure() is None
    assert data_rows(target) == 1234
    # The page learns the outcome from the BFF and says so.
    expect(page.locator(".download .state.completed")).to_contain_text("Finished: 1,234 rows")
    expect(page.locator(".download [role=progressbar]")).to_have_attribute("aria-valuenow", "100")


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("0", ROW_RULE),
        ("1.5", ROW_RULE),
        ("1e3", ROW_RULE),  # a number to the browser, not to the API
        ("2000000", ROW_RULE),
    ],
)
def test_a_bad_row_count_shows_the_api_rule_before_any_request(
    chain: Chain, page: Page, typed: str, message: str
) -> None:
    open_page(page, f"{chain.bff.url}/")
    page.fill("#p-rowCount", typed)
    page.click("#download")
    expect(page.locator("#p-rowCount-error")).to_have_text(message)
    expect(page.locator("#p-rowCount")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#p-rowCount")).to_be_focused()
    expect(page.locator("#form-alert")).to_have_text(f"Not downloaded: {message}.")
    # Fixing the number clears the message and starts the download.
    page.fill("#p-rowCount", "10")
    with page.expect_download():
        page.click("#download")
    expect(page.locator("#p-rowCount-error")).to_have_text("")
    expect(page.locator("#p-rowCount")).not_to_have_attribute("aria-invalid", "true")
    # The bad number was caught in the page: only the corrected one reached the server.
    poll(lambda: chain.bff.log_text().count("/exports/report?") >= 1, what="access log line")
    assert chain.bff.log_text().count("/exports/report?") == 1
    assert "/exports/report?rowCount=10 " in chain.bff.log_text()


def test_the_catalog_unreachable_is_said_in_words(
    bff_factory: Callable[..., Service], page: Page, dead_url: str
) -> None:
    bff = bff_factory(api_url=dead_url)  # the API is down
    page.goto(f"{bff.url}/")
    status = page.locator("#catalog-status")
    expect(status).to_contain_text("The reports could not be loaded.")
    expect(status).to_contain_text("The export service is unreachable. (HTTP 502)")
    expect(status.get_by_role("button", name="Try again")).to_be_visible()
    expect(page.locator("#export-form")).to_be_hidden()


def test_a_server_side_error_is_shown_as_text_not_json(
    chain: Chain, bff_factory: Callable[..., Service], page: Page
) -> None:
    api = start_api(0, db_port=chain.db.port, log_dir=chain.log_dir)
    try:
        bff = bff_factory(api_url=api.url)
        open_page(page, f"{bff.url}/")
    finally:
        api.stop()  # the API goes away after the page loaded
    page.fill("#p-rowCount", "100")
    page.click("#download")
    failed = page.locator("#downloads .state.failed")
    expect(failed).to_contain_text("Not downloaded: The export service is unreachable.")
    expect(failed).to_contain_text("HTTP 502")
    expect(page.locator("#form-alert")).to_contain_text("The export service is unreachable.")
    # Still on the page (with the form's values in the link), not on a raw JSON document.
    assert page.url == f"{bff.url}/#report=report&rowCount=100"


def test_a_download_the_api_breaks_off_is_reported_as_failed(chain: Chain, page: Page) -> None:
    chain.db.faults.error_after_rows = 20_000
    open_page(page, f"{chain.bff.url}/")
    page.fill("#p-rowCount", "60000")
    with page.expect_download() as download_info:
        page.click("#download")
    download = download_info.value
    # The browser itself saw a broken transfer, not a finished file...
    assert download.failure() is not None
    # ...and the page says so in words.
    expect(page.locator("#downloads .state.failed")).to_contain_text(
        "The transfer broke off part-way"
    )


@pytest.mark.slow
def test_the_page_downloads_100000_rows(chain: Chain, page: Page, tmp_path: Path) -> None:
    open_page(page, f"{chain.bff.url}/")
    page.fill("#p-rowCount", "100000")
    with page.expect_download() as download_info:
        page.click("#download")
    target = tmp_path / "report.xlsx"
    download_info.value.save_as(target)
    assert data_rows(target) == 100_000
    expect(page.locator(".download .state.completed")).to_contain_text("Finished: 100,000 rows")
