"""A fast path for the rows of a TDS result set, decoded by code specialised to its columns.

pytds (python-tds) stays in charge of the connection: login, the RPC, COLMETADATA, errors,
the attention handshake. Between COLMETADATA and the first token that is not a row, the rows
are decoded here, a packet at a time, ~10x faster than pytds decodes them, into the same tuples
(see ``docs/row-path.md`` for the few inputs on which pytds fails and this path does not).

    rows = tdsrows.FastRows.open(cursor)     # raises UnsupportedLayout: use cursor.fetchmany
    while batch := rows.fetch():
        ...

Modules: ``layout`` (columns as the wire frames them), ``codegen`` (the generated decoders),
``cells`` (the per-value reference decoder), ``values`` (objects as pytds builds them),
``pytds_link`` (every pytds internal relied on), ``results`` (the packet loop).
"""

from tdsrows.codegen import RAW_KINDS, CompiledLayout, compile_layout
from tdsrows.errors import DriverMismatch, StreamError, TdsRowsError, UnsupportedLayout
from tdsrows.layout import Column, Framing, Kind, Layout
from tdsrows.pytds_link import check_driver
from tdsrows.results import FastRows

__all__ = [
    "RAW_KINDS",
    "Column",
    "CompiledLayout",
    "DriverMismatch",
    "FastRows",
    "Framing",
    "Kind",
    "Layout",
    "StreamError",
    "TdsRowsError",
    "UnsupportedLayout",
    "check_driver",
    "compile_layout",
]
