"""A TDS 7.4 dev server: the demo reports' procedures and the tests' own, in clear or over TLS.

It serves ``dbo.spGenerateData`` and ``dbo.spSalesOrders`` as SQL Server does (the values of
:mod:`sql.report_data` and :mod:`sql.sales_data`), procedures for tests (``spColumns``,
``spEcho``, ``spScript``, ``spDevServerStats``), backpressure, attention and injected faults, to
pytds, FreeTDS and pymssql. A sans-IO core (bytes in, events and replies out) in an asyncio
shell: ``DevServer`` to embed, ``run_in_thread`` for blocking tests, ``python -m sql.devserver``.

Modules, from the socket inwards:

- ``__main__``: ``python -m sql.devserver``: the server until interrupted.
- ``server``: the asyncio shell around the sans-IO core: sockets, timing and counters.
- ``faults``: fault injection around a row source: delays, errors, drops, the test's own bytes.
- ``tls``: TLS, sans-IO: what PRELOGIN's ENCRYPTION agrees to, and the layer that carries TDS.
- ``certs``: a dev CA, a server certificate it signs, and the broken ones a client must refuse.
- ``protocol``: the sans-IO TDS connection: bytes in, events out; replies framed into bytes out.
- ``packets``: TDS packet framing: 8-byte headers, messages split over packets.
- ``requests``: parsers of the client messages the dev server understands.
- ``engine``: the TDS replies: what goes on the wire for each request, pure.
- ``tsql``: the T-SQL it understands: what a batch or an RPC means, and SQL Server's errors.
- ``rowsource``: a result set's rows as the streaming path asks for them, a chunk at a time.
- ``resultset``: the wire encoding of ``dbo.spGenerateData``'s result set, fast.
- ``sales``: the wire encoding of ``dbo.spSalesOrders``' two result sets, fast.
- ``columns``: ``dbo.spColumns @Spec``: any column layout and values, described in JSON.
- ``echo``: ``dbo.spEcho``: the call's arguments back as one row, typed as they came.
- ``script``: ``dbo.spScript @Script``: any token-stream shape a procedure produces, in JSON.
- ``tokens``: token stream builders: what the server writes inside REPLY messages.
- ``sqltypes``: SQL Server data types on the wire: declarations, TYPE_INFO, values.
- ``collations``: the collations of character columns: the 5 wire bytes and the code page.
- ``errors``: the dev server's exception base, and its errors for bytes that are not TDS.
"""

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
