"""The package parts around the sheets: workbook, relationships, content types, properties.

Which parts and relationships a package holds follows ECMA-376 Part 2 (Open Packaging
Conventions: content types §10.1.2, core properties §11) and Part 1 (the Workbook part §12.3.23
and its sheet, styles and theme relationships; the Theme part among the DrawingML parts of §14.2;
the core and extended file properties parts §15.2.12).
"""

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from xlsx.escape import escape_attr

_XML = '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
_CT = "application/vnd.openxmlformats-officedocument"
_CORE_NS = "http://schemas.openxmlformats.org/package/2006/metadata/core-properties"
_APP_NS = "http://schemas.openxmlformats.org/officeDocument/2006/extended-properties"

# What the document properties name as the application and the author: this writer.
APPLICATION: Final = "xlsx-stream-export"

STYLES_PATH: Final = "xl/styles.xml"
THEME_PATH: Final = "xl/theme/theme1.xml"
WORKBOOK_PATH: Final = "xl/workbook.xml"
WORKBOOK_RELS_PATH: Final = "xl/_rels/workbook.xml.rels"
CORE_PATH: Final = "docProps/core.xml"
APP_PATH: Final = "docProps/app.xml"
ROOT_RELS_PATH: Final = "_rels/.rels"
CONTENT_TYPES_PATH: Final = "[Content_Types].xml"

# Part name -> content type of the parts every workbook has besides its sheets.
_FIXED_PARTS: Final = (
    (WORKBOOK_PATH, f"{_CT}.spreadsheetml.sheet.main+xml"),
    (STYLES_PATH, f"{_CT}.spreadsheetml.styles+xml"),
    (THEME_PATH, f"{_CT}.theme+xml"),
    (CORE_PATH, "application/vnd.openxmlformats-package.core-properties+xml"),
    (APP_PATH, f"{_CT}.extended-properties+xml"),
)


@dataclass(frozen=True)
class SheetInfo:
    name: str
    last_row: int  # the autofilter covers A1 to last column, last_row
    last_column: str


def sheet_path(index: int) -> str:
    """Zip path of the 0-based sheet `index`."""
    return f"xl/worksheets/sheet{index + 1}.xml"


def content_types_xml(sheet_count: int) -> bytes:
    parts = [*_FIXED_PARTS]
    parts += [(sheet_path(i), f"{_CT}.spreadsheetml.worksheet+xml") for i in range(sheet_count)]
    overrides = "".join(
        f'<Override PartName="/{name}" ContentType="{kind}"/>' for name, kind in parts
    )
    return (
        f'{_XML}<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.'
        'relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        f"{overrides}</Types>"
    ).encode()


def _relationships(targets: Sequence[tuple[str, str]]) -> bytes:
    """A relationships part: (type URI, target) pairs get rId1, rId2, ... in order."""
    entries = "".join(
        f'<Relationship Id="rId{i + 1}" Type="{kind}" Target="{target}"/>'
        for i, (kind, target) in enumerate(targets)
    )
    return f'{_XML}<Relationships xmlns="{_PKG_REL}">{entries}</Relationships>'.encode()


def root_rels_xml() -> bytes:
    return _relationships(
        [
            (f"{_REL}/officeDocument", WORKBOOK_PATH),
            (f"{_PKG_REL}/metadata/core-properties", CORE_PATH),
            (f"{_REL}/extended-properties", APP_PATH),
        ]
    )


def workbook_rels_xml(sheet_count: int) -> bytes:
    """The workbook's relationships; sheet i (0-based) is rId{i + 1}, as workbook_xml expects."""
    return _relationships(
        [(f"{_REL}/worksheet", f"worksheets/sheet{i + 1}.xml") for i in range(sheet_count)]
        + [(f"{_REL}/styles", "styles.xml"), (f"{_REL}/theme", "theme/theme1.xml")]
    )


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


def w3cdtf(moment: dt.datetime) -> str:
    """`moment` in UTC as W3CDTF to the second (2024-02-29T13:37:42Z); naive means local time.

    OPC requires this form for dcterms:created and dcterms:modified (ECMA-376 Part 2, §11.1).
    """
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def core_xml(created: dt.datetime) -> bytes:
    """docProps/core.xml: the author and the created and modified times (the same moment)."""
    stamp = w3cdtf(created)
    return (
        f'{_XML}<cp:coreProperties xmlns:cp="{_CORE_NS}"'
        ' xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:dcterms="http://purl.org/dc/terms/"'
        ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f"<dc:creator>{APPLICATION}</dc:creator>"
        f'<dcterms:created xsi:type="dcterms:W3CDTF">{stamp}</dcterms:created>'
        f'<dcterms:modified xsi:type="dcterms:W3CDTF">{stamp}</dcterms:modified>'
        "</cp:coreProperties>"
    ).encode()


def app_xml() -> bytes:
    """docProps/app.xml: the application that wrote the file."""
    return (
        f'{_XML}<Properties xmlns="{_APP_NS}"><Application>{APPLICATION}</Application></Properties>'
    ).encode()


def quote_sheet(name: str) -> str:
    """The sheet name as a formula reference wants it: quoted, apostrophes doubled.

    Always quoted: Excel reads 'Report'!$A$1 as well as Report!$A$1, while deciding when quotes
    may be left out takes Excel's full rules (names like "A1", "R1C1", "1st", spaces, non-word
    characters...), where one miss makes a name Excel repairs.
    """
    return "'" + name.replace("'", "''") + "'"
