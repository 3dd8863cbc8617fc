"""The developer's scripts: the dev stack (``make run``) and the OS packages the tests drive.

``install-system-deps.sh`` (``make system-deps``) installs curl, FreeTDS, Chromium, LibreOffice
and axe-core where one is missing.

Modules:

- ``run_stack``: ``make run``: dev database, export API, BFF and page; Ctrl-C stops all.
- ``stack``: the dev stack as real processes, for ``make run``, end-to-end tests and benchmarks.
"""
