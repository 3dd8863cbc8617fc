"""The zip container and the package parts: classic (non-Zip64) zip, part order, sheet features."""

import datetime as dt
import io
import logging
import struct
import xml.etree.ElementTree as ET
import zipfile

import openpyxl
import pytest

import xlsx
from tests.test_xlsx.support import (
    FIXED_TIME,
    UTC_PLUS_2,
    read_calamine,
    read_openpyxl,
    sheet_xml,
    write,
)

LOCAL_HEADER = struct.Struct("<4sHHHHHIIIHH")  # APPNOTE 4.3.7
MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
PKG_REL = "http://schemas.openxmlformats.org/package/2006/relationships"
DML = "http://schemas.openxmlformats.org/drawingml/2006/main"
CORE = "http://schemas.openxmlformats.org/package/2006/metadata/core-properties"
DCTERMS = "http://purl.org/dc/terms/"
APP = "http://schemas.openxmlformats.org/officeDocument/2006/extended-properties"


def sample(**options: object) -> bytes:
    rows = [(i, f"name {i}", dt.date(2024, 1, 1) + dt.timedelta(days=i), i / 3) for i in range(50)]
    return write(["id", "name", "day", "ratio"], rows, **options)


def test_zip_is_valid_and_parts_come_sheets_first() -> None:
    data = sample()
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert z.testzip() is None
        assert z.namelist() == [
            "xl/worksheets/sheet1.xml",
            "xl/styles.xml",
            "xl/theme/theme1.xml",
            "xl/workbook.xml",
            "xl/_rels/workbook.xml.rels",
            "docProps/core.xml",
            "docProps/app.xml",
            "_rels/.rels",
            "[Content_Types].xml",
        ]
        for name in z.namelist():
            ET.fromstring(z.read(name))  # every part is well-formed XML


def test_no_zip64_anywhere_in_a_small_file() -> None:
    data = sample(max_rows_per_sheet=20)  # several streamed sheets
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        infos = z.infolist()
    assert len(infos) == 3 + 8  # three streamed sheets, then the eight small parts
    ends = []
    for info in infos:
        (sig, version, flags, method, _, _, crc, csize, usize, name_len, extra_len) = (
            LOCAL_HEADER.unpack_from(data, info.header_offset)
        )
        assert sig == b"PK\x03\x04"
        assert version == 20, info.filename  # 45 would mean Zip64
        assert extra_len == 0, info.filename  # no 0x0001 Zip64 extra field
        assert method == zipfile.ZIP_DEFLATED
        assert flags & 0x08  # sizes follow in a data descriptor...
        assert (crc, csize, usize) == (0, 0, 0)
        start = info.header_offset + LOCAL_HEADER.size + name_len
        descriptor = data[start + info.compress_size : start + info.compress_size + 16]
        # ...the classic 16-byte one (a Zip64 one has 8-byte sizes)
        assert descriptor == struct.pack(
            "<4sIII", b"PK\x07\x08", info.CRC, info.compress_size, info.file_size
        )
        ends.append(start + info.compress_size + 16)
        assert info.extra == b""  # central directory: no Zip64 extra either
        assert info.extract_version == 20
    assert ends[:-1] == [i.header_offset for i in infos[1:]]  # nothing hidden between entries
    assert b"PK\x06\x06" not in data[-200:]  # no Zip64 end of central directory record
    assert b"PK\x06\x07" not in data[-200:]


