"""Where the row code's C extensions come from, for every Python process of a test run.

Python imports ``sitecustomize`` at start-up from its path; the Makefile's ``test-sanitize``
and ``test-no-extensions`` put this directory on ``PYTHONPATH`` (so worker processes and
subprocesses inherit it) and say in ``ROWCODE_EXTENSIONS``:

- ``off``: ``tdsrows._rowscan`` and ``xlsx._rowxml`` cannot be imported, as where no C compiler
  was found at install time: every row takes the generated Python code;
- a directory: the two modules are the builds in it (``tdsrows/_rowscan*.so``,
  ``xlsx/_rowxml*.so``: the sanitizer build) instead of those next to the sources. A module
  missing there is an ImportError, not a silent fallback.

Unset, nothing changes. (Test scaffolding: no package of the project reads its environment.)
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from types import ModuleType

MODULES = ("tdsrows._rowscan", "xlsx._rowxml")
SWITCH = "ROWCODE_EXTENSIONS"


class ExtensionSwitch:
    """A meta path finder for the two extension modules, ahead of the usual ones."""

    def __init__(self, where: str) -> None:
        self.where = where

    def find_spec(
        self, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if name not in MODULES:
            return None
        if self.where == "off":
            raise ModuleNotFoundError(f"{name} is switched off ({SWITCH}=off)", name=name)
        package, module = name.split(".")
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            candidate = os.path.join(self.where, package, module + suffix)
            if os.path.exists(candidate):
                return importlib.util.spec_from_file_location(name, candidate)
        raise ModuleNotFoundError(f"{name} is not built in {self.where}", name=name)


_where = os.environ.get(SWITCH)
if _where:
    sys.meta_path.insert(0, ExtensionSwitch(_where))
