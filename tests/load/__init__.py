"""Load testing of the export stack: ``python -m tests.load --help``.

Modules: ``options`` (command line, scenarios), ``plan`` (who does what, seeded), ``client``
(the asyncio clients), ``verify`` (streaming workbook check), ``monitor`` (probes and
samplers), ``dbstats`` (the dev server's counters), ``report`` (figures, checks, tables),
``plot`` (--plot), ``runner`` (one run end to end), ``targets`` (loopback only).
"""
