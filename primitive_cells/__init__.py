"""Rows of primitive cells: what a compiled row source gives a compiled row writer.

A source that decodes its rows in compiled code (``tdsrows._rowscan``, the TDS row scanner)
writes each value as a 16-byte *primitive cell* into a flat buffer, and the writer
(``xlsx._rowxml``, the worksheet's `<row>` writer) reads them without a Python object per
value. Both packages import this one and nothing of each other: the writer knows nothing of
TDS, the scanner nothing of spreadsheets.

A row is ``width`` consecutive cells, rows one after the other. A cell, in the machine's byte
order (:data:`CELL`):

====== ======= ===================================================================
offset type    meaning
====== ======= ===================================================================
0      int64   the int; a double's IEEE-754 bits; a bool as 0/1; for text, the
               offset of its first byte in the ``data`` the source scanned
8      int32   -1: NULL (``value`` 0); 0: a number or bool; n: the text's bytes
12     int32   reserved (0)
====== ======= ===================================================================

What a column's cells hold is its :class:`CellType`. The numbers are this module's: neither C
module has a cell type of its own (the scanner's ops and the writer's ops each imply one), so
nothing in C has to match them. :data:`CELL_BYTES` and the writer's stops are also defined in
C (``CELL_BYTES``, ``STOP_*`` in both extensions); the definitions here are the ones the
Python code uses, with or without the extensions, and tests hold each extension's exported
constants equal to them (tests/test_tdsrows/test_c_constants.py,
tests/test_xlsx/test_native_rows.py).
"""

from __future__ import annotations

import enum
import struct
from typing import Any, Final, Protocol

__all__ = [
    "CELL",
    "CELL_BYTES",
    "STOP_DECLINED",
    "STOP_DONE",
    "STOP_ROOM",
    "CellType",
    "CellWriter",
]


class CellType(enum.IntEnum):
    """What a column's primitive cells hold."""

    INT64 = 1  # an integer (or an integer standing for a decimal, a date, a datetime)
    DOUBLE = 2  # a double's bits (a real is widened)
    BOOL = 3
    BYTE_TEXT = 4  # bytes of an ASCII-compatible code page, not decoded
    UTF16_TEXT = 5  # UTF-16LE, not decoded


CELL_BYTES: Final = 16
CELL: Final = struct.Struct("=qii")  # value, length, reserved

# Why a writer's encode stopped before the rows it was given (``xlsx._rowxml`` exports the
# same values as STOP_DONE, STOP_ROOM, STOP_DECLINED).
STOP_DONE: Final = 0  # every row written
STOP_ROOM: Final = 1  # the next row would go beyond the room
STOP_DECLINED: Final = 2  # the next row holds a value the writer leaves to Python code


class CellWriter(Protocol):
    """A compiled writer of rows of primitive cells."""

    def encode(
        self, data: bytes, cells: Any, rows: int, first_row: int, room: int
    ) -> tuple[bytes, int, int]:
        """(text as UTF-8, rows written, stop): the first ``rows`` rows of ``cells`` (text
        cells point into ``data``), numbered from ``first_row``; stopping before a row that
        would bring the bytes beyond ``room`` (STOP_ROOM) or that it declines
        (STOP_DECLINED)."""
