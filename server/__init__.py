"""The export API: ``/reports`` lists the catalog's reports, ``/export/{id}`` streams one as .xlsx.

A download is a stored procedure's result sets written as a workbook while the rows arrive, in
constant memory, by a worker process (``--workers 0``: a thread of the HTTP process); the HTTP
process admits it, relays its chunks, and answers ``/progress/{request id}``, ``/healthz``,
``/readyz`` and ``/metrics`` at once under load.

Run it with ``python -m server`` (or ``xlsx-export-api``); embed it with
``async with server.app.ExportApi(server.config.ApiConfig(...)) as api: ... api.port``.

Modules, from the edge inwards. The HTTP process:

- ``__main__``: flags and environment -> :class:`~server.config.ApiConfig`; signals.
- ``config``: the configuration's frozen records, with named defaults.
- ``app``: :class:`~server.app.ExportApi`: routes, the export handler, start-up and shutdown.
- ``responses``: JSON answers and the download's headers.
- ``errors``: the API's errors, each with its HTTP status, stable code and extra headers.
- ``catalog``: the report catalog: TOML in, checked reports out; a query string to a call or a 400.
- ``params``: the types of a report's parameters: read, checked, described to the page, bound.
- ``admission``: the service-wide limit on running exports, decided at once.
- ``progress``: ``GET /progress/{request id}``: how far a running export is.
- ``readiness``: ``/readyz``: a round trip to the database, answered within the timeout.
- ``metrics``: the Prometheus metrics of ``GET /metrics``: names, help and buckets.
- ``workers``: the worker processes: started, chosen per export, heard from, replaced, stopped.
- ``control``: the control channel to one worker: JSON messages and the sockets they carry.
- ``relay``: the HTTP process's half of one export: its channel's reading end, its summary.
- ``channel``: the export channel: one socket pair per export, its frames, backpressure, cancel.

An export, in a worker process:

- ``worker``: a worker process (``python -m server.worker``), started by ``workers`` only.
- ``export``: one export: a thread that owns a pooled connection and writes the workbook.
- ``rowsource``: where an export's rows come from: the fast row path, or pytds' own decoding.
- ``report``: what a report's sheet looks like in Excel; the download's file name.
- ``memory``: resident memory samples for the export log.
- ``pool``: the bounded, lazy, health-checked, thread-safe pool of database connections.
- ``db``: pytds connections that their thread can interrupt from inside their own reads.
- ``dbtls``: TLS to SQL Server below the driver: pytds speaks plain TDS to a TLS transport.
"""
