"""Load testing of the export stack: ``python -m tests.load --help``.

Modules: ``options`` (command line, scenarios), ``reports`` (the reports a run can ask for:
parameters, paths, refusals, what a download holds), ``plan`` (who does what, seeded),
``client`` (the asyncio clients), ``verify`` (streaming workbook check) with ``sheets`` (each
worksheet's XML, the sheet list), ``expect`` (a download against its report), ``monitor``
(probes and samplers), ``dbstats`` (the dev server's counters), ``report`` (figures, checks,
tables), ``plot`` (--plot), ``runner`` (one run end to end), ``targets`` (loopback only).
"""
