"""The page in a real headless Chromium (Debian's, driven by Playwright; never a downloaded one)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from scripts.stack import Service
from tests.e2e.conftest import Chain
from tests.e2e.test_curl import data_rows
from tests.polling import poll

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# Chromium starts in ~1 s on an idle machine; a loaded 2-core CI box can be many times slower.
LAUNCH_TIMEOUT_MS = 120_000
# Waits for the page (navigation, a download starting, a message appearing). Playwright's
# expect() has its own 5 s default, apart from the page's: both get the same generous deadline,
# since every wait here ends as soon as its condition holds.
WAIT_TIMEOUT_MS = 60_000
# Where to leave a screenshot of the page for a person to look at (optional).
SCREENSHOT_ENV = "BFF_E2E_SCREENSHOT"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is required (make system-deps installs Debian's chromium)")
    # Playwright must never fetch a browser of its own.
    os.environ["PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD"] = "1"
    expect.set_options(timeout=WAIT_TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=LAUNCH_TIMEOUT_MS
        )
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(WAIT_TIMEOUT_MS)
    yield page
    context.close()


def test_the_page_downloads_a_workbook(chain: Chain, page: Page, tmp_path: Path) -> None:
    page.goto(f"{chain.bff.url}/")
    expect(page.locator("h1")).to_have_text("Report export")
    page.fill("#row-count", "1,234")  # a person may type the separator; the page drops it
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
    expect(page.locator(".state.completed")).to_contain_text("1,234 rows: finished")
    shot = os.environ.get(SCREENSHOT_ENV)
    if shot:
        page.screenshot(path=shot, full_page=True)


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("12x", "must be a whole number"),
        ("0", "at least 1"),
        ("2000000", "at most 1,048,576"),
        ("", "Enter the number of rows"),
    ],
)
def test_a_bad_row_count_shows_a_readable_message(
    chain: Chain, page: Page, typed: str, message: str
) -> None:
    page.goto(f"{chain.bff.url}/")
    page.fill("#row-count", typed)
    page.click("#download")
    expect(page.locator("#row-error")).to_contain_text(message)
    expect(page.locator("#row-count")).to_have_attribute("aria-invalid", "true")
    # Fixing the number clears the message and starts the download.
    page.fill("#row-count", "10")
    with page.expect_download():
        page.click("#download")
    expect(page.locator("#row-error")).to_be_hidden()
    # The bad number was caught in the page: only the corrected one reached the server.
    poll(lambda: chain.bff.log_text().count("/exports/report?") >= 1, what="access log line")
    assert chain.bff.log_text().count("/exports/report?") == 1
    assert "/exports/report?rowCount=10 " in chain.bff.log_text()


def test_a_server_side_error_is_shown_as_text_not_json(
    bff_factory: Callable[..., Service], page: Page, dead_url: str
) -> None:
    bff = bff_factory(api_url=dead_url)  # the API is down
    page.goto(f"{bff.url}/")
    page.fill("#row-count", "100")
    page.click("#download")
    failed = page.locator("#downloads .state.failed")
    expect(failed).to_contain_text("The export service is unreachable.")
    expect(failed).to_contain_text("HTTP 502")
    assert page.url == f"{bff.url}/"  # still on the page, not on a raw JSON document


def test_a_download_the_api_breaks_off_is_reported_as_failed(
    chain: Chain, page: Page, tmp_path: Path
) -> None:
    chain.db.faults.error_after_rows = 20_000
    page.goto(f"{chain.bff.url}/")
    page.fill("#row-count", "60000")
    with page.expect_download() as download_info:
        page.click("#download")
    download = download_info.value
    # The browser itself saw a broken transfer, not a finished file...
    assert download.failure() is not None
    # ...and the page says so in words.
    expect(page.locator("#downloads .state.failed")).to_contain_text("broke off part-way")


@pytest.mark.slow
def test_the_page_downloads_100000_rows(chain: Chain, page: Page, tmp_path: Path) -> None:
    page.goto(f"{chain.bff.url}/")
    page.fill("#row-count", "100000")
    with page.expect_download() as download_info:
        page.click("#download")
    target = tmp_path / "report.xlsx"
    download_info.value.save_as(target)
    assert data_rows(target) == 100_000
    expect(page.locator(".state.completed")).to_contain_text("100,000 rows: finished")
