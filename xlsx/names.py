"""Column letters and sheet names as Excel accepts them."""

import re
from collections.abc import Container
from typing import Final

from xlsx.errors import XlsxValueError
from xlsx.escape import truncate_utf16, utf16_units

# Excel's sheet limits (Excel specifications and limits): 16,384 columns (XFD), 31-character
# sheet names that contain none of []:*?/\ and neither start nor end with an apostrophe.
# Excel counts the 31 in UTF-16 code units, like cell text: an emoji counts 2, and a longer
# name is "repaired" (cut) on open.
MAX_COLUMNS: Final = 16_384
MAX_SHEET_NAME: Final = 31
_FORBIDDEN = re.compile(r"[\[\]:*?/\\\x00-\x1f\ud800-\udfff\ufffe\uffff]")
# Excel reserves this name for its change-tracking history sheet.
_RESERVED: Final = "history"


def column_letter(index: int) -> str:
    """Letters of the 0-based column `index`: 0 -> A, 25 -> Z, 26 -> AA."""
    letters = ""
    n = index + 1
    while n:
        n, rem = divmod(n - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def check_sheet_name(name: str) -> str:
    """`name` if Excel accepts it as a sheet name, else XlsxValueError saying why."""
    if not isinstance(name, str):
        raise XlsxValueError(f"sheet name must be a str, not {type(name).__name__}")
    problem = None
    if not name.strip():
        problem = "it is empty"
    elif match := _FORBIDDEN.search(name):
        problem = f"it contains {match[0]!r} (not allowed: [ ] : * ? / \\ and control characters)"
    elif utf16_units(name) > MAX_SHEET_NAME:
        problem = f"it is longer than {MAX_SHEET_NAME} characters (UTF-16 units: an emoji counts 2)"
    elif name[0] == "'" or name[-1] == "'":
        problem = "it starts or ends with an apostrophe"
    elif name.casefold() == _RESERVED:
        problem = "Excel reserves 'History'"
    if problem:
        raise XlsxValueError(f"invalid sheet name {name!r}: {problem}")
    return name


def continuation_name(base: str, number: int, taken: Container[str]) -> str:
    """Name of the `number`-th sheet (2, 3, ...) after `base`: "Report (2)", shortened to fit.

    `base` is cut (never inside a character) so the name fits MAX_SHEET_NAME, and cut further
    while the name's casefold() is in `taken`: Excel compares sheet names case-insensitively,
    and a 31-unit base such as "<27 characters> (2)" would otherwise come back as its own sheet 2.
    """
    suffix = f" ({number})"
    prefix = truncate_utf16(base, MAX_SHEET_NAME - len(suffix)) or base
    while prefix and (prefix + suffix).casefold() in taken:
        prefix = prefix[:-1]
    return prefix + suffix
