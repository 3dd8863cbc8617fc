"""pytds to a TDS dev server on this machine, logged in with the dev credentials.

One place for the connect call that tests and benchmarks repeat; keyword options override the
defaults (e.g. ``blocksize=`` for a packet size, ``user=``/``password=`` for other credentials).
"""

from __future__ import annotations

from typing import Any

import pytds

from sql.devserver import DEV_DATABASE, DEV_PASSWORD, DEV_USER

HOST = "127.0.0.1"
# Read-only exports need no transaction (docs/pytds.md: autocommit=False begins one first); a
# 10 s login budget is far above a local login and still ends a test that cannot connect.
DEFAULTS: dict[str, Any] = {
    "user": DEV_USER,
    "password": DEV_PASSWORD,
    "database": DEV_DATABASE,
    "autocommit": True,
    "login_timeout": 10,
}


def dev_connect(port: int, **options: Any) -> Any:
    """A pytds connection to the dev server listening on ``port``."""
    return pytds.connect(dsn=HOST, port=port, **{**DEFAULTS, **options})