def test_no_size_mismatch_or_other_log_noise(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    sample(max_rows_per_sheet=20)
    assert [r.getMessage() for r in caplog.records] == []


def test_output_is_reproducible_with_a_fixed_time() -> None:
    assert sample() == sample()
    other = sample(modified_at=dt.datetime(2030, 6, 1, 12, 0, 0))
    assert other != sample()
    with zipfile.ZipFile(io.BytesIO(other)) as z:
        assert {i.date_time for i in z.infolist()} == {(2030, 6, 1, 12, 0, 0)}
    with zipfile.ZipFile(io.BytesIO(sample())) as z:
        # DOS times have two-second resolution: 42 s stays 42 s
        assert {i.date_time for i in z.infolist()} == {FIXED_TIME.timetuple()[:6]}


def relationships(data: bytes, part: str) -> list[tuple[str, str]]:
    """(type, target) of each relationship in one relationships part, in Id order."""
    root = ET.fromstring(zipfile.ZipFile(io.BytesIO(data)).read(part))
    assert root.tag == f"{{{PKG_REL}}}Relationships"
    assert [rel.attrib["Id"] for rel in root] == [f"rId{i + 1}" for i in range(len(root))]
    return [(rel.attrib["Type"], rel.attrib["Target"]) for rel in root]


def test_theme_and_document_properties_are_related_and_typed() -> None:
    data = sample(max_rows_per_sheet=30)  # two sheets: the theme's rId comes after both
    assert relationships(data, "_rels/.rels") == [
        (f"{REL}/officeDocument", "xl/workbook.xml"),
        (f"{PKG_REL}/metadata/core-properties", "docProps/core.xml"),
        (f"{REL}/extended-properties", "docProps/app.xml"),
    ]
    assert relationships(data, "xl/_rels/workbook.xml.rels") == [
        (f"{REL}/worksheet", "worksheets/sheet1.xml"),  # sheet i is rId{i}, as workbook.xml says
        (f"{REL}/worksheet", "worksheets/sheet2.xml"),
        (f"{REL}/styles", "styles.xml"),
        (f"{REL}/theme", "theme/theme1.xml"),
    ]
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        types = ET.fromstring(z.read("[Content_Types].xml"))
        parts = {name: ET.fromstring(z.read(name)) for name in z.namelist()}
    overrides = {
        o.attrib["PartName"]: o.attrib["ContentType"] for o in types if "PartName" in o.attrib
    }
    office = "application/vnd.openxmlformats-officedocument"
    assert overrides["/xl/theme/theme1.xml"] == f"{office}.theme+xml"
    assert overrides["/docProps/core.xml"] == (
        "application/vnd.openxmlformats-package.core-properties+xml"
    )
    assert overrides["/docProps/app.xml"] == f"{office}.extended-properties+xml"
    assert parts["xl/theme/theme1.xml"].tag == f"{{{DML}}}theme"
    assert parts["docProps/core.xml"].tag == f"{{{CORE}}}coreProperties"
    app = parts["docProps/app.xml"]
    assert app.tag == f"{{{APP}}}Properties"
    assert app.findtext(f"{{{APP}}}Application") == "xlsx-stream-export"


def core_times(data: bytes) -> tuple[str, str]:
    """(created, modified) as written in docProps/core.xml, after checking their markup."""
    raw = zipfile.ZipFile(io.BytesIO(data)).read("docProps/core.xml").decode()
    # xsi:type's value names the prefix, so the prefix must be bound to Dublin Core terms
    assert f'xmlns:dcterms="{DCTERMS}"' in raw
    core = ET.fromstring(raw)
    created, modified = (core.find(f"{{{DCTERMS}}}{name}") for name in ("created", "modified"))
    assert created is not None
    assert modified is not None
    for element in (created, modified):
        assert element.attrib == {
            "{http://www.w3.org/2001/XMLSchema-instance}type": "dcterms:W3CDTF"
        }
    return created.text or "", modified.text or ""


@pytest.mark.parametrize(
    ("modified_at", "expected"),
    [
        # aware: converted to UTC for the properties; the zip keeps its wall clock
        (dt.datetime(2030, 6, 1, 12, 0, 0, tzinfo=UTC_PLUS_2), "2030-06-01T10:00:00Z"),
        (dt.datetime(2024, 2, 29, 23, 59, 59, 999_999, tzinfo=dt.UTC), "2024-02-29T23:59:59Z"),
        # naive: local time, as everywhere in Python
        (FIXED_TIME, FIXED_TIME.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")),
    ],
)
def test_document_times_follow_modified_at(modified_at: dt.datetime, expected: str) -> None:
    data = sample(modified_at=modified_at)
    assert core_times(data) == (expected, expected)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        wall_clock = modified_at.replace(second=modified_at.second // 2 * 2, tzinfo=None)
        assert {i.date_time for i in z.infolist()} == {wall_clock.timetuple()[:6]}
    properties = openpyxl.load_workbook(io.BytesIO(data)).properties
    stamp = dt.datetime.fromisoformat(expected).replace(tzinfo=None)  # openpyxl drops the Z
    assert (properties.created, properties.modified) == (stamp, stamp)
    assert properties.creator == "xlsx-stream-export"


def test_every_reader_still_reads_a_workbook_with_theme_and_properties() -> None:
    data = sample(max_rows_per_sheet=30)
    wb = openpyxl.load_workbook(io.BytesIO(data))
    assert wb.loaded_theme == zipfile.ZipFile(io.BytesIO(data)).read("xl/theme/theme1.xml")
    expected = [("id", "name", "day", "ratio")]
    assert [rows[:1] for rows in read_openpyxl(data).values()] == [expected, expected]
    assert list(read_calamine(data)) == ["Report", "Report (2)"]
    assert sum(len(rows) - 1 for rows in read_calamine(data).values()) == 50


def test_default_time_is_now() -> None:
    before = dt.datetime.now().replace(microsecond=0) - dt.timedelta(seconds=2)
    data = b"".join(xlsx.stream_xlsx(["a"], [[1]]))
    after = dt.datetime.now() + dt.timedelta(seconds=2)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        for info in z.infolist():
            assert before <= dt.datetime(*info.date_time) <= after
    created = dt.datetime.fromisoformat(core_times(data)[0])
    assert before.astimezone(dt.UTC) <= created <= after.astimezone(dt.UTC)


def test_sheet_features_header_freeze_filter_widths() -> None:
    data = sample()
    xml = sheet_xml(data)
    assert "<dimension" not in xml
    assert '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>' in xml
    assert xml.endswith('</sheetData><autoFilter ref="A1:D51"/></worksheet>')
    assert '<row r="51"><c r="A51"><v>49</v></c>' in xml
    wb = openpyxl.load_workbook(io.BytesIO(data))
    ws = wb["Report"]
    assert ws.freeze_panes == "A2"
    assert ws.auto_filter.ref == "A1:D51"
    assert all(cell.font.b for cell in ws[1])
    assert not ws["A2"].font.b
    assert ws["C2"].number_format == "yyyy-mm-dd"
    assert ws.column_dimensions["C"].width >= 10  # a date fits
    assert ws.column_dimensions["B"].width >= len("name 0")
    workbook = zipfile.ZipFile(io.BytesIO(data)).read("xl/workbook.xml").decode()
    assert (
        '<definedName name="_xlnm._FilterDatabase" localSheetId="0" hidden="1">'
        "'Report'!$A$1:$D$51</definedName>"
    ) in workbook


def test_datetime_and_time_formats() -> None:
    data = write(["at", "t"], [[dt.datetime(2024, 1, 2, 3, 4, 5), dt.time(6, 7, 8)]])
    ws = openpyxl.load_workbook(io.BytesIO(data))["Report"]
    assert ws["A2"].number_format == "yyyy-mm-dd hh:mm:ss"
    assert ws["B2"].number_format == "hh:mm:ss"


def test_column_spec_sets_width_and_number_format() -> None:
    columns = [
        xlsx.Column(width=30),
        None,
        xlsx.Column(number_format="#,##0.00"),
        xlsx.Column(number_format="dd/mm/yyyy hh:mm:ss.000"),
    ]
    stamp = dt.datetime(2024, 1, 2, 3, 4, 5, 678_000)
    late = dt.datetime(2024, 1, 2, 23, 59, 59, 999_900)
    data = write(["a", "b", "c", "d"], [[1, 2, 1234.5, stamp], [1, 2, 3, late]], columns=columns)
    ws = openpyxl.load_workbook(io.BytesIO(data))["Report"]
    assert ws.column_dimensions["A"].width == 30
    assert ws["C2"].number_format == "#,##0.00"
    assert ws["D2"].number_format == "dd/mm/yyyy hh:mm:ss.000"
    assert ws["D2"].value == stamp  # a format with milliseconds keeps them...
    assert ws["D3"].value == late.replace(microsecond=999_000)  # ...floored, never the next day


def test_header_text_is_escaped() -> None:
    data = write(['<id> & "name"', " spaced "], [])
    assert read_openpyxl(data)["Report"] == [('<id> & "name"', " spaced ")]


def test_sheet_name_is_escaped_in_workbook() -> None:
    data = write(["a"], [[1]], sheet_name="R&D <2024> 'q' x", max_rows_per_sheet=2)
    assert list(read_openpyxl(data)) == ["R&D <2024> 'q' x"]
    names = zipfile.ZipFile(io.BytesIO(data)).read("xl/workbook.xml").decode()
    assert "'R&amp;D &lt;2024&gt; ''q'' x'!$A$1:$A$2" in names
