"""Streaming check of a downloaded .xlsx: bytes in as they arrive, a verdict at the end.

The body is never held in memory. :class:`XlsxStreamChecker` parses the zip as a stream
(APPNOTE.TXT 6.3.10: local file headers, data, data descriptors, then the central directory
and its end record), inflates each deflated entry with :func:`zlib.decompressobj` and checks
its CRC-32 and sizes against the descriptor and the central directory. Only headers are
buffered; entry data goes straight through the decompressor in bounded pieces.

The workbook inside, whatever its number of sheets: every worksheet part is fed as it inflates
to a :class:`~tests.load.sheets.SheetScan` (well-formed XML, rows numbered 1, 2, 3... without a
gap, a header row of text); ``xl/workbook.xml`` and its relationships (small, read whole) must
list exactly the worksheet parts the zip holds, each once, under distinct names. The
:class:`Verdict` gives each sheet in the workbook's order with its rows and sample rows; what
they should be for a given report is :mod:`tests.load.expect`'s business.

A CRC-32 only proves the bytes are the ones the writer produced, which is why the XML is
parsed too: a writer (or a row source) that produced a broken sheet gets a matching CRC.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass

from tests.load.errors import InvalidDownload
from tests.load.sheets import FIRST_DATA_ROW, MAX_PART_BYTES, Row, SheetScan, listed_sheets

LOCAL_SIG = b"PK\x03\x04"
CENTRAL_SIG = b"PK\x01\x02"
DESCRIPTOR_SIG = b"PK\x07\x08"
ZIP64_END_SIG = b"PK\x06\x06"
ZIP64_LOCATOR_SIG = b"PK\x06\x07"
END_SIG = b"PK\x05\x06"

_LOCAL = struct.Struct("<4sHHHHHIIIHH")  # APPNOTE 4.3.7
_CENTRAL = struct.Struct("<4sHHHHHHIIIHHHHHII")  # APPNOTE 4.3.12
_END = struct.Struct("<4sHHHHIIH")  # APPNOTE 4.3.16
_ZIP64_END_FIXED = struct.Struct("<4sQ")  # signature + size of the rest (APPNOTE 4.3.14)
_ZIP64_LOCATOR = struct.Struct("<4sIQI")  # APPNOTE 4.3.15
_ZIP64_EXTRA_ID = 0x0001
_FLAG_DESCRIPTOR = 0x0008  # general purpose bit 3: sizes and CRC follow the data
_STORED, _DEFLATED = 0, 8
_MAX32 = 0xFFFFFFFF
_MAX16 = 0xFFFF

# Inflated bytes produced per decompress call: a 64 KiB network chunk of XML inflates to ~5x
# its size, so this caps the transient buffer at a few hundred KiB whatever the ratio.
MAX_INFLATE_CHUNK = 256 * 1024
# Headers longer than this are not a zip we produced (names, extras and comments are tiny);
# the cap keeps a corrupted length field from making us buffer the rest of the body.
MAX_HEADER_BYTES = 3 * _MAX16 + 64

# Parts scanned as worksheets: any XML file directly in xl/worksheets/ (our writer names them
# sheet1.xml, sheet2.xml...; whether each is a sheet the workbook shows is checked at the end).
WORKSHEET_RE = re.compile(r"xl/worksheets/[^/]+\.xml")
WORKBOOK_PART = "xl/workbook.xml"
WORKBOOK_RELS_PART = "xl/_rels/workbook.xml.rels"
REQUIRED_PARTS = ("[Content_Types].xml", WORKBOOK_PART, WORKBOOK_RELS_PART)
# Parts read whole (each at most sheets.MAX_PART_BYTES) to find the sheets.
_PARTS_READ = (WORKBOOK_PART, WORKBOOK_RELS_PART)


@dataclass
class Entry:
    """One zip member as seen in its local header and data."""

    name: str
    offset: int
    method: int
    flags: int
    stamp: tuple[int, int, int]  # version needed, modification time and date
    crc: int = 0
    compressed: int = 0
    size: int = 0
    zip64: bool = False
    scan: SheetScan | None = None  # a worksheet's
    content: bytearray | None = None  # a part read whole (_PARTS_READ)


@dataclass(frozen=True)
class SheetVerdict:
    """One sheet of a valid download, as the workbook lists it."""

    name: str
    part: str  # its worksheet part, xl/worksheets/sheetN.xml
    rows: int  # the header row included
    columns: int  # cells in the header row
    first_row: Row | None  # the first data row (row 2); None without data rows or not kept
    last_row: Row | None  # the last row when it is a data row; None as above

    @property
    def data_rows(self) -> int:
        return self.rows - 1


@dataclass(frozen=True)
class Verdict:
    """What a valid download held."""

    bytes: int
    entries: int
    sheets: tuple[SheetVerdict, ...]  # in the workbook's order

    @property
    def rows_per_sheet(self) -> list[int]:
        return [sheet.rows for sheet in self.sheets]

    @property
    def data_rows(self) -> int:
        """Rows below the header row of each sheet, summed over the sheets."""
        return sum(sheet.data_rows for sheet in self.sheets)


class XlsxStreamChecker:
    """Feed the body with :meth:`feed` as it arrives; :meth:`finish` returns the verdict or
    raises :class:`InvalidDownload` saying what is wrong and at which byte."""

    def __init__(self, *, xml_check: bool = True) -> None:
        self._xml_check = xml_check  # parse each worksheet's XML (see sheets.SheetScan)
        self._buffer = bytearray()
        self._offset = 0  # bytes of the body consumed so far (excluding the buffer)
        self._state = self._local_header
        self._entries: list[Entry] = []
        self._entry: Entry | None = None
        self._inflater: zlib._Decompress | None = None
        self._stored_left = 0
        self._central_seen = 0
        self._central_start = 0
        self._central_end = 0
        self._done = False

    # -- public ---------------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        if self._done:
            if data:
                raise self._error("bytes after the end of the zip")
            return
        if self._state == self._entry_data:
            data = self._consume_data(data)
        self._buffer += data
        while not self._done and self._state():
            pass

    def finish(self) -> Verdict:
        if not self._done:
            where = self._state.__name__.strip("_").replace("_", " ")
            raise InvalidDownload(
                f"truncated: the body ended inside the {where} "
                f"after {self._offset + len(self._buffer):,} bytes"
            )
        by_name = {entry.name: entry for entry in self._entries}
        for part in REQUIRED_PARTS:
            if part not in by_name:
                raise InvalidDownload(f"not a workbook: no {part}")
        scans = {name: e.scan for name, e in by_name.items() if e.scan is not None}
        if not scans:
            raise InvalidDownload("not a workbook: no worksheet")
        workbook, rels = (bytes(by_name[part].content or b"") for part in _PARTS_READ)
        listed = listed_sheets(workbook, rels)
        return Verdict(
            bytes=self._offset,
            entries=len(self._entries),
            sheets=tuple(
                _sheet_verdict(name, scans[part]) for name, part in _matched(listed, scans)
            ),
        )

    # -- states: each returns True when it made progress and parsing can go on ------------------

    def _local_header(self) -> bool:
        if len(self._buffer) < 4:
            return False
        signature = bytes(self._buffer[:4])
        if signature == CENTRAL_SIG:
            self._central_start = self._offset
            self._state = self._central_header
            return True
        if signature != LOCAL_SIG:
            raise self._error(f"expected a local file header, found {signature!r}")
        if len(self._buffer) < _LOCAL.size:
            return False
        (_, version, flags, method, mtime, mdate, crc, csize, usize, name_len, extra_len) = (
            _LOCAL.unpack_from(self._buffer)
        )
        total = _LOCAL.size + name_len + extra_len
        if len(self._buffer) < total:
            return False
        name = self._name(_LOCAL.size, name_len, flags)
        extra = bytes(self._buffer[_LOCAL.size + name_len : total])
        entry = Entry(name, self._offset, method, flags, (version, mtime, mdate))
        zip64 = _zip64_extra(extra)
        entry.zip64 = zip64 is not None
        if method not in (_STORED, _DEFLATED):
            raise self._error(f"{name}: compression method {method} is not stored or deflate")
        if not flags & _FLAG_DESCRIPTOR:
            entry.crc, entry.compressed, entry.size = crc, csize, usize
            if zip64 is not None:
                entry.size, entry.compressed = _zip64_sizes(zip64, usize, csize)
        elif method == _STORED:
            raise self._error(f"{name}: stored entry of unknown size")
        elif crc != 0 or csize not in (0, _MAX32) or usize not in (0, _MAX32):
            # APPNOTE 4.4.4: with bit 3 set these are zero here and follow the data.
            raise self._error(f"{name}: sizes or CRC in a local header that defers them")
        if any(e.name == name for e in self._entries):
            raise self._error(f"{name} is in the zip twice")
        if WORKSHEET_RE.fullmatch(name):
            entry.scan = SheetScan(name, xml_check=self._xml_check)
        elif name in _PARTS_READ:
            entry.content = bytearray()
        self._take(total)
        self._entries.append(entry)
        self._entry = entry
        self._crc = 0
        self._in = 0
        self._out = 0
        if method == _DEFLATED:
            self._inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        else:
            self._stored_left = entry.compressed
        self._state = self._entry_data
        rest, self._buffer = bytes(self._buffer), bytearray()
        self._buffer += self._consume_data(rest)
        return True

    def _entry_data(self) -> bool:
        return False  # data is consumed in feed() as it arrives; the state ends itself

    def _descriptor(self) -> bool:
        entry = self._entry
        assert entry is not None
        fmt = "<IQQ" if entry.zip64 else "<III"
        size = struct.calcsize(fmt)
        if len(self._buffer) < 4 + size:  # room for the optional signature too
            return False
        # The descriptor's signature is optional (APPNOTE 4.3.9.3); a CRC that happens to equal
        # the signature is told apart by what follows it.
        first, second = struct.unpack_from("<II", self._buffer)
        signed = bytes(self._buffer[:4]) == DESCRIPTOR_SIG and (
            second == self._crc or first != self._crc
        )
        start = 4 if signed else 0
        entry.crc, entry.compressed, entry.size = struct.unpack_from(fmt, self._buffer, start)
        self._check_entry()
        self._take(start + size)
        self._state = self._local_header
        return True

    def _central_header(self) -> bool:
        if len(self._buffer) < 4:
            return False
        signature = bytes(self._buffer[:4])
        if signature in (END_SIG, ZIP64_END_SIG):
            if self._central_seen != len(self._entries):
                raise self._error(
                    f"central directory lists {self._central_seen} entries, "
                    f"the body held {len(self._entries)}"
                )
            self._central_end = self._offset
            self._state = self._end_records
            return True
        if signature != CENTRAL_SIG:
            raise self._error(f"expected a central directory header, found {signature!r}")
        if len(self._buffer) < _CENTRAL.size:
            return False
        fields = _CENTRAL.unpack_from(self._buffer)
        stamp = (fields[2], fields[5], fields[6])
        flags, method, crc, csize, usize = fields[3], fields[4], fields[7], fields[8], fields[9]
        name_len, extra_len, comment_len, offset = fields[10], fields[11], fields[12], fields[16]
        if fields[13] not in (0, _MAX16):
            raise self._error(f"central directory entry on disk {fields[13]}: a multi-disk zip")
        total = _CENTRAL.size + name_len + extra_len + comment_len
        if len(self._buffer) < total:
            return False
        name = self._name(_CENTRAL.size, name_len, flags)
        extra = bytes(self._buffer[_CENTRAL.size + name_len : _CENTRAL.size + name_len + extra_len])
        zip64 = _zip64_extra(extra)
        if zip64 is not None:
            usize, csize, offset = _zip64_central(zip64, usize, csize, offset)
        if self._central_seen >= len(self._entries):
            raise self._error(f"central directory names {name!r}, which the body did not hold")
        entry = self._entries[self._central_seen]
        # Everything the local header also says must agree (APPNOTE 4.3.12 repeats it).
        seen = (name, flags, method, stamp, crc, csize, usize, offset)
        local = (
            entry.name,
            entry.flags,
            entry.method,
            entry.stamp,
            entry.crc,
            entry.compressed,
            entry.size,
            entry.offset,
        )
        if seen != local:
            raise self._error(
                f"central directory entry {self._central_seen} "
                f"(name, flags, method, version/time/date, crc, sizes, offset) {seen} "
                f"!= local header's {local}"
            )
        self._central_seen += 1
        self._take(total)
        return True

    def _end_records(self) -> bool:
        if bytes(self._buffer[:4]) == ZIP64_END_SIG:
            if len(self._buffer) < _ZIP64_END_FIXED.size:
                return False
            _, rest = _ZIP64_END_FIXED.unpack_from(self._buffer)
            if rest > MAX_HEADER_BYTES:
                raise self._error("zip64 end record is implausibly long")
            if len(self._buffer) < _ZIP64_END_FIXED.size + rest + _ZIP64_LOCATOR.size:
                return False
            self._take(_ZIP64_END_FIXED.size + rest)
            if bytes(self._buffer[:4]) != ZIP64_LOCATOR_SIG:
                raise self._error("zip64 end record without its locator")
            self._take(_ZIP64_LOCATOR.size)
        if len(self._buffer) < _END.size:
            return False
        _, disk, cd_disk, here, total, cd_size, cd_offset, comment_len = _END.unpack_from(
            self._buffer
        )
        if bytes(self._buffer[:4]) != END_SIG:
            raise self._error("expected the end of central directory record")
        if len(self._buffer) < _END.size + comment_len:
            return False
        count = len(self._entries)
        expected_size = self._central_end - self._central_start
        if (disk, cd_disk) != (0, 0) or here != total:
            raise self._error("a multi-disk zip")
        if total not in (count, _MAX16) or cd_offset not in (self._central_start, _MAX32):
            raise self._error(
                f"end record says {total} entries at {cd_offset}, "
                f"found {count} at {self._central_start}"
            )
        if cd_size not in (expected_size, _MAX32):
            raise self._error(
                f"end record says central directory {cd_size} bytes, found {expected_size}"
            )
        self._take(_END.size + comment_len)
        if self._buffer:
            raise self._error("bytes after the end of the zip")
        self._done = True
        return False

    # -- helpers --------------------------------------------------------------------------------

    def _consume_data(self, data: bytes) -> bytes:
        """Pass ``data`` to the current entry; return what follows the entry's data."""
        entry = self._entry
        assert entry is not None
        if self._inflater is None:
            take = data[: self._stored_left]
            self._stored_left -= len(take)
            self._in += len(take)
            self._offset += len(take)
            self._inflated(take)
            rest = data[len(take) :]
            if self._stored_left == 0:
                self._end_of_data()
            return rest
        inflater = self._inflater
        pending = data
        try:
            while not inflater.eof:
                out = inflater.decompress(pending, MAX_INFLATE_CHUNK)
                self._inflated(out)
                pending = inflater.unconsumed_tail
                if not pending and len(out) < MAX_INFLATE_CHUNK:
                    break
        except zlib.error as exc:
            raise self._error(f"{entry.name}: corrupt deflate data ({exc})") from None
        if not inflater.eof:
            self._in += len(data)
            self._offset += len(data)
            return b""
        rest = inflater.unused_data
        used = len(data) - len(rest)
        self._in += used
        self._offset += used
        self._inflater = None
        self._end_of_data()
        return rest

    def _inflated(self, out: bytes) -> None:
        entry = self._entry
        assert entry is not None
        self._crc = zlib.crc32(out, self._crc)
        self._out += len(out)
        if entry.scan is not None:
            try:
                entry.scan.feed(out)
            except InvalidDownload as exc:
                raise self._error(str(exc)) from None
        elif entry.content is not None:
            entry.content += out
            if len(entry.content) > MAX_PART_BYTES:
                raise self._error(f"{entry.name} is larger than {MAX_PART_BYTES:,} bytes")

    def _end_of_data(self) -> None:
        entry = self._entry
        assert entry is not None
        if entry.scan is not None:
            try:
                entry.scan.close()
            except InvalidDownload as exc:
                raise self._error(str(exc)) from None
        if entry.flags & _FLAG_DESCRIPTOR:
            self._state = self._descriptor
        else:
            self._check_entry()
            self._state = self._local_header

    def _check_entry(self) -> None:
        entry = self._entry
        assert entry is not None
        actual = (self._crc, self._in, self._out)
        declared = (entry.crc, entry.compressed, entry.size)
        if actual != declared:
            raise self._error(
                f"{entry.name}: (crc, compressed, size) {actual} != declared {declared}"
            )

    def _name(self, start: int, length: int, flags: int) -> str:
        raw = bytes(self._buffer[start : start + length])
        return raw.decode("utf-8" if flags & 0x800 else "cp437")

    def _take(self, count: int) -> None:
        del self._buffer[:count]
        self._offset += count

    def _error(self, what: str) -> InvalidDownload:
        return InvalidDownload(f"{what} (at byte {self._offset:,})")


