"""The streaming workbook check on its own: workbooks from our writer and zips from Python's
zipfile (an independent writer) pass in any chunking; every truncation, a flipped bit
anywhere, trailing bytes and wrong row counts are caught; every sheet of a workbook of several
is checked: its XML, its row numbers, its header row, its place in the workbook's sheet list."""

from __future__ import annotations

import datetime as dt
import io
import random
import re
import zipfile
import zlib
from collections.abc import Callable, Iterator

import pytest

import xlsx
from sql import report_data, sales_data
from tests.load.errors import InvalidDownload
from tests.load.reports import ORDERS_SHEET, SUMMARY_SHEET
from tests.load.sheets import Row
from tests.load.verify import XlsxStreamChecker, check_bytes

HEADER = [column.name for column in report_data.COLUMNS]
# Ten days of sales: 400 orders in all five regions. At 150 rows a sheet (header included) the
# orders take three sheets (149 + 149 + 102 data rows), then comes the summary's: four in all.
SALES_FROM, SALES_TO = dt.date(2024, 1, 1), dt.date(2024, 1, 10)
SALES_ROWS_PER_SHEET = 150
SALES_SHEETS = [ORDERS_SHEET, f"{ORDERS_SHEET} (2)", f"{ORDERS_SHEET} (3)", SUMMARY_SHEET]


def workbook(rows: int, **options: object) -> bytes:
    source = (report_data.row_values(n) for n in range(1, rows + 1))
    return b"".join(xlsx.stream_xlsx(HEADER, source, **options))  # type: ignore[arg-type]


def sales_workbook(
    start: dt.date, end: dt.date, region: str | None = None, **options: object
) -> bytes:
    """The sales report's two sheets as the project's writer writes them."""
    sheets = [
        xlsx.Sheet(
            ORDERS_SHEET,
            [name for name, _ in sales_data.ORDER_COLUMNS],
            sales_data.orders(start, end, region),
        ),
        xlsx.Sheet(
            SUMMARY_SHEET,
            [name for name, _ in sales_data.SUMMARY_COLUMNS],
            sales_data.summary(start, end, region),
        ),
    ]
    return b"".join(xlsx.stream_workbook(sheets, **options))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def sales() -> bytes:
    return sales_workbook(SALES_FROM, SALES_TO, max_rows_per_sheet=SALES_ROWS_PER_SHEET)


def rezip(book: bytes, part: str, edit: Callable[[bytes], bytes]) -> bytes:
    """``book`` with ``part`` changed by ``edit`` and the zip written again by zipfile: its
    CRCs and sizes are right, only the content is wrong."""
    with zipfile.ZipFile(io.BytesIO(book)) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    members[part] = edit(members[part])
    return _zipfile_archive(members, seekable=True, method=zipfile.ZIP_DEFLATED)


