"""The package parts around the sheets: workbook, relationships, content types."""

from collections.abc import Sequence
from dataclasses import dataclass

from xlsx.escape import escape_attr

_XML = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
_CT = "application/vnd.openxmlformats-officedocument.spreadsheetml"


@dataclass(frozen=True)
class SheetInfo:
    name: str
    last_row: int  # the autofilter covers A1 to last column, last_row
    last_column: str


def sheet_path(index: int) -> str:
    """Zip path of the 0-based sheet `index`."""
    return f"xl/worksheets/sheet{index + 1}.xml"


def content_types_xml(sheet_count: int) -> bytes:
    overrides = "".join(
        f'<Override PartName="/{sheet_path(i)}" ContentType="{_CT}.worksheet+xml"/>'
        for i in range(sheet_count)
    )
    return (
        f'{_XML}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
        'relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        f'<Override PartName="/xl/workbook.xml" ContentType="{_CT}.sheet.main+xml"/>'
        f'<Override PartName="/xl/styles.xml" ContentType="{_CT}.styles+xml"/>'
        f"{overrides}</Types>"
    ).encode()


def root_rels_xml() -> bytes:
    return (
        f'{_XML}<Relationships xmlns="{_PKG_REL}">'
        f'<Relationship Id="rId1" Type="{_REL}/officeDocument" Target="xl/workbook.xml"/>'
        "</Relationships>"
    ).encode()


def workbook_rels_xml(sheet_count: int) -> bytes:
    sheets = "".join(
        f'<Relationship Id="rId{i + 1}" Type="{_REL}/worksheet"'
        f' Target="worksheets/sheet{i + 1}.xml"/>'
        for i in range(sheet_count)
    )
    styles = f'<Relationship Id="rId{sheet_count + 1}" Type="{_REL}/styles" Target="styles.xml"/>'
    return f'{_XML}<Relationships xmlns="{_PKG_REL}">{sheets}{styles}</Relationships>'.encode()


def workbook_xml(sheets: Sequence[SheetInfo]) -> bytes:
    entries = "".join(
        f'<sheet name="{escape_attr(s.name)}" sheetId="{i + 1}" r:id="rId{i + 1}"/>'
        for i, s in enumerate(sheets)
    )
    # Excel keeps an autofilter's range in this hidden name and expects it (XlsxWriter writes it).
    names = "".join(
        f'<definedName name="_xlnm._FilterDatabase" localSheetId="{i}" hidden="1">'
        f"{escape_attr(quote_sheet(s.name))}!$A$1:${s.last_column}${s.last_row}</definedName>"
        for i, s in enumerate(sheets)
    )
    return (
        f'{_XML}<workbook xmlns="{_MAIN}" xmlns:r="{_REL}">'
        '<bookViews><workbookView activeTab="0"/></bookViews>'
        f"<sheets>{entries}</sheets><definedNames>{names}</definedNames></workbook>"
    ).encode()


def quote_sheet(name: str) -> str:
    """The sheet name as a formula reference wants it: quoted, apostrophes doubled.

    Always quoted: Excel reads 'Report'!$A$1 as well as Report!$A$1, while deciding when quotes
    may be left out takes Excel's full rules (names like "A1", "R1C1", "1st", spaces, non-word
    characters...), where one miss makes a name Excel repairs.
    """
    return "'" + name.replace("'", "''") + "'"
