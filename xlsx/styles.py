"""The minimal styles.xml: a bold header, three date formats and any per-column formats."""

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
# Ids below 164 are Excel's built-in formats; custom ones start here (ECMA-376 18.8.30).
FIRST_CUSTOM_FORMAT_ID: Final = 164

_FONT = '<sz val="11"/><name val="Calibri"/><family val="2"/>'
_XF = '<xf numFmtId="{}" fontId="{}" fillId="0" borderId="0" xfId="0"{}/>'


def styles_xml(custom_formats: Sequence[str]) -> bytes:
    """styles.xml; custom format i gets style FIRST_CUSTOM_STYLE + i."""
    formats = [DATE_FORMAT, DATETIME_FORMAT, TIME_FORMAT, *custom_formats]
    num_fmts = "".join(
        f'<numFmt numFmtId="{FIRST_CUSTOM_FORMAT_ID + i}" formatCode="{escape_attr(code)}"/>'
        for i, code in enumerate(formats)
    )
    xfs = [_XF.format(0, 0, ""), _XF.format(0, 1, ' applyFont="1"')]
    xfs += [
        _XF.format(FIRST_CUSTOM_FORMAT_ID + i, 0, ' applyNumberFormat="1"')
        for i in range(len(formats))
    ]
    return (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        f'<numFmts count="{len(formats)}">{num_fmts}</numFmts>'
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
