"""The numbers ``tdsrows/_rowscan.c`` shares with Python are the Python definitions' values.

Each number has one definition in Python, which every Python caller uses, with or without the
compiled scanner: the stop codes (:mod:`tdsrows.stops`), the cell layout
(:mod:`primitive_cells`), the scanner's ops, conversions and buffer sizes
(:mod:`tdsrows.scan`). The C file has its own (an enum or a #define each) and exports them as
module constants; these tests hold the two equal, name by name, and every exported op and
conversion to a member of the Python enum. (The writer's side: test_native_rows.py,
``test_the_c_constants_are_the_python_ones``.)
"""

from __future__ import annotations

import importlib
from typing import Any

import pytest

import primitive_cells
from tdsrows import scan, stops
from tdsrows.scan import Conversion

pytestmark = pytest.mark.compiled


@pytest.fixture(scope="module")
def rowscan() -> Any:
    return importlib.import_module("tdsrows._rowscan")


def exported(module: Any, prefix: str) -> dict[str, int]:
    return {
        name[len(prefix) :]: getattr(module, name)
        for name in dir(module)
        if name.startswith(prefix)
    }


def test_the_stop_codes_are_tdsrows_stops(rowscan: Any) -> None:
    assert exported(rowscan, "STOP_") == {
        "INCOMPLETE": stops.INCOMPLETE,
        "FULL": stops.FULL,
        "SLOW": stops.SLOW,
        "MALFORMED": stops.MALFORMED,
    }


def test_the_sizes_are_the_python_ones(rowscan: Any) -> None:
    assert rowscan.CELL_BYTES == primitive_cells.CELL_BYTES == primitive_cells.CELL.size
    assert rowscan.START_BYTES == scan.START_BYTES
    assert rowscan.PROGRAM_BYTES == scan.PROGRAM_BYTES
    assert rowscan.PLAN_BYTES == scan.PLAN_BYTES


def test_the_ops_and_conversions_are_the_python_enums(rowscan: Any) -> None:
    assert exported(rowscan, "OP_") == {op.name: op.value for op in scan._Op}
    assert exported(rowscan, "CONV_") == {c.name: c.value for c in Conversion}
