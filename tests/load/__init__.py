"""Load testing of the export stack: ``python -m tests.load --help``.

The harness's own tests are the ``test_*.py`` modules here; ``test_harness`` runs it end to end.

Modules, from the command line inwards:

- ``__main__``: ``python -m tests.load``: the command.
- ``options``: the command line and the named scenarios.
- ``targets``: only loopback is a target unless ``--allow-remote`` says otherwise.
- ``runner``: one run end to end: the stack, counters, watchers, load, drain, counters again.
- ``reports``: the reports a run can ask for: parameters, paths, refusals, what a download holds.
- ``plan``: who does what in a run, decided up front from a seed.
- ``client``: the load itself: a bounded number of asyncio clients working through the plan.
- ``verify``: the streaming check of a downloaded workbook: bytes in, a verdict at the end.
- ``sheets``: the inside of a workbook as it streams: each worksheet's XML, the sheet list.
- ``expect``: what a download of a given report must hold, and the comparison with what it held.
- ``monitor``: what is watched while the load runs: health probes, process and metrics samplers.
- ``dbstats``: the TDS dev server's own counters, read over TDS.
- ``report``: from what was measured to the report: figures, checks, a text table.
- ``plot``: ``--plot``: the run over time in one PNG.
- ``errors``: the harness's exception base.
"""