def _matched(listed: list[tuple[str, str]], scans: dict[str, SheetScan]) -> list[tuple[str, str]]:
    """The workbook's sheets, each checked to point to a worksheet part of the zip; every
    worksheet part listed exactly once; no two sheets named alike (Excel compares names
    case-insensitively and refuses the file otherwise)."""
    parts = [part for _, part in listed]
    names = [name.casefold() for name, _ in listed]
    for name, part in listed:
        if part not in scans:
            raise InvalidDownload(f"sheet {name!r} is {part}, which the zip does not hold")
        if parts.count(part) > 1:
            raise InvalidDownload(f"{part} is listed as more than one sheet")
        if not name.strip() or names.count(name.casefold()) > 1:
            raise InvalidDownload(f"sheet name {name!r} is empty or used twice")
    unlisted = sorted(set(scans) - set(parts))
    if unlisted:
        raise InvalidDownload(f"{', '.join(unlisted)} not listed in {WORKBOOK_PART}")
    return listed


def _sheet_verdict(name: str, scan: SheetScan) -> SheetVerdict:
    header = scan.header()
    has_data = scan.rows > 1
    return SheetVerdict(
        name=name,
        part=scan.part,
        rows=scan.rows,
        columns=len(header.cells),
        first_row=scan.row(FIRST_DATA_ROW) if has_data else None,
        last_row=scan.last_row() if has_data else None,
    )