def break_a_tag(xml: bytes) -> bytes:
    """An edit that misspells the end tag of a cell in the middle of a sheet."""
    middle = xml.index(b"</c>", len(xml) // 2)
    return xml[:middle] + b"</x>" + xml[middle + 4 :]


def without_row(number: int) -> Callable[[bytes], bytes]:
    """An edit that takes row ``number`` out of a sheet."""
    return lambda xml: re.sub(rb'<row r="%d".*?</row>' % number, b"", xml, count=1)


@pytest.fixture(scope="module")
def book() -> bytes:
    return workbook(3000)


@pytest.fixture(scope="module")
def small_book() -> bytes:
    """For the tests that check thousands of damaged copies."""
    return workbook(300)


# The zip layer's tests check thousands of damaged copies without the XML parse: every change to
# an entry's data is caught by inflate or its CRC first, and the parse would double their time.
ZIP_ONLY = {"xml_check": False}


def random_pieces(data: bytes, seed: int) -> Iterator[bytes]:
    rng = random.Random(seed)
    pos = 0
    while pos < len(data):
        size = rng.choice((1, 2, 3, 7, 30, 46, 512, 4096, 65536))
        yield data[pos : pos + size]
        pos += size


@pytest.mark.parametrize("seed", range(5))
def test_a_workbook_fed_in_any_chunking_counts_its_rows(book: bytes, seed: int) -> None:
    checker = XlsxStreamChecker()
    for piece in random_pieces(book, seed):
        checker.feed(piece)
    verdict = checker.finish()
    assert verdict.data_rows == 3000
    assert [sheet.name for sheet in verdict.sheets] == ["Report"]
    assert verdict.bytes == len(book)
    with zipfile.ZipFile(io.BytesIO(book)) as archive:
        assert verdict.entries == len(archive.infolist())
        sheet = archive.read("xl/worksheets/sheet1.xml")
    assert verdict.rows_per_sheet == [sheet.count(b"<row ")]


def test_rows_over_several_sheets_count_one_header_per_sheet() -> None:
    verdict = check_bytes(workbook(25, max_rows_per_sheet=10), piece=100)
    assert [sheet.name for sheet in verdict.sheets] == ["Report", "Report (2)", "Report (3)"]
    assert verdict.rows_per_sheet == [10, 10, 8]  # 9 + 9 + 7 data rows below each header
    assert verdict.data_rows == 25


def test_every_truncation_is_caught(small_book: bytes) -> None:
    book = small_book
    # Every cut in the zip's structure (headers, descriptors, central directory, end record)
    # and a spread of cuts through the compressed data.
    structure_start = book.index(b"PK\x07\x08")
    cuts = set(range(0, 200)) | set(range(structure_start - 50, len(book)))
    cuts |= set(range(0, len(book), 97))
    for cut in sorted(cuts):
        with pytest.raises(InvalidDownload, match="truncated"):
            check_bytes(book[:cut], piece=4096, **ZIP_ONLY)


def metadata_only_positions(data: bytes) -> set[int]:
    """Bytes where a flip can leave a valid zip, so there is nothing to catch: central
    directory fields no reader checks against anything (version made by, internal and
    external attributes: APPNOTE 4.4.2, 4.4.14, 4.4.15), and the last byte of each deflate
    stream, whose bits after the end-of-block code are padding no decoder reads."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        positions = {
            info.header_offset + 30 + len(info.filename.encode()) + info.compress_size - 1
            for info in archive.infolist()
        }
    start = data.index(b"PK\x01\x02")
    while (at := data.find(b"PK\x01\x02", start)) != -1:
        positions |= {at + 4, at + 5, *range(at + 36, at + 42)}
        start = at + 4
    return positions


def test_a_flipped_bit_anywhere_else_is_caught(small_book: bytes) -> None:
    book = small_book
    rng = random.Random(7)
    structure = range(book.index(b"PK\x07\x08") - 40, len(book))
    positions = set(rng.sample(range(len(book)), 300)) | set(structure)
    positions -= metadata_only_positions(book)
    missed = []
    for pos in sorted(positions):
        damaged = bytearray(book)
        damaged[pos] ^= 1 << rng.randrange(8)
        try:
            check_bytes(bytes(damaged), **ZIP_ONLY)
        except InvalidDownload:
            continue
        if not _same_contents(bytes(damaged), book):
            missed.append(pos)
    assert not missed, f"damage not detected at {missed}"


def _same_contents(damaged: bytes, book: bytes) -> bool:
    """True if the flip changed nothing a reader sees: e.g. the code length of a symbol no
    block uses, in a dynamic Huffman header (RFC 1951 3.2.7), inflates to the same bytes."""
    try:
        with zipfile.ZipFile(io.BytesIO(damaged)) as a, zipfile.ZipFile(io.BytesIO(book)) as b:
            return [(i.filename, a.read(i)) for i in a.infolist()] == [
                (i.filename, b.read(i)) for i in b.infolist()
            ]
    except (zipfile.BadZipFile, zlib.error, EOFError):
        return False


def test_bytes_after_the_end_are_caught(book: bytes) -> None:
    with pytest.raises(InvalidDownload, match="after the end"):
        check_bytes(book + b"\0")
    checker = XlsxStreamChecker()
    checker.feed(book)
    with pytest.raises(InvalidDownload, match="after the end"):
        checker.feed(b"x")


def test_a_json_error_body_is_not_a_workbook() -> None:
    with pytest.raises(InvalidDownload, match="local file header"):
        check_bytes(b'{"error": {"message": "too many", "code": "TOO_MANY_EXPORTS"}}')


def test_an_empty_body_is_truncated() -> None:
    with pytest.raises(InvalidDownload, match="after 0 bytes"):
        XlsxStreamChecker().finish()


REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"


def minimal_workbook(rows: int) -> dict[str, bytes]:
    """The parts a streaming check needs, written by hand: one sheet, a header row of text
    and numbered rows below it."""
    header = b'<row r="1"><c r="A1" t="inlineStr"><is><t>n</t></is></c></row>'
    body = b"".join(
        f'<row r="{n}"><c r="A{n}"><v>{n}</v></c></row>'.encode() for n in range(2, rows + 1)
    )
    return {
        "[Content_Types].xml": b"<Types/>",
        "xl/workbook.xml": (
            f'<workbook xmlns:r="{REL}"><sheets><sheet name="Data" sheetId="1" r:id="rId1"/>'
            "</sheets></workbook>"
        ).encode(),
        "xl/_rels/workbook.xml.rels": (
            f'<Relationships><Relationship Id="rId1" Type="{REL}/worksheet" '
            'Target="worksheets/sheet1.xml"/></Relationships>'
        ).encode(),
        "xl/worksheets/sheet1.xml": b"<worksheet><sheetData>"
        + header
        + body
        + b"</sheetData></worksheet>",
    }


def _zipfile_archive(members: dict[str, bytes], *, seekable: bool, method: int) -> bytes:
    class Unseekable(io.RawIOBase):
        def __init__(self) -> None:
            self.data = bytearray()

        def writable(self) -> bool:
            return True

        def write(self, b: object) -> int:
            chunk = bytes(b)  # type: ignore[call-overload]
            self.data += chunk
            return len(chunk)

    target: io.BytesIO | Unseekable = io.BytesIO() if seekable else Unseekable()
    with zipfile.ZipFile(target, "w", compression=method) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return target.getvalue() if isinstance(target, io.BytesIO) else bytes(target.data)


@pytest.mark.parametrize("seekable", [True, False], ids=["sizes-in-header", "descriptors"])
@pytest.mark.parametrize(
    "method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED], ids=["stored", "deflated"]
)
def test_zips_from_another_writer_are_read_alike(seekable: bool, method: int) -> None:
    members = minimal_workbook(50)
    if not seekable and method == zipfile.ZIP_STORED:
        # A stored entry of unknown size cannot be parsed as a stream (nothing says where
        # its data ends); zipfile writes exactly that to an unseekable target.
        with pytest.raises(InvalidDownload, match="stored entry of unknown size"):
            check_bytes(_zipfile_archive(members, seekable=False, method=method))
        return
    data = _zipfile_archive(members, seekable=seekable, method=method)
    verdict = check_bytes(data, piece=13)
    assert verdict.entries == 4
    assert verdict.data_rows == 49


def test_a_zip_that_is_not_a_workbook_says_what_is_missing() -> None:
    data = _zipfile_archive({"a.txt": b"x"}, seekable=True, method=zipfile.ZIP_DEFLATED)
    with pytest.raises(InvalidDownload, match=r"no \[Content_Types\].xml"):
        check_bytes(data)


def test_every_sheet_of_a_workbook_of_several_is_counted_in_its_order(sales: bytes) -> None:
    for seed in range(3):
        checker = XlsxStreamChecker()
        for piece in random_pieces(sales, seed):
            checker.feed(piece)
        verdict = checker.finish()
        assert [sheet.name for sheet in verdict.sheets] == SALES_SHEETS
        assert [sheet.part for sheet in verdict.sheets] == [
            f"xl/worksheets/sheet{n}.xml" for n in (1, 2, 3, 4)
        ]
        assert verdict.rows_per_sheet == [150, 150, 103, 6]
        assert verdict.data_rows == 400 + 5
        assert [sheet.columns for sheet in verdict.sheets] == [7, 7, 7, 4]
    orders, orders_2, _, summary = verdict.sheets
    # The sample rows: each sheet's first data row and its last row, read back as cells.
    order_ids = [str(order[0]) for order in sales_data.orders(SALES_FROM, SALES_TO)]
    assert first_cell(orders.first_row) == order_ids[0]
    assert first_cell(orders_2.first_row) == order_ids[149]  # the 150th order starts sheet 2
    assert first_cell(summary.last_row) == sales_data.REGIONS[-1]
    assert summary.last_row is not None
    assert summary.last_row.number == 6


def first_cell(row: Row | None) -> str | None:
    assert row is not None
    cell = row.cell(0)
    assert cell is not None
    return cell.text


def test_broken_xml_inside_one_sheet_is_caught(sales: bytes) -> None:
    # A mismatched end tag in the middle of sheet 2: the zip is valid, every row is numbered,
    # the sheet ends as it should: only parsing its XML tells.
    broken = rezip(sales, "xl/worksheets/sheet2.xml", break_a_tag)
    with pytest.raises(InvalidDownload, match=r"sheet2\.xml is not well-formed XML: mismatched"):
        check_bytes(broken, piece=4096)
    # --no-xml-check leaves exactly this out.
    assert check_bytes(broken, xml_check=False).data_rows == 405


def test_a_sheet_cut_short_is_caught(sales: bytes) -> None:
    def cut(xml: bytes) -> bytes:
        return xml[: len(xml) // 2]

    with pytest.raises(InvalidDownload, match=r"sheet3\.xml is not well-formed XML"):
        check_bytes(rezip(sales, "xl/worksheets/sheet3.xml", cut))
    with pytest.raises(InvalidDownload, match=r"sheet3\.xml does not end with </worksheet>"):
        check_bytes(rezip(sales, "xl/worksheets/sheet3.xml", cut), xml_check=False)


def test_a_row_number_that_skips_is_caught(sales: bytes) -> None:
    with pytest.raises(InvalidDownload, match=r"sheet2\.xml: row 6 follows row 4"):
        check_bytes(rezip(sales, "xl/worksheets/sheet2.xml", without_row(5)))


def test_a_row_without_its_number_is_caught(sales: bytes) -> None:
    def unnumber(xml: bytes) -> bytes:
        return xml.replace(b'<row r="7"', b"<row", 1)

    with pytest.raises(InvalidDownload, match=r"sheet1\.xml: row 7 has no row number"):
        check_bytes(rezip(sales, "xl/worksheets/sheet1.xml", unnumber))


def test_each_sheet_needs_its_header_row(sales: bytes) -> None:
    def numbers_for_headers(xml: bytes) -> bytes:
        return re.sub(rb'<row r="1".*?</row>', b'<row r="1"><c r="A1"><v>1</v></c></row>', xml)

    with pytest.raises(InvalidDownload, match=r"sheet4\.xml: row 1 is not a header row"):
        check_bytes(rezip(sales, "xl/worksheets/sheet4.xml", numbers_for_headers))

    def no_rows(xml: bytes) -> bytes:
        return re.sub(rb"<sheetData>.*</sheetData>", b"<sheetData/>", xml, flags=re.DOTALL)

    with pytest.raises(InvalidDownload, match=r"sheet2\.xml has no header row"):
        check_bytes(rezip(sales, "xl/worksheets/sheet2.xml", no_rows))


@pytest.mark.parametrize(
    ("part", "old", "new", "message"),
    [
        (  # the last sheet left out of the list
            "xl/workbook.xml",
            rb'<sheet name="Summary by region" sheetId="4" r:id="rId4"/>',
            b"",
            r"sheet4\.xml not listed in xl/workbook\.xml",
        ),
        (  # a sheet pointing to a part the zip does not hold
            "xl/_rels/workbook.xml.rels",
            b'Target="worksheets/sheet3.xml"',
            b'Target="worksheets/sheet9.xml"',
            r"'Orders \(3\)' is xl/worksheets/sheet9\.xml, which the zip does not hold",
        ),
        (  # two sheets for one part
            "xl/workbook.xml",
            b'r:id="rId2"',
            b'r:id="rId1"',
            r"sheet1\.xml is listed as more than one sheet",
        ),
        (  # two names Excel holds for the same
            "xl/workbook.xml",
            b'name="Orders (2)"',
            b'name="ORDERS"',
            r"sheet name 'Orders' is empty or used twice",
        ),
    ],
)
def test_the_workbook_lists_exactly_the_sheets_the_zip_holds(
    sales: bytes, part: str, old: bytes, new: bytes, message: str
) -> None:
    def edit(xml: bytes) -> bytes:
        assert old in xml
        return xml.replace(old, new)

    with pytest.raises(InvalidDownload, match=message):
        check_bytes(rezip(sales, part, edit))


def test_a_part_twice_in_the_zip_is_caught() -> None:
    # A reader would show one of the two; which one is anyone's guess.
    target = io.BytesIO()
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in minimal_workbook(5).items():
            archive.writestr(name, data)
        with pytest.warns(UserWarning, match="Duplicate name"):
            archive.writestr("xl/worksheets/sheet1.xml", b"<worksheet/>")
    with pytest.raises(InvalidDownload, match=r"sheet1\.xml is in the zip twice"):
        check_bytes(target.getvalue())
