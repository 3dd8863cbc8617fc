"""Fixtures shared by every test package: a TDS dev server on an ephemeral port, raw HTTP
clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from sql.devserver import DevServer, run_in_thread
from tests.rawhttp import RawClients


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
