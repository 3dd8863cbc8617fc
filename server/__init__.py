"""The streaming export API: ``GET /export/report?rowCount=N`` -> a .xlsx, in constant memory.

Run it with ``python -m server`` (or ``xlsx-export-api``); embed it with
``async with server.app.ExportApi(server.config.ApiConfig(...)) as api: ... api.port``.

Modules, from the edge inwards:

- ``__main__``: flags and environment -> :class:`~server.config.ApiConfig`; signals.
- ``app``: the aiohttp low-level server, dispatch table, the export handler, shutdown.
- ``export``: one export's worker thread (connection owner) and its events to the handler.
- ``handoff``: the bounded thread -> event loop chunk queue (the backpressure point).
- ``db``: pytds connections whose blocking reads can be interrupted by their own thread.
- ``pool``: the bounded, lazy, health-checked connection pool.
- ``report``: headers and column formats of the workbook; the download's file name.
- ``rowcount``, ``errors``, ``responses``, ``metrics``, ``memory``, ``config``: small pure parts.
"""
