"""The test suite: ``make test`` (``python -m pytest``; the slow tests: ``make test-slow``).

Each test package holds the tests of one part; a test module (``test_*.py``) is named after
what it checks. The modules here are what several packages share.

Modules and packages:

- ``conftest``: fixtures of every package: a TDS dev server on an ephemeral port, raw HTTP clients.
- ``rawhttp``: a bare-socket HTTP client for tests that must control the bytes.
- ``devclient``: pytds to a dev server on this machine, logged in with the dev credentials.
- ``polling``: waiting for a condition, in a blocking and an asynchronous variant.
- ``commands``: checks shared by the tests of the three commands (dev server, API, BFF).
- ``backpressure``: backpressure as the dev server sees it while a reader holds off.
- ``libreoffice``: LibreOffice as an independent reader of a workbook (every sheet to CSV).
- ``extensions``: whether this run has the row code's C extensions switched off.
- ``extension_switch``: where the C extensions come from in every process of a run (not a package).
- ``e2e``: the whole chain (dev server, API and BFF processes) with curl and a real browser.
- ``test_server``: the export API.
- ``test_bff``: the BFF and its page.
- ``test_edge``: the HTTP edge both services share, their settings and their metrics' format.
- ``test_sql``: the reports' definitions, their T-SQL and the TDS dev server.
- ``test_tdsrows``: the fast row path.
- ``test_xlsx``: the workbook writer.
- ``test_fuzz``: the compiled row code, fuzzed (``make fuzz`` for a long run).
- ``test_deploy``: the Dockerfile and compose.yaml against the project.
- ``load``: the load harness (``python -m tests.load``) and its tests.
- ``bench``: the benchmarks (``make bench``).
"""
