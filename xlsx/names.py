"""Column letters and sheet names as Excel accepts them."""

import re
from typing import Final

from xlsx.errors import XlsxValueError

# Excel's sheet limits (Excel specifications and limits): 16,384 columns (XFD), 31-character
# sheet names that contain none of []:*?/\ and neither start nor end with an apostrophe.
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
    elif len(name) > MAX_SHEET_NAME:
        problem = f"it is longer than {MAX_SHEET_NAME} characters"
    elif match := _FORBIDDEN.search(name):
        problem = f"it contains {match[0]!r} (not allowed: [ ] : * ? / \\ and control characters)"
    elif name[0] == "'" or name[-1] == "'":
        problem = "it starts or ends with an apostrophe"
    elif name.casefold() == _RESERVED:
        problem = "Excel reserves 'History'"
    if problem:
        raise XlsxValueError(f"invalid sheet name {name!r}: {problem}")
    return name


def continuation_name(base: str, number: int) -> str:
    """Name of the `number`-th sheet (2, 3, ...) after `base`: "Report (2)", shortened to fit."""
    suffix = f" ({number})"
    return base[: MAX_SHEET_NAME - len(suffix)] + suffix
