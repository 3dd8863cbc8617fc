"""The fast row path: a result set's rows decoded, or written as XML, by code made for its columns.

pytds (python-tds) stays in charge of the connection: login, the RPC, COLMETADATA, errors,
the attention handshake. Between COLMETADATA and the first token that is not a row, the rows
are decoded here, a packet at a time, into the same tuples (see ``docs/row-path.md`` for the few
inputs on which pytds fails and this path does not): ~10x faster than pytds in generated Python
code, ~20x through the compiled scanner where it is built. For the export, rows go straight from
the wire to the worksheet's ``<row>`` XML instead, with no tuple in between.

    rows = tdsrows.FastRows.open(cursor)     # raises UnsupportedLayout: use cursor.fetchmany
    while batch := rows.fetch():
        ...

Modules, from the wire inwards:

- ``tokens``: the TDS token bytes the row path tells apart; every other token is pytds'.
- ``layout``: column layouts: what COLMETADATA says about each column's bytes on the wire.
- ``pytds_link``: every pytds internal the row path relies on, and nothing else.
- ``results``: :class:`FastRows`: a cursor's rows read packet by packet by the fastest decoder.
- ``stops``: why a walk over a packet's rows stopped (besides a token byte that is not a row).
- ``cells``: the reference decoder: one value at a time, every framing and NULL the wire allows.
- ``values``: Python values from wire primitives, exactly as pytds builds them; the raw kinds.
- ``codegen``: decoders generated for one layout: rows to tuples in Python source compiled once.
- ``genfill``: the export's text fill in generated code: rows straight from the wire to XML.
- ``scan``: the compiled scanner's Python side: rows as typed primitive cells.
- ``scandecode``: cells to tuples, in compiled code.
- ``scanfill``: cells to a compiled writer's text, for the export.
- ``errors``: the package's one exception base and its errors.
- ``_rowscan``: the C extension behind ``scan``, ``scandecode`` and ``scanfill`` (optional).
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
