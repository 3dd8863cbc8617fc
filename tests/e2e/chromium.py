"""Debian's headless Chromium driven by Playwright (never a browser Playwright downloads), and
what the page tests share: fixtures for a browser and a page, opening the page and filling the
form of a report."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

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
# One size for every test, so screenshots and layout measurements do not depend on defaults.
VIEWPORT = {"width": 900, "height": 1000}


# Test modules import these two (a fixture's own name would clash with the test's argument).
@pytest.fixture(scope="module", name="browser")
def browser_fixture() -> Iterator[Browser]:
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


@pytest.fixture(name="page")
def page_fixture(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(accept_downloads=True, locale="en-US", viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(WAIT_TIMEOUT_MS)
    # Whatever a test does, the page must never break its own policy (an inline script or
    # style, anything from another origin) or throw.
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"uncaught: {error}"))
    page.on(
        "console",
        lambda message: (
            problems.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    yield page
    context.close()
    assert problems == []


def open_page(page: Page, url: str) -> None:
    """Load the page at ``url`` (``/`` or a link with a fragment) and wait for its form."""
    page.goto(url)
    expect(page.locator("#export-form")).to_be_visible()


def choose(page: Page, report_id: str) -> None:
    """Pick a report as a person does: a click on its title."""
    page.click(f"label[for='report-{report_id}']")
    expect(page.locator(f"#report-{report_id}")).to_be_checked()


def fill(page: Page, values: Mapping[str, str]) -> None:
    """Set the chosen report's fields (an input's text, a select's option)."""
    for name, value in values.items():
        field = page.locator(f"#p-{name}")
        if field.evaluate("element => element.tagName") == "SELECT":
            field.select_option(value)
        else:
            field.fill(value)
