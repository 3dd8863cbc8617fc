"""The page's checks against the API's, value by value, for every parameter type: a report of
every type (``dbo.spEcho`` returns its arguments), each value typed into its control, and what
the page says compared with what the API's own code (``server.catalog``) says of the same
query: the same message for a refused value, a download for an accepted one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openpyxl
import pytest
from playwright.sync_api import Page, expect

from scripts.stack import Service, start_api, start_bff
from server.catalog import Catalog, Report, load_catalog
from server.errors import ExportError
from sql.devserver import DevServer
from tests.e2e.chromium import (
    browser_fixture,  # noqa: F401
    fill,
    open_page,
    page_fixture,  # noqa: F401
)
from tests.polling import poll

CATALOG = Path(__file__).parents[1] / "catalogs" / "every-type.toml"
# A form every check accepts; each case below changes one field of it.
VALID = {
    "n": "7",
    "cap": "500",
    "big": "1",
    "amount": "1.25",
    "day": "2024-02-29",
    "at": "2024-06-01T10:00",
    "word": "abc",
    "flag": "false",
    "colour": "green",
}
CASES = [
    ("n", "1000"),
    ("n", "1001"),
    ("n", "-5"),
    ("n", "-6"),
    ("n", "007"),
    ("n", "1.5"),
    ("n", "1e3"),
    ("n", "600"),  # above cap: the rule between them
    ("n", ""),  # optional: not sent
    ("cap", ""),  # its default applies, and the rule compares with it
    ("big", "9007199254740993"),
    ("big", "9007199254740994"),  # beyond a double's exact integers: compared exactly
    ("big", "-9007199254740993"),
    ("big", "-9007199254740994"),
    ("amount", "1000.00"),
    ("amount", "1000.01"),
    ("amount", "12.345"),
    ("amount", "-10.5"),
    ("amount", "-10.51"),
    ("amount", "10000"),
    ("amount", "1e2"),
    ("day", "2020-01-01"),
    ("day", "2019-12-31"),
    ("day", "2040-01-01"),
    ("day", ""),  # required
    ("at", "2024-12-31T23:59:59"),
    ("at", "2024-12-31T23:59:59.500"),
    ("at", "2023-12-31T23:59"),
    ("at", "2024-06-01T10:00:05.120"),
    ("word", "abcde"),
    ("word", "ab😀d"),  # five UTF-16 code units, as SQL Server counts them
    ("word", ""),
    ("flag", "true"),
    ("colour", ""),
    ("until", "2024-03-30"),  # 31 days from 2024-02-29, both counted: the span's most
    ("until", "2024-03-31"),  # 32 days
]


@pytest.fixture
def every_type(devdb: DevServer, tmp_path: Path) -> Iterator[tuple[Service, Report]]:
    """A BFF (and API) serving the catalog above, and the API's own reading of it."""
    catalog: Catalog = load_catalog(CATALOG)
    api = start_api(0, db_port=devdb.port, env={"API_CATALOG": str(CATALOG)}, log_dir=tmp_path)
    try:
        bff = start_bff(0, api_url=api.url, log_dir=tmp_path)
        try:
            yield bff, catalog.reports["types"]
        finally:
            bff.stop()
    finally:
        api.stop()


def _api_verdict(report: Report, query: dict[str, str]) -> tuple[str | None, str | None]:
    """(the parameter the API's 400 names, its message), or (None, None) when it accepts."""
    try:
        report.bind({name: [value] for name, value in query.items() if value != ""})
    except ExportError as exc:
        named = next((p.name for p in report.parameters if exc.message.startswith(p.name)), None)
        if "must not be greater than" in exc.message:
            named = "cap"  # a rule's message goes to its second parameter
        if "must not span" in exc.message:
            named = "until"
        return named, exc.message
    return None, None


def test_the_page_says_what_the_api_says_of_every_value(
    every_type: tuple[Service, Report], page: Page, tmp_path: Path
) -> None:
    bff, report = every_type
    open_page(page, f"{bff.url}/")
    button = page.locator("#download")
    downloads = 0
    for name, text in CASES:
        fill(page, VALID)
        fill(page, {name: text})
        held = {p.name: page.locator(f"#p-{p.name}").input_value() for p in report.parameters}
        named, message = _api_verdict(report, held)
        expect(button).to_be_enabled()
        if message is None:
            with page.expect_download() as download_info:
                button.click()
            target = tmp_path / f"echo-{downloads}.xlsx"
            download_info.value.save_as(target)
            downloads += 1
            for p in report.parameters:
                expect(page.locator(f"#p-{p.name}-error")).to_have_text("")
            # spEcho returns a column per argument: what the page sent, and the defaults.
            sent = {p.name for p in report.parameters if held[p.name] or p.default is not None}
            assert _echoed_columns(target) == sent, (name, text)
        else:
            button.click()
            assert named is not None
            expect(page.locator(f"#p-{named}-error")).to_have_text(message)
            expect(page.locator("#form-alert")).to_contain_text(f"Not downloaded: {message}")
    assert downloads >= 15
    # No value the page refused reached the BFF; every one it accepted did.
    poll(
        lambda: bff.log_text().count("GET /exports/types?") >= downloads,
        what="the access log lines of the downloads",
    )
    assert bff.log_text().count("GET /exports/types?") == downloads


def _echoed_columns(path: Path) -> set[str]:
    book = openpyxl.load_workbook(path, read_only=True)
    header = next(book.worksheets[0].iter_rows(values_only=True))
    book.close()
    return {str(cell) for cell in header}
