"""stream_xlsx: rows in, the bytes of one .xlsx out, as the rows arrive.

Sheets are streamed into the zip first; styles, theme, workbook, document properties,
relationships and content types follow once the number of sheets (rollover) and each sheet's
last row (autofilter) are known.
The zip is zipstream-ng's, re-cut into 64 KiB chunks with its headers fixed up (zipfix.py).
"""

import datetime as dt
import itertools
import logging
import struct
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from zipstream import ZIP_DEFLATED, ZipStream

from xlsx import dates, deflate, meanings, names, parts, styles, theme, zipfix
from xlsx.cells import CellEncoder
from xlsx.errors import XlsxValueError
from xlsx.escape import utf16_units
from xlsx.rows import RowEncoder
from xlsx.sheet import SheetWriter
from xlsx.sources import RowXmlSource
from xlsx.spec import Column, WriteStats

# Excel's rows per sheet, header included (Excel specifications and limits).
EXCEL_MAX_ROWS: Final = 1_048_576
# Deflate level 1, chosen with tests/bench/xlsx_writer.py (100k rows of the 10 typed benchmark
# columns, 42.5 MB of XML): level 1 gives 8.7 MB (4.9x) at ~200k rows/s, its deflate done by
# ISA-L (xlsx/deflate.py, 3x zlib's speed); level 3 (zlib) 7.8 MB (-10%) at ~125k rows/s; level 6
# (zlib's default) 7.0 MB (-20%) at ~75k rows/s, below the writer's 150k rows/s goal and
# slower than pytds feeds the export API. Trade-off: level 1 sends ~25% more bytes than level 6,
# which only costs time on links slower than the writer's ~17 MB/s output; a deployment serving
# slow links can pass compress_level=6.
DEFAULT_COMPRESS_LEVEL: Final = 1
# zipstream-ng 1.9.3 decides Zip64 per entry from its size hint, against zipfile.ZIP64_LIMIT
# (2**31 - 1, not 4 GiB) times 1.05, and raises after the data was sent if an entry declared
# without Zip64 ends up larger than that limit. A sheet therefore rolls over before its XML
# reaches 2,000,000,000 bytes: 147 MB under the limit, far more than deflate's worst-case growth
# (5 bytes per 64 KiB stored block, < 200 KB here) and the closing tags need.
DEFAULT_MAX_SHEET_XML_BYTES: Final = 2_000_000_000
# The size hint given for every streamed sheet: below ZIP64_LIMIT / 1.05, so zipstream-ng writes
# classic local headers (version 20, no Zip64 extra) and a 16-byte data descriptor.
SHEET_SIZE_HINT: Final = DEFAULT_MAX_SHEET_XML_BYTES
# Output chunk size: what aiohttp buffers before a write waits for the peer (64 KiB), so one
# chunk is one backpressure step.
OUTPUT_CHUNK: Final = 64 * 1024

# Auto width (Excel character units): the header in bold plus room for the filter button, at
# least what the first row's values need, within these bounds.
_MIN_WIDTH: Final = 8.0
_MAX_WIDTH: Final = 60.0
_MAX_EXCEL_WIDTH: Final = 255.0

_ZIP_MIN_YEAR, _ZIP_MAX_YEAR = 1980, 2107  # what a DOS date can hold


