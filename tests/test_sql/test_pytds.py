"""pytds, a real TDS client, against the dev server over TCP."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytds
import pytest

from sql.devserver import DEV_DATABASE, DEV_PASSWORD, DEV_USER, DevServer
from sql.report_data import row_values


def connect(server: DevServer, **kwargs: Any) -> Any:
    options: dict[str, Any] = {
        "user": DEV_USER,
        "password": DEV_PASSWORD,
        "database": DEV_DATABASE,
        "autocommit": True,
        "timeout": 30,
        "login_timeout": 10,
    }
    options.update(kwargs)
    return pytds.connect("127.0.0.1", port=server.port, **options)


@pytest.fixture
def conn(devserver_thread: DevServer) -> Iterator[Any]:
    with connect(devserver_thread) as c:
        yield c


@pytest.mark.parametrize("autocommit", [True, False])
def test_callproc_returns_every_value_of_the_formula(
    devserver_thread: DevServer, autocommit: bool
) -> None:
    with connect(devserver_thread, autocommit=autocommit) as c, c.cursor() as cur:
        cur.callproc("dbo.spGenerateData", (3000,))
        rows = [tuple(r) for r in cur.fetchall()]
        assert [d[0] for d in cur.description][:2] == ["Id", "ColInt"]
        assert rows == [row_values(n) for n in range(1, 3001)]
        assert cur.nextset() is False or cur.return_value == 0
        c.commit()
