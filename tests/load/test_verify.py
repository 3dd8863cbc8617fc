"""The streaming workbook check on its own: workbooks from our writer and zips from Python's
zipfile (an independent writer) pass in any chunking; every truncation, a flipped bit
anywhere, trailing bytes and wrong row counts are caught."""

from __future__ import annotations

import io
import random
import zipfile
import zlib
from collections.abc import Iterator

import pytest

import xlsx
from sql import report_data
from tests.load.errors import InvalidDownload
from tests.load.verify import XlsxStreamChecker, check_bytes

HEADER = [column.name for column in report_data.COLUMNS]


def workbook(rows: int, **options: object) -> bytes:
    source = (report_data.row_values(n) for n in range(1, rows + 1))
    return b"".join(xlsx.stream_xlsx(HEADER, source, **options))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def book() -> bytes:
    return workbook(3000)


@pytest.fixture(scope="module")
def small_book() -> bytes:
    """For the tests that check thousands of damaged copies."""
    return workbook(300)


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
    assert verdict.sheets == 1
    assert verdict.bytes == len(book)
    with zipfile.ZipFile(io.BytesIO(book)) as archive:
        assert verdict.entries == len(archive.infolist())
        sheet = archive.read("xl/worksheets/sheet1.xml")
    assert verdict.rows_per_sheet == [sheet.count(b"<row ")]


def test_rows_over_several_sheets_count_one_header_per_sheet() -> None:
    verdict = check_bytes(workbook(25, max_rows_per_sheet=10), piece=100)
    assert verdict.sheets == 3
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
            check_bytes(book[:cut], piece=4096)


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
            check_bytes(bytes(damaged))
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
    rows = b"".join(f'<row r="{n}"><c r="A{n}"><v>{n}</v></c></row>'.encode() for n in range(1, 51))
    sheet = b"<worksheet><sheetData>" + rows + b"</sheetData></worksheet>"
    members = {
        "[Content_Types].xml": b"<Types/>",
        "xl/workbook.xml": b"<workbook/>",
        "xl/worksheets/sheet1.xml": sheet,
    }
    if not seekable and method == zipfile.ZIP_STORED:
        # A stored entry of unknown size cannot be parsed as a stream (nothing says where
        # its data ends); zipfile writes exactly that to an unseekable target.
        with pytest.raises(InvalidDownload, match="stored entry of unknown size"):
            check_bytes(_zipfile_archive(members, seekable=False, method=method))
        return
    data = _zipfile_archive(members, seekable=seekable, method=method)
    verdict = check_bytes(data, piece=13)
    assert verdict.entries == 3
    assert verdict.data_rows == 49


def test_a_zip_that_is_not_a_workbook_says_what_is_missing() -> None:
    data = _zipfile_archive({"a.txt": b"x"}, seekable=True, method=zipfile.ZIP_DEFLATED)
    with pytest.raises(InvalidDownload, match=r"no \[Content_Types\].xml"):
        check_bytes(data)