class _SheetSizeHintFilter(logging.Filter):
    """Drops zipstream-ng's "Size mismatch" warning for our sheets, whose hint is deliberate."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (
            isinstance(record.msg, str)
            and record.msg.startswith("Size mismatch")
            and isinstance(record.args, tuple)
            and str(record.args[0]).startswith("xl/worksheets/")
        )


def _silence_size_hint_warning() -> None:
    logger = logging.getLogger("zipstream.ng")
    if not any(isinstance(f, _SheetSizeHintFilter) for f in logger.filters):
        logger.addFilter(_SheetSizeHintFilter())


@dataclass(frozen=True)
class Sheet:
    """One logical sheet of a workbook: its name, header, rows and optional column specs.

    ``rows`` is pulled only while this sheet is written, so a producer can make the next
    ``Sheet`` after the previous one's rows ran out (a database's next result set).
    """

    name: str
    header: Sequence[str]
    rows: Iterable[Sequence[object]] | RowXmlSource
    columns: Sequence[Column | None] | None = None


def stream_xlsx(
    header: Sequence[str],
    rows: Iterable[Sequence[object]] | RowXmlSource,
    *,
    sheet_name: str = "Report",
    columns: Sequence[Column | None] | None = None,
    compress_level: int = DEFAULT_COMPRESS_LEVEL,
    max_rows_per_sheet: int = EXCEL_MAX_ROWS,
    max_sheet_xml_bytes: int = DEFAULT_MAX_SHEET_XML_BYTES,
    modified_at: dt.datetime | None = None,
    stats: WriteStats | None = None,
) -> Generator[bytes, None, None]:
    """Yield the bytes of one .xlsx holding `header` and then `rows`, in chunks of ~64 KiB.

    Arguments are checked now (XlsxValueError); rows are pulled only as the result is iterated.
    `header` needs 1 to 16,384 str entries (None is refused: write "" for an unnamed column).
    `rows` may instead be an ``xlsx.RowXmlSource`` that writes its rows' XML itself with the
    writer's row code (then column widths come from `columns` and the header alone).
    A row shorter than the header leaves its last cells empty (like NULLs); a longer one raises
    XlsxValueError when it is reached. With no rows at all the workbook still has the header,
    its freeze and its filter. `columns` optionally gives a width and number format per column.
    A sheet that reaches `max_rows_per_sheet` rows (header included) or would pass
    `max_sheet_xml_bytes` of XML continues on "<sheet_name> (2)", ... (cut to 31 characters and
    kept unique) with the same header, freeze and filter. An exception from `rows` propagates
    and ends the output: what was yielded before it is never a complete zip.
    `modified_at` sets the zip entries' timestamps (its wall-clock fields, as zip has no
    timezone) and the document's created and modified times (in UTC; a naive `modified_at` is
    local time); default now. A fixed `modified_at` makes the output byte-for-byte
    reproducible. `stats`, if given, is
    updated as the rows are written. Closing the returned generator stops pulling rows; closing
    the row source itself stays with the caller.
    """
    sheet = Sheet(sheet_name, header, rows, columns)
    _check_sheet(sheet)
    return stream_workbook(
        [sheet],
        compress_level=compress_level,
        max_rows_per_sheet=max_rows_per_sheet,
        max_sheet_xml_bytes=max_sheet_xml_bytes,
        modified_at=modified_at,
        stats=stats,
    )


def stream_workbook(
    sheets: Iterable[Sheet],
    *,
    compress_level: int = DEFAULT_COMPRESS_LEVEL,
    max_rows_per_sheet: int = EXCEL_MAX_ROWS,
    max_sheet_xml_bytes: int = DEFAULT_MAX_SHEET_XML_BYTES,
    modified_at: dt.datetime | None = None,
    stats: WriteStats | None = None,
) -> Generator[bytes, None, None]:
    """Yield the bytes of one .xlsx holding each of `sheets` in turn, in chunks of ~64 KiB.

    Each sheet is what :func:`stream_xlsx` writes for one header and its rows (types, widths,
    freeze, filter, rollover to "<name> (2)"). `sheets` is pulled lazily: the next sheet is
    taken only once the previous one's rows ran out, and each is checked when it is taken (an
    XlsxValueError then ends the output like an exception from the rows: never a complete zip).
    A name already used in the workbook (Excel compares them case-insensitively) becomes
    "<name> (2)", ... An empty `sheets` raises XlsxValueError on the first pull. The options
    are checked now and mean what they mean for :func:`stream_xlsx`; the number formats of all
    sheets together count against Excel's limit per workbook.
    """
    if isinstance(compress_level, bool) or not isinstance(compress_level, int):
        raise XlsxValueError("compress_level must be an int from 0 to 9")
    if not 0 <= compress_level <= 9:
        raise XlsxValueError(f"compress_level must be from 0 to 9, not {compress_level}")
    if not 2 <= max_rows_per_sheet <= EXCEL_MAX_ROWS:
        raise XlsxValueError(
            f"max_rows_per_sheet must be from 2 to {EXCEL_MAX_ROWS} (header included)"
        )
    if not 1 <= max_sheet_xml_bytes <= DEFAULT_MAX_SHEET_XML_BYTES:
        raise XlsxValueError(
            f"max_sheet_xml_bytes must be from 1 to {DEFAULT_MAX_SHEET_XML_BYTES}"
            " (beyond it zipstream-ng would need Zip64)"
        )
    if modified_at is None:
        modified_at = dt.datetime.now()
    if not _ZIP_MIN_YEAR <= modified_at.year <= _ZIP_MAX_YEAR:
        raise XlsxValueError(f"modified_at must be within {_ZIP_MIN_YEAR}-{_ZIP_MAX_YEAR}")
    _silence_size_hint_warning()
    return _generate(
        iter(sheets),
        compress_level=compress_level,
        max_rows=max_rows_per_sheet,
        max_bytes=max_sheet_xml_bytes,
        modified_at=modified_at,
        stats=stats if stats is not None else WriteStats(),
    )


def _check_sheet(sheet: Sheet) -> tuple[list[str], list[Column]]:
    """The sheet's header and one spec per column, or XlsxValueError saying what is wrong."""
    header = list(sheet.header)
    if not header:
        raise XlsxValueError("header must name at least one column")
    if len(header) > names.MAX_COLUMNS:
        raise XlsxValueError(f"{len(header)} columns; Excel allows at most {names.MAX_COLUMNS}")
    for i, title in enumerate(header):
        if not isinstance(title, str):
            raise XlsxValueError(f"header[{i}] must be a str, not {type(title).__name__}")
    names.check_sheet_name(sheet.name)
    return header, _check_columns(sheet.columns, len(header))


