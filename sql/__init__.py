"""The demo reports' database side: their T-SQL, their catalog, their data, and a TDS dev server.

``schema.sql`` is the T-SQL for a real SQL Server (database ``ExportDemo``:
``dbo.spGenerateData`` and ``dbo.spSalesOrders``); ``catalog.toml`` is the export API's built-in
catalog of the two reports; ``README.md`` says how to run the dev server and what it serves.

Modules:

- ``report_data``: the generated-data report, defined once: its columns and every cell's value.
- ``sales_data``: the sales report, defined once: the orders and the summary.
- ``devserver``: a TDS 7.4 server that serves the same procedures, for a stack without SQL Server.
"""
