"""A TDS 7.4 dev server for ``dbo.spGenerateData`` and test procedures: sans-IO core, asyncio
shell."""

from sql.devserver.errors import DevServerError, ProtocolError
from sql.devserver.faults import Faults
from sql.devserver.server import (
    DEV_DATABASE,
    DEV_PASSWORD,
    DEV_USER,
    DevServer,
    DevServerStats,
    run_in_thread,
)

__all__ = [
    "DEV_DATABASE",
    "DEV_PASSWORD",
    "DEV_USER",
    "DevServer",
    "DevServerError",
    "DevServerStats",
    "Faults",
    "ProtocolError",
    "run_in_thread",
]