def _check_columns(columns: Sequence[Column | None] | None, width: int) -> list[Column]:
    specs = [Column() if c is None else c for c in (columns or ())]
    if len(specs) > width:
        raise XlsxValueError(f"{len(specs)} column specs for {width} header columns")
    for i, spec in enumerate(specs):
        if spec.width is not None and not 0 <= spec.width <= _MAX_EXCEL_WIDTH:
            raise XlsxValueError(f"columns[{i}].width must be from 0 to {_MAX_EXCEL_WIDTH:g}")
        if spec.number_format is not None:
            problem = styles.format_code_problem(spec.number_format)
            if problem:
                raise XlsxValueError(f"columns[{i}].number_format {problem}")
    codes = {spec.number_format for spec in specs if spec.number_format is not None}
    codes -= set(styles.DEFAULT_FORMATS)
    if len(codes) > styles.MAX_COLUMN_FORMATS:
        raise XlsxValueError(
            f"{len(codes)} distinct number formats; at most {styles.MAX_COLUMN_FORMATS} besides"
            " the default date and time formats (Excel's limit per workbook)"
        )
    return specs + [Column() for _ in range(width - len(specs))]


def _dos_stamp(moment: dt.datetime) -> bytes:
    """A zip entry's (time, date) fields, little-endian, as local and central headers hold them."""
    time = moment.hour << 11 | moment.minute << 5 | moment.second // 2
    date = (moment.year - 1980) << 9 | moment.month << 5 | moment.day
    return struct.pack("<HH", time, date)


def _value_width(value: object) -> float:
    if isinstance(value, dt.datetime):
        return 19
    if isinstance(value, dt.date):
        return 10
    if isinstance(value, str):
        return utf16_units(value) if len(value) < 100 else _MAX_WIDTH
    if value is None or isinstance(value, bytes | bytearray):
        return 0
    return len(str(value))


def _widths(header: Sequence[str], specs: Sequence[Column], first: object) -> list[float]:
    values = list(first) if isinstance(first, Sequence) else []
    widths = []
    for i, (title, spec) in enumerate(zip(header, specs, strict=True)):
        if spec.width is not None:
            widths.append(spec.width)
            continue
        value = values[i] if i < len(values) else None
        if spec.ints is not None and type(value) is int:
            value = meanings.value_of(spec.ints, value)
        value = _value_width(value) + 1 if i < len(values) else 0
        auto = max(utf16_units(title) * 1.1 + 3, value)
        widths.append(round(min(max(auto, _MIN_WIDTH), _MAX_WIDTH), 1))
    return widths


_END: Final = object()


