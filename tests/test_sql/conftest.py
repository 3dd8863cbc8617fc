"""Fixtures of the tests over TCP: a dev server on its own thread and a pytds connection to it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from sql.devserver import DevServer
from tests.devclient import dev_connect


@pytest.fixture
def server(devserver_thread: DevServer) -> DevServer:
    return devserver_thread


@pytest.fixture
def conn(server: DevServer) -> Iterator[Any]:
    with dev_connect(server.port, timeout=30) as c:
        yield c
