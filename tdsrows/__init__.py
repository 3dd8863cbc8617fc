"""A fast path for the rows of a TDS result set, decoded by code specialised to its columns.

pytds (python-tds) stays in charge of the connection: login, the RPC, COLMETADATA, errors,
the attention handshake. Between COLMETADATA and the first token that is not a row, the rows
are decoded here, a packet at a time, into the same tuples (see ``docs/row-path.md`` for the few
inputs on which pytds fails and this path does not): ~10x faster than pytds in generated Python
code, ~20x through the compiled scanner where it is built.

    rows = tdsrows.FastRows.open(cursor)     # raises UnsupportedLayout: use cursor.fetchmany
    while batch := rows.fetch():
        ...

Modules: ``layout`` (columns as the wire frames them), ``codegen`` (the generated decoders),
``cells`` (the per-value reference decoder), ``values`` (objects as pytds builds them),
``pytds_link`` (every pytds internal relied on), ``results`` (the packet loop), ``scan`` (the
compiled scanner: rows to primitive cells), ``scandecode`` (cells to tuples, compiled),
``scanfill`` (cells to a compiled writer's text, for the export).
"""

from tdsrows.codegen import CompiledLayout, compile_layout
from tdsrows.errors import DriverMismatch, StreamError, TdsRowsError, UnsupportedLayout
from tdsrows.layout import Column, Framing, Kind, Layout
from tdsrows.pytds_link import check_driver
from tdsrows.results import FastRows
from tdsrows.values import RAW_KINDS

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