def _generate(
    sheets: Iterator[Sheet],
    *,
    compress_level: int,
    max_rows: int,
    max_bytes: int,
    modified_at: dt.datetime,
    stats: WriteStats,
) -> Generator[bytes, None, None]:
    stamp = _dos_stamp(modified_at)
    formats: list[str] = []  # every sheet's custom number formats, in styles.xml's order
    zs = ZipStream(compress_type=ZIP_DEFLATED, compress_level=deflate.zip_level(compress_level))
    out = _Chunker(stats)
    infos: list[parts.SheetInfo] = []
    taken_names: set[str] = set()  # casefolded, as Excel compares sheet names
    for sheet in sheets:
        header, specs = _check_sheet(sheet)
        encoder = _row_encoder(header, specs, formats, stats)
        rows = sheet.rows if isinstance(sheet.rows, RowXmlSource) else iter(sheet.rows)
        carry: Sequence[object] | None = None
        if isinstance(rows, RowXmlSource):
            rows.bind(encoder)
            widths = _widths(header, specs, _END)  # no row to look at: header and specs decide
        else:
            first = next(rows, _END)  # peeked for the column widths, written first
            widths = _widths(header, specs, first)
            carry = None if first is _END else first  # type: ignore[assignment]
        name = _free_name(sheet.name, taken_names)
        part = 1
        while True:
            index = len(infos)
            if part > 1:
                name = names.continuation_name(sheet.name, part, taken_names)
            taken_names.add(name.casefold())
            writer = SheetWriter(
                rows=rows,
                carry=carry,
                encoder=encoder,
                header=header,
                widths=widths,
                selected=index == 0,
                max_rows=max_rows,
                max_bytes=max_bytes,
                stats=stats,
            )
            stats.sheets += 1
            zs.add(writer, parts.sheet_path(index), size=SHEET_SIZE_HINT)
            yield from out.entry(zs.file(), stamp)
            infos.append(
                parts.SheetInfo(name, writer.last_row, names.column_letter(len(header) - 1))
            )
            if not writer.more:
                break
            carry = writer.carry
            part += 1
    if not infos:
        raise XlsxValueError("a workbook needs at least one sheet")

    zs.add(styles.styles_xml(formats), parts.STYLES_PATH)
    zs.add(theme.THEME_XML, parts.THEME_PATH)
    zs.add(parts.workbook_xml(infos), parts.WORKBOOK_PATH)
    zs.add(parts.workbook_rels_xml(len(infos)), parts.WORKBOOK_RELS_PATH)
    zs.add(parts.core_xml(modified_at), parts.CORE_PATH)
    zs.add(parts.app_xml(), parts.APP_PATH)
    zs.add(parts.root_rels_xml(), parts.ROOT_RELS_PATH)
    zs.add(parts.content_types_xml(len(infos)), parts.CONTENT_TYPES_PATH)
    while zs.num_queued():
        yield from out.entry(zs.file(), stamp)
    yield from out.footer(zs.footer(), stamp)


def _row_encoder(
    header: Sequence[str], specs: Sequence[Column], formats: list[str], stats: WriteStats
) -> RowEncoder:
    """The row code of one sheet; its custom number formats are added to the workbook's
    ``formats`` (styles.xml is written last, with every sheet's)."""
    column_styles = []
    for spec in specs:
        if spec.number_format is None:
            column_styles.append(0)
            continue
        if spec.number_format not in formats:
            custom = [code for code in formats if code not in styles.DEFAULT_FORMATS]
            if (
                spec.number_format not in styles.DEFAULT_FORMATS
                and len(custom) >= styles.MAX_COLUMN_FORMATS
            ):
                raise XlsxValueError(
                    f"more than {styles.MAX_COLUMN_FORMATS} distinct number formats besides the"
                    " default date and time formats (Excel's limit per workbook)"
                )
            formats.append(spec.number_format)
        column_styles.append(styles.FIRST_CUSTOM_STYLE + formats.index(spec.number_format))
    decimals = [dates.second_decimals(s.number_format) if s.number_format else 0 for s in specs]
    letters = [names.column_letter(i) for i in range(len(header))]
    ints = [spec.ints for spec in specs]
    return RowEncoder(CellEncoder(letters, column_styles, stats, decimals, ints))


def _free_name(name: str, taken: set[str]) -> str:
    """``name``, or the first of "<name> (2)", "<name> (3)", ... no sheet of the workbook has."""
    if name.casefold() not in taken:
        return name
    for number in itertools.count(2):
        candidate = names.continuation_name(name, number, ())
        if candidate.casefold() not in taken:
            return candidate
    raise AssertionError("unreachable: the numbers never run out")


class _Chunker:
    """Re-cuts zipstream-ng's output into OUTPUT_CHUNK pieces, fixing its headers (zipfix.py)."""

    def __init__(self, stats: WriteStats) -> None:
        self._buf = bytearray()
        self._stats = stats

    def entry(self, chunks: Iterator[bytes], stamp: bytes) -> Iterator[bytes]:
        first = True
        for chunk in chunks:
            if first:
                chunk = zipfix.restamp(chunk, zipfix.LOCAL_HEADER, stamp)
                first = False
            yield from self._add(chunk)

    def footer(self, chunks: Iterator[bytes], stamp: bytes) -> Iterator[bytes]:
        # The footer is small (~100 bytes per entry): fixed as a whole.
        for chunk in zipfix.fix_footer(list(chunks), stamp):
            yield from self._add(chunk)
        if self._buf:
            self._stats.bytes_out += len(self._buf)
            yield bytes(self._buf)
            self._buf.clear()

    def _add(self, chunk: bytes) -> Iterator[bytes]:
        buf = self._buf
        buf += chunk
        while len(buf) >= OUTPUT_CHUNK:
            piece = bytes(buf[:OUTPUT_CHUNK])
            del buf[:OUTPUT_CHUNK]
            self._stats.bytes_out += len(piece)
            yield piece
