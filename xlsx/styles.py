"""The minimal styles.xml: a bold header, three date formats and any per-column formats."""

import re
from collections.abc import Sequence
from typing import Final

from xlsx.escape import escape_attr

# cellXfs indexes the cells refer to with s="N".
STYLE_HEADER: Final = 1
STYLE_DATE: Final = 2
STYLE_DATETIME: Final = 3
STYLE_TIME: Final = 4
FIRST_CUSTOM_STYLE: Final = 5

# Explicit formats rather than built-in numFmtId 14, which Excel shows per locale (m/d/yyyy).
DATE_FORMAT: Final = "yyyy-mm-dd"
DATETIME_FORMAT: Final = "yyyy-mm-dd hh:mm:ss"
TIME_FORMAT: Final = "hh:mm:ss"
DEFAULT_FORMATS: Final = (DATE_FORMAT, DATETIME_FORMAT, TIME_FORMAT)
# Ids below 164 are Excel's built-in formats; custom ones start here (ECMA-376 18.8.30).
FIRST_CUSTOM_FORMAT_ID: Final = 164

# Excel takes format codes of at most 255 characters (its Format Cells dialog refuses longer
# ones; other writers enforce the same limit) and "between 200 and 250" number formats per
# workbook depending on its language version (Excel specifications and limits; ExcelJS users saw
# the repair dialog past that). Whether the ~36 built-in formats count is not documented, so
# this stays below 200 - 36, the three defaults above included.
MAX_FORMAT_CODE: Final = 255
MAX_CUSTOM_FORMATS: Final = 160
MAX_COLUMN_FORMATS: Final = MAX_CUSTOM_FORMATS - len(DEFAULT_FORMATS)
# Control characters cannot be written in an attribute (XML 1.0 forbids most of them, and an
# attribute's tabs and newlines are read back as spaces); Excel's format codes never need them.
_BAD_FORMAT_CHARACTER = re.compile("[\x00-\x1f\ud800-\udfff\ufffe\uffff]")

_FONT = '<sz val="11"/><name val="Calibri"/><family val="2"/>'
_XF = '<xf numFmtId="{}" fontId="{}" fillId="0" borderId="0" xfId="0"{}/>'


def format_code_problem(code: str) -> str | None:
    """Why Excel would not accept `code` as a number format, or None if it would."""
    if not code:
        return "it is empty"
    if len(code) > MAX_FORMAT_CODE:
        return f"it is longer than {MAX_FORMAT_CODE} characters"
    if match := _BAD_FORMAT_CHARACTER.search(code):
        return f"it contains {match[0]!r} (control characters cannot be written there)"
    return None


def styles_xml(custom_formats: Sequence[str]) -> bytes:
    """styles.xml; custom format i gets style FIRST_CUSTOM_STYLE + i."""
    formats = [*DEFAULT_FORMATS, *custom_formats]
    # One numFmt per distinct code: a column format equal to a default one ("yyyy-mm-dd")
    # shares its id rather than defining the same code twice.
    ids: dict[str, int] = {}
    for code in formats:
        ids.setdefault(code, FIRST_CUSTOM_FORMAT_ID + len(ids))
    num_fmts = "".join(
        f'<numFmt numFmtId="{number}" formatCode="{escape_attr(code)}"/>'
        for code, number in ids.items()
    )
    xfs = [_XF.format(0, 0, ""), _XF.format(0, 1, ' applyFont="1"')]
    xfs += [_XF.format(ids[code], 0, ' applyNumberFormat="1"') for code in formats]
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        f'<numFmts count="{len(ids)}">{num_fmts}</numFmts>'
        f'<fonts count="2"><font>{_FONT}</font><font><b/>{_FONT}</font></fonts>'
        '<fills count="2"><fill><patternFill patternType="none"/></fill>'
        '<fill><patternFill patternType="gray125"/></fill></fills>'
        '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
        '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/>'
        "</cellStyleXfs>"
        f'<cellXfs count="{len(xfs)}">{"".join(xfs)}</cellXfs>'
        '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
        "</styleSheet>"
    ).encode()
