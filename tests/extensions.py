"""Whether this test run has the row code's C extensions switched off (make
test-no-extensions: tests/extension_switch/sitecustomize.py makes their import fail)."""

from __future__ import annotations

import os

SWITCH = "ROWCODE_EXTENSIONS"


def switched_off() -> bool:
    return os.environ.get(SWITCH) == "off"