def _zip64_extra(extra: bytes) -> bytes | None:
    """The data of the Zip64 extended information field (APPNOTE 4.5.3), if present."""
    pos = 0
    while pos + 4 <= len(extra):
        header_id, size = struct.unpack_from("<HH", extra, pos)
        if header_id == _ZIP64_EXTRA_ID:
            return extra[pos + 4 : pos + 4 + size]
        pos += 4 + size
    return None


def _zip64_sizes(data: bytes, usize: int, csize: int) -> tuple[int, int]:
    values = list(struct.unpack_from(f"<{len(data) // 8}Q", data))
    if usize == _MAX32 and values:
        usize = values.pop(0)
    if csize == _MAX32 and values:
        csize = values.pop(0)
    return usize, csize


def _zip64_central(data: bytes, usize: int, csize: int, offset: int) -> tuple[int, int, int]:
    values = list(struct.unpack_from(f"<{len(data) // 8}Q", data))
    out = []
    for value in (usize, csize, offset):
        out.append(values.pop(0) if value == _MAX32 and values else value)
    return out[0], out[1], out[2]


def check_bytes(body: bytes, *, piece: int = 65536, xml_check: bool = True) -> Verdict:
    """Check a body already in memory (tests), fed in ``piece``-byte chunks."""
    checker = XlsxStreamChecker(xml_check=xml_check)
    for start in range(0, len(body), piece):
        checker.feed(body[start : start + piece])
    return checker.finish()
