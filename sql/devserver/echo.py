"""``dbo.spEcho``: the call's arguments back as one row, typed and valued exactly as they came.

For injection tests: whatever a client sends as a parameter (quotes, comment markers, NULs,
surrogate pairs, right-to-left marks, 4,000-character strings, any type) must arrive as data,
and comes back unchanged.  A column per argument, in the order received, named by the
parameter's name without its '@' (``p1``, ``p2``, ... for positional ones, by position), of the
type the argument was declared with on the wire (``nvarchar(4000)``, ``decimal(18,4)``,
``datetime2(7)``, ``nvarchar(max)`` sent as PLP and so returned as PLP ...), nullable.  The
value is the argument's own bytes (:attr:`~sql.devserver.requests.RpcParam.data`), so nothing is
lost to a conversion; an argument that was not read off the wire (a literal of EXEC in a batch
built by hand) is encoded from its value.  A character argument keeps its collation if the dev
server knows it (:mod:`sql.devserver.collations`), else it comes back under the server's.
"""

from __future__ import annotations

import datetime
import decimal
import uuid
from collections.abc import Sequence

from sql.devserver import columns, requests, sqltypes, tokens

POSITIONAL_NAME = "p{position}"  # the column of a positional argument, 1-based


def column_name(param: requests.RpcParam, position: int) -> str:
    """The column of the argument at (1-based) ``position``."""
    if not param.name:
        return POSITIONAL_NAME.format(position=position)
    return param.name.removeprefix("@")


def result(params: Sequence[requests.RpcParam]) -> bytes:
    """COLMETADATA and the one ROW (SpecError when an argument cannot be a column, e.g. a name
    longer than a column name may be)."""
    types = [p.sql_type or sqltypes.parse_type(p.type_name) for p in params]
    parsed = columns.parse_columns(
        [
            columns.Column(
                column_name(p, i),
                typ.declaration,
                nullable=True,
                collation=None if typ.collation is None else typ.collation.name,
            ).to_json()
            for i, (p, typ) in enumerate(zip(params, types, strict=True), start=1)
        ]
    )
    cells = [
        sqltypes.frame(c.framing, _data(p, typ), sqltypes.DEFAULT_PLP)
        for p, typ, c in zip(params, types, parsed, strict=True)
    ]
    return columns.colmetadata(parsed) + bytes((tokens.ROW,)) + b"".join(cells)


def _data(param: requests.RpcParam, typ: sqltypes.SqlType) -> bytes | None:
    """The argument's value bytes: as sent, or encoded from its Python value."""
    if param.data is not None or param.value is None:
        return param.data
    return typ.data(_json_value(param.value))


def _json_value(value: object) -> object:
    """A Python value in the form :meth:`SqlType.data` reads (spColumns' JSON values)."""
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, datetime.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return value
