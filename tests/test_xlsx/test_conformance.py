"""Every part of written workbooks checked against ECMA-376 rules Excel enforces on open.

Excel shows its "repair" dialog for things lenient readers (openpyxl, calamine) accept: child
elements out of schema order, `count` attributes that disagree with their children, missing
required attributes, relationships or content types that point nowhere, duplicate or overlong
sheet names, a `_xlnm._FilterDatabase` name that disagrees with the autofilter. Each part is
parsed with a strict XML parser (expat: any well-formedness error raises), then walked.
Sequences below are from ECMA-376 Part 1, sml.xsd / dml-main.xsd, and Part 2, opc-*.xsd (the
elements this writer uses and their neighbours; an element not listed fails the test too).
"""

import datetime as dt
import decimal
import io
import math
import posixpath
import random
import re
import uuid
import xml.dom.minidom
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Sequence

import pytest

import xlsx
from tests.test_xlsx.support import random_value, write
from xlsx.escape import utf16_units
from xlsx.names import check_sheet_name, column_letter

MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
CT = "http://schemas.openxmlformats.org/package/2006/content-types"
XML_NS = "http://www.w3.org/XML/1998/namespace"
DML = "http://schemas.openxmlformats.org/drawingml/2006/main"
CORE = "http://schemas.openxmlformats.org/package/2006/metadata/core-properties"
DCTERMS = "http://purl.org/dc/terms/"
XSI = "http://www.w3.org/2001/XMLSchema-instance"
APP = "http://schemas.openxmlformats.org/officeDocument/2006/extended-properties"
CT_PREFIX = "application/vnd.openxmlformats-officedocument"

# Every part a workbook holds besides its sheets: (content type, relationship type, source).
PARTS = {
    "xl/workbook.xml": (f"{CT_PREFIX}.spreadsheetml.sheet.main+xml", f"{REL}/officeDocument", ""),
    "xl/styles.xml": (f"{CT_PREFIX}.spreadsheetml.styles+xml", f"{REL}/styles", "xl"),
    "xl/theme/theme1.xml": (f"{CT_PREFIX}.theme+xml", f"{REL}/theme", "xl"),
    "docProps/core.xml": (
        "application/vnd.openxmlformats-package.core-properties+xml",
        f"{PKG_REL}/metadata/core-properties",
        "",
    ),
    "docProps/app.xml": (f"{CT_PREFIX}.extended-properties+xml", f"{REL}/extended-properties", ""),
}
SHEET_TYPES = (f"{CT_PREFIX}.spreadsheetml.worksheet+xml", f"{REL}/worksheet", "xl")

# CT_Worksheet, CT_Workbook, CT_Stylesheet, CT_SheetView, CT_Cell, CT_Rst (sml.xsd).
WORKSHEET_ORDER = [
    "sheetPr", "dimension", "sheetViews", "sheetFormatPr", "cols", "sheetData", "sheetCalcPr",
    "sheetProtection", "protectedRanges", "scenarios", "autoFilter", "sortState",
    "dataConsolidate", "customSheetViews", "mergeCells", "phoneticPr", "conditionalFormatting",
    "dataValidations", "hyperlinks", "printOptions", "pageMargins", "pageSetup", "headerFooter",
]  # fmt: skip
WORKBOOK_ORDER = [
    "fileVersion", "fileSharing", "workbookPr", "workbookProtection", "bookViews", "sheets",
    "functionGroups", "externalReferences", "definedNames", "calcPr",
]  # fmt: skip
STYLESHEET_ORDER = [
    "numFmts", "fonts", "fills", "borders", "cellStyleXfs", "cellXfs", "cellStyles", "dxfs",
    "tableStyles", "colors",
]  # fmt: skip
SHEETVIEW_ORDER = ["pane", "selection"]
CELL_ORDER = ["f", "v", "is"]
# CT_OfficeStyleSheet, CT_BaseStyles, CT_ColorScheme, CT_FontScheme, CT_FontCollection,
# CT_StyleMatrix, CT_LineProperties, CT_EffectStyleItem (dml-main.xsd, §20.1.6 and §20.1.4.1).
THEME_ORDER = ["themeElements", "objectDefaults", "extraClrSchemeLst", "custClrLst", "extLst"]
BASE_STYLES_ORDER = ["clrScheme", "fontScheme", "fmtScheme", "extLst"]
COLOR_SLOTS = [
    "dk1", "lt1", "dk2", "lt2", "accent1", "accent2", "accent3", "accent4", "accent5", "accent6",
    "hlink", "folHlink",
]  # fmt: skip
COLOR_CHOICE = {"scrgbClr", "srgbClr", "hslClr", "sysClr", "schemeClr", "prstClr"}
FONT_SCHEME_ORDER = ["majorFont", "minorFont", "extLst"]
FONT_COLLECTION_ORDER = ["latin", "ea", "cs", "font", "extLst"]
STYLE_MATRIX_ORDER = ["fillStyleLst", "lnStyleLst", "effectStyleLst", "bgFillStyleLst"]
FILLS = {"noFill", "solidFill", "gradFill", "blipFill", "pattFill", "grpFill"}
LINE_ORDER = [
    "noFill", "solidFill", "gradFill", "pattFill", "prstDash", "custDash", "round", "bevel",
    "miter", "headEnd", "tailEnd", "extLst",
]  # fmt: skip
EFFECT_STYLE_ORDER = ["effectLst", "effectDag", "scene3d", "sp3d"]
MIN_STYLES = 3  # minOccurs of each of the format scheme's four lists
# ST_CellType "e": the error values Excel knows.
ERRORS = {"#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A", "#GETTING_DATA"}
CELL_REF = re.compile(r"([A-Z]{1,3})([0-9]+)")
FIRST_CUSTOM_FORMAT_ID = 164


