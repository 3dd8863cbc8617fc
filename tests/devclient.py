"""pytds to a TDS dev server on this machine, logged in with the dev credentials.

One place for the connect call that tests and benchmarks repeat; keyword options override the
defaults (e.g. ``blocksize=`` for a packet size, ``user=``/``password=`` for other credentials).
"""

from __future__ import annotations

from typing import Any

import pytds

from sql.devserver import DEV_DATABASE, DEV_PASSWORD, DEV_USER
from sql.devserver.resultset import REPORT_ROWS_PER_CHUNK

HOST = "127.0.0.1"
# Read-only exports need no transaction (docs/driver.md: autocommit=False begins one first); a
# 10 s login budget is far above a local login and still ends a test that cannot connect.
DEFAULTS: dict[str, Any] = {
    "user": DEV_USER,
    "password": DEV_PASSWORD,
    "database": DEV_DATABASE,
    "autocommit": True,
    "login_timeout": 10,
}
# Rows the dev server may still hand to the socket after an attention (or a close) reached it:
# the chunk being encoded when it arrived and the one before its reader task saw it, with room
# to spare. Without a prompt stop it is everything left of the result set.
AFTER_ATTENTION = 4 * REPORT_ROWS_PER_CHUNK


def dev_connect(port: int, **options: Any) -> Any:
    """A pytds connection to the dev server listening on ``port``."""
    return pytds.connect(dsn=HOST, port=port, **{**DEFAULTS, **options})
