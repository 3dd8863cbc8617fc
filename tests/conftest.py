"""Fixtures shared by every test package: a TDS dev server on an ephemeral port, raw HTTP
clients; and the "compiled" marker's skip where the compiled row code is switched off."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from sql.devserver import DevServer, run_in_thread
from tests.extensions import switched_off
from tests.rawhttp import RawClients


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Where the row code's C extensions are switched off (make test-no-extensions), the tests
    of the compiled code itself are skipped; every other test runs, on the Python code."""
    if not switched_off():
        return
    skip = pytest.mark.skip(reason="the compiled row code is switched off (ROWCODE_EXTENSIONS)")
    for item in items:
        if item.get_closest_marker("compiled") is not None:
            item.add_marker(skip)


@pytest.fixture
async def devserver() -> AsyncIterator[DevServer]:
    """A DevServer on 127.0.0.1, in the test's own event loop; closed after the test."""
    async with DevServer(host="127.0.0.1", port=0) as server:
        yield server


@pytest.fixture
def devserver_thread() -> Iterator[DevServer]:
    """A DevServer on its own event loop thread, for synchronous tests; closed after."""
    with run_in_thread(host="127.0.0.1", port=0) as server:
        yield server


@pytest.fixture
async def raw() -> AsyncIterator[RawClients]:
    """Bare-socket HTTP clients (tests.rawhttp), aborted after the test."""
    async with RawClients() as clients:
        yield clients
