"""Calling ``dbo.spColumns`` from tests: through pytds, or as raw bytes through tdsclient."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sql.devserver import DEV_DATABASE, DEV_PASSWORD, DEV_USER, DevServer
from sql.devserver.columns import Column, spec_json
from tests.test_sql import tdsclient

PROC = "dbo.spColumns"


def call(
    conn: Any, columns: Sequence[Column], rows: Sequence[Sequence[object]], **options: Any
) -> tuple[list[tuple[Any, ...]], list[tuple[object, ...]]]:
    """pytds' description and rows of the result a spec describes (RPC with an NVARCHAR(MAX))."""
    with conn.cursor() as cur:
        cur.callproc(PROC, (spec_json(columns, rows, **options),))
        description = list(cur.description)
        got = [tuple(r) for r in cur.fetchall()]
        assert not cur.nextset()
        assert cur.return_value == 0
    return description, got


def values(conn: Any, column: Column, cells: Sequence[object], **options: Any) -> list[object]:
    """One column's values as pytds decodes them, one row per cell."""
    _description, rows = call(conn, [column], [[c] for c in cells], **options)
    return [r[0] for r in rows]


def literal(text: str) -> str:
    """A T-SQL N'...' literal."""
    return "N'" + text.replace("'", "''") + "'"


def raw_reply(server: DevServer, spec: str, packet_size: int = 4096) -> tdsclient.Reply:
    """The whole reply to ``EXEC dbo.spColumns @Spec = N'...'`` as packets off the socket."""
    with tdsclient.RawClient("127.0.0.1", server.port) as client:
        client.login(DEV_USER, DEV_PASSWORD, DEV_DATABASE, packet_size)
        client.sock.sendall(
            tdsclient.batch_message(f"EXEC {PROC} @Spec = {literal(spec)}", packet_size)
        )
        return client.read_reply()