def q(tag: str, ns: str = MAIN) -> str:
    return f"{{{ns}}}{tag}"


def local(element: ET.Element) -> str:
    return element.tag.rsplit("}", 1)[-1]


def column_index(letters: str) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + ord(ch) - 64
    return n


def assert_in_order(parent: ET.Element, order: Sequence[str], required: Sequence[str] = ()) -> None:
    """Children of `parent` all known, in schema sequence (repeats of one kind allowed), and
    the `required` ones all present."""
    names = [local(child) for child in parent]
    assert all(name in order for name in names), (local(parent), names)
    positions = [order.index(name) for name in names]
    assert positions == sorted(positions), (local(parent), names)
    assert set(required) <= set(names), (local(parent), names)


def assert_counts(parent: ET.Element) -> None:
    """Every `count` attribute below `parent` equals its number of children."""
    for element in parent.iter():
        if "count" in element.attrib:
            assert int(element.attrib["count"]) == len(element), local(element)


def parse_parts(data: bytes) -> dict[str, ET.Element]:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert z.testzip() is None
        parts = {}
        for name in z.namelist():
            raw = z.read(name)
            assert raw.startswith(b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>')
            xml.dom.minidom.parseString(raw)  # strict: raises on any well-formedness error
            parts[name] = ET.fromstring(raw)
    return parts


def check_package(parts: dict[str, ET.Element]) -> None:
    """Content types cover every part and name only parts that exist; rels resolve; every part
    has its content type and is the target of the relationship type its kind needs."""
    types = parts["[Content_Types].xml"]
    defaults = {
        d.attrib["Extension"]: d.attrib["ContentType"] for d in types.iter(q("Default", CT))
    }
    overrides = {
        o.attrib["PartName"]: o.attrib["ContentType"] for o in types.iter(q("Override", CT))
    }
    assert set(defaults) == {"rels", "xml"}
    for name in overrides:
        assert name.lstrip("/") in parts, name
    for name in parts:
        if name != "[Content_Types].xml":
            assert "/" + name in overrides or name.rsplit(".", 1)[-1] in defaults, name
    targets: dict[str, tuple[str, str]] = {}  # part -> (relationship type, source directory)
    for name, root in parts.items():
        if not name.endswith(".rels"):
            continue
        assert root.tag == q("Relationships", PKG_REL)
        source_dir = posixpath.dirname(posixpath.dirname(name))
        ids = [rel.attrib["Id"] for rel in root]
        assert len(ids) == len(set(ids)), name
        for rel in root:
            target = posixpath.normpath(posixpath.join(source_dir, rel.attrib["Target"]))
            assert target in parts, (name, target)
            assert target not in targets, target  # one relationship per part
            targets[target] = (rel.attrib["Type"], source_dir)
    for name in parts:
        if name.endswith(".rels") or name == "[Content_Types].xml":
            continue
        content_type, rel_type, source = PARTS.get(name, SHEET_TYPES)
        assert overrides.get("/" + name) == content_type, name
        assert targets.get(name) == (rel_type, source), name
    assert set(PARTS) <= set(parts)


def check_styles(styles: ET.Element) -> tuple[int, dict[int, str]]:
    """(number of cellXfs, custom format code by id) after checking styles.xml."""
    assert_in_order(styles, STYLESHEET_ORDER)
    assert_counts(styles)
    formats = {int(f.attrib["numFmtId"]): f.attrib["formatCode"] for f in styles.iter(q("numFmt"))}
    assert all(number >= FIRST_CUSTOM_FORMAT_ID for number in formats)
    assert len(set(formats.values())) == len(formats)  # no code defined twice
    counts = {kind: len(styles.find(q(kind)) or ()) for kind in ("fonts", "fills", "borders")}
    xfs = styles.find(q("cellXfs"))
    assert xfs is not None
    for xf in [*xfs, *(styles.find(q("cellStyleXfs")) or ())]:
        number = int(xf.attrib["numFmtId"])
        assert number < FIRST_CUSTOM_FORMAT_ID or number in formats
        assert int(xf.attrib["fontId"]) < counts["fonts"]
        assert int(xf.attrib["fillId"]) < counts["fills"]
        assert int(xf.attrib["borderId"]) < counts["borders"]
    for style in styles.iter(q("cellStyle")):
        assert "xfId" in style.attrib
    return len(xfs), formats


def check_worksheet(sheet: ET.Element, *, xf_count: int, width: int, selected: bool) -> int:
    """The sheet's last row number after checking its structure and every cell."""
    assert_in_order(sheet, WORKSHEET_ORDER)
    assert sheet.find(q("dimension")) is None  # omitted rather than guessed
    views = sheet.findall(f"{q('sheetViews')}/{q('sheetView')}")
    assert len(views) == 1
    assert_in_order(views[0], SHEETVIEW_ORDER)
    assert views[0].attrib["workbookViewId"] == "0"
    assert (views[0].get("tabSelected") == "1") == selected
    pane = views[0].find(q("pane"))
    assert pane is not None
    assert pane.attrib["state"] == "frozen"
    assert pane.attrib["topLeftCell"] == "A2"
    assert pane.attrib["activePane"] == "bottomLeft"
    for selection in views[0].iter(q("selection")):
        assert selection.attrib["pane"] == pane.attrib["activePane"]
    format_pr = sheet.find(q("sheetFormatPr"))
    assert format_pr is not None
    assert "defaultRowHeight" in format_pr.attrib
    columns = sheet.findall(f"{q('cols')}/{q('col')}")
    assert 1 <= len(columns) <= width
    for col in columns:
        assert 1 <= int(col.attrib["min"]) <= int(col.attrib["max"]) <= width
        assert 0 <= float(col.attrib["width"]) <= 255

    last_row = 0
    for row in sheet.iter(q("row")):
        number = int(row.attrib["r"])
        assert 1 <= number <= xlsx.EXCEL_MAX_ROWS
        assert number > last_row
        last_row = number
        last_column = 0
        for cell in row:
            assert local(cell) == "c"
            assert_in_order(cell, CELL_ORDER)
            match = CELL_REF.fullmatch(cell.attrib["r"])
            assert match
            assert int(match[2]) == number
            index = column_index(match[1])
            assert last_column < index <= width
            last_column = index
            if "s" in cell.attrib:
                assert 0 <= int(cell.attrib["s"]) < xf_count
            check_cell(cell)
    assert last_row >= 1  # the header row is always there
    last = column_letter(width - 1)
    auto_filter = sheet.find(q("autoFilter"))
    assert auto_filter is not None
    assert auto_filter.attrib["ref"] == f"A1:{last}{last_row}"
    return last_row


def check_cell(cell: ET.Element) -> None:
    kind = cell.get("t", "n")
    value = cell.find(q("v"))
    if kind == "inlineStr":
        assert value is None
        texts = cell.findall(f"{q('is')}/{q('t')}")
        assert len(texts) == 1
        text = texts[0].text or ""
        assert utf16_units(text) <= 32_767 or "_x" in text  # escapes are decoded by Excel
        if text != text.strip():  # Excel trims the text's ends unless told to keep them
            assert texts[0].get(q("space", XML_NS)) == "preserve", repr(text)
        return
    assert value is not None
    assert value.text is not None
    if kind == "b":
        assert value.text in ("0", "1")
    elif kind == "e":
        assert value.text in ERRORS
    else:
        assert kind == "n"
        assert math.isfinite(float(value.text))


def check_theme(theme: ET.Element) -> None:
    """theme1.xml: DrawingML's required elements, in schema order, down to the style lists."""
    assert theme.tag == q("theme", DML)
    assert all(element.tag.startswith(f"{{{DML}}}") for element in theme.iter())
    assert_in_order(theme, THEME_ORDER, ["themeElements"])
    base = theme.find(q("themeElements", DML))
    assert base is not None
    assert_in_order(base, BASE_STYLES_ORDER, BASE_STYLES_ORDER[:3])
    colors, fonts, formats = base[:3]
    assert "name" in colors.attrib
    assert "name" in fonts.attrib
    assert_in_order(colors, [*COLOR_SLOTS, "extLst"], COLOR_SLOTS)
    for slot in colors:
        assert len(slot) == 1, local(slot)
        assert local(slot[0]) in COLOR_CHOICE, local(slot)
    assert_in_order(fonts, FONT_SCHEME_ORDER, FONT_SCHEME_ORDER[:2])
    for collection in fonts:
        assert_in_order(collection, FONT_COLLECTION_ORDER, FONT_COLLECTION_ORDER[:3])
        assert all("typeface" in font.attrib for font in collection)
    assert_in_order(formats, STYLE_MATRIX_ORDER, STYLE_MATRIX_ORDER)
    fills, lines, effects, backgrounds = formats
    for fill in [*fills, *backgrounds]:
        assert local(fill) in FILLS
    for line in lines:
        assert local(line) == "ln"
        assert_in_order(line, LINE_ORDER)
    for effect in effects:
        assert local(effect) == "effectStyle"
        assert_in_order(effect, EFFECT_STYLE_ORDER)
        assert sum(local(e) in EFFECT_STYLE_ORDER[:2] for e in effect) == 1  # one container
    assert all(len(styles) >= MIN_STYLES for styles in formats)


def check_properties(core: ET.Element, app: ET.Element) -> dt.datetime:
    """The created time after checking core.xml (OPC §11) and app.xml."""
    assert core.tag == q("coreProperties", CORE)
    times = []
    for element in core:
        kind = element.get(q("type", XSI))
        if element.tag in (q("created", DCTERMS), q("modified", DCTERMS)):
            # M4.5: xsi:type="dcterms:W3CDTF" on both (test_package checks the prefix's binding)
            assert kind == "dcterms:W3CDTF", element.tag
            assert element.text is not None
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", element.text)
            times.append(dt.datetime.fromisoformat(element.text))
        else:
            assert kind is None, element.tag  # M4.5: xsi:type nowhere else
    assert len(times) == 2
    assert times[0] == times[1]  # a streamed file is created and last modified at once
    assert app.tag == q("Properties", APP)
    assert [local(child) for child in app] == ["Application"]
    return times[0]


def check_workbook(data: bytes, width: int) -> list[str]:
    """The sheet names of a written workbook after checking every part."""
    parts = parse_parts(data)
    check_package(parts)
    check_theme(parts["xl/theme/theme1.xml"])
    check_properties(parts["docProps/core.xml"], parts["docProps/app.xml"])
    xf_count, _ = check_styles(parts["xl/styles.xml"])
    workbook = parts["xl/workbook.xml"]
    assert_in_order(workbook, WORKBOOK_ORDER)
    sheets = workbook.findall(f"{q('sheets')}/{q('sheet')}")
    names = [s.attrib["name"] for s in sheets]
    for name in names:
        check_sheet_name(name)
    assert len({n.casefold() for n in names}) == len(names)  # unique, ignoring case
    assert len({s.attrib["sheetId"] for s in sheets}) == len(sheets)
    rels = {rel.attrib["Id"]: rel.attrib["Target"] for rel in parts["xl/_rels/workbook.xml.rels"]}
    filters = {
        int(d.attrib["localSheetId"]): d
        for d in workbook.iter(q("definedName"))
        if d.attrib["name"] == "_xlnm._FilterDatabase"
    }
    assert sorted(filters) == list(range(len(sheets)))
    for index, sheet in enumerate(sheets):
        part = "xl/" + rels[sheet.attrib[q("id", REL)]]
        last_row = check_worksheet(parts[part], xf_count=xf_count, width=width, selected=index == 0)
        name = names[index].replace("'", "''")
        expected = f"'{name}'!$A$1:${column_letter(width - 1)}${last_row}"
        assert filters[index].text == expected
        assert filters[index].attrib["hidden"] == "1"
    return names


NASTY = [
    1,
    2**53 + 1,
    -0.5,
    float("nan"),
    float("-inf"),
    decimal.Decimal("1E-7"),
    decimal.Decimal("NaN"),
    True,
    False,
    "",
    " lead",
    "trail\n",
    "a\x00b\x0bc\rd\ud800e\ufffe",
    "_x0041_ _x_ _X0041_ _x12345_",
    "<&>\"'",
    "😀" * 20_000,
    uuid.UUID(int=7),
    b"\x00\xff",
    dt.date(1899, 12, 31),
    dt.date(1900, 2, 28),
    dt.datetime(2024, 1, 2, 3, 4, 5, 999_999),
    dt.datetime(2024, 1, 2, tzinfo=dt.UTC),
    dt.time(23, 59, 59, 999_999),
    None,
]


def test_every_value_type() -> None:
    header = [f"h{i}" for i in range(len(NASTY))] + ["  spaced header  "]
    rows = [NASTY, list(reversed(NASTY)), [None] * len(NASTY), []]
    assert check_workbook(write(header, rows), len(header)) == ["Report"]


def test_random_rows_of_every_type_with_column_formats() -> None:
    rnd = random.Random(17)
    width = 6
    rows = [[random_value(rnd) for _ in range(rnd.randrange(0, width + 1))] for _ in range(2_000)]
    columns = [None, xlsx.Column(number_format="0.00%"), xlsx.Column(width=3)]
    data = write([f"c{i}" for i in range(width)], rows, columns=columns, max_rows_per_sheet=700)
    assert len(check_workbook(data, width)) == 3


@pytest.mark.parametrize("base", ["Report (2)", "R&D 'q' <x>", "x" * 27 + " (2)", "😀" * 15])
def test_rollover_sheets_and_their_names(base: str) -> None:
    data = write(
        ["n", "s"], [(i, f"r{i}") for i in range(25)], sheet_name=base, max_rows_per_sheet=4
    )
    names = check_workbook(data, 2)
    assert len(names) == 9
    assert names[0] == base


@pytest.mark.parametrize("header", [["only"], ["a", "b", "c"]])
def test_header_only(header: list[str]) -> None:
    assert check_workbook(write(header, []), len(header)) == ["Report"]


def test_column_formats_share_ids_with_equal_default_formats() -> None:
    columns = [
        xlsx.Column(number_format="yyyy-mm-dd"),  # the default date format
        xlsx.Column(number_format='#,##0.00 "€";[Red]-#,##0.00 "€"'),
        xlsx.Column(number_format='#,##0.00 "€";[Red]-#,##0.00 "€"'),
        xlsx.Column(number_format="dd/mm/yyyy hh:mm:ss.000"),
    ]
    row = [dt.date(2024, 1, 2), 1.5, -2, dt.datetime(2024, 1, 2, 3, 4, 5, 6000)]
    data = write(["a", "b", "c", "d"], [row], columns=columns)
    check_workbook(data, 4)
    _, formats = check_styles(parse_parts(data)["xl/styles.xml"])
    assert sorted(formats.values()) == sorted(
        {
            "yyyy-mm-dd",
            "yyyy-mm-dd hh:mm:ss",
            "hh:mm:ss",
            columns[1].number_format,
            columns[3].number_format,
        }
    )


def test_widest_sheet() -> None:
    width = 16_384
    data = write([f"c{i}" for i in range(width)], [list(range(width))])
    check_workbook(data, width)
