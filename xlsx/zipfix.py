"""Fix-ups of zipstream-ng's header records: entry timestamps, and Zip64 where none is needed.

Timestamps: zipstream-ng 1.9.3 has no per-entry timestamp argument (it takes the local time as
an entry starts), so the time and date fields are rewritten in each local header (the first
chunk of an entry) and in each central directory header (one chunk each in the footer).

Zip64: zipstream-ng, like zipfile, switches the central directory to Zip64 (an extra field for
the offset, version 45, a Zip64 end record) once an offset passes 2**31 - 1, although the
classic 32-bit fields hold up to 2**32 - 1. Files between 2 and 4 GiB would then carry Zip64
records that Office is known to refuse in files that do not need them (docs/xlsx.md). While
every size and offset fits 32 bits, the footer is rebuilt without them. (Local headers never
carry Zip64 here: every entry has a size hint, see workbook.py.)
"""

import struct
from collections.abc import Sequence
from typing import Final

from xlsx.errors import XlsxError

LOCAL_HEADER: Final = b"PK\x03\x04"
CENTRAL_HEADER: Final = b"PK\x01\x02"
ZIP64_END: Final = b"PK\x06\x06"
END: Final = b"PK\x05\x06"

# APPNOTE 4.3.12 central directory header, 4.3.16 end record, 4.3.14 Zip64 end record.
_CENTRAL = struct.Struct("<4s4B4HL2L5H2L")
_END = struct.Struct("<4s4H2LH")
_ZIP64_END = struct.Struct("<4sQ2H2L4Q")
_EXTRA_HEADER = struct.Struct("<HH")
_ZIP64_EXTRA_ID: Final = 0x0001
# Version needed for deflate without Zip64 (APPNOTE 4.4.3.2), what local headers already say.
CLASSIC_VERSION: Final = 20
_MAX_32: Final = 0xFFFF_FFFF
_MAX_ENTRIES: Final = 0xFFFF
# Field indexes in _CENTRAL; Zip64 extra values come in this order, one per field set to
# 0xFFFFFFFF (APPNOTE 4.5.3).
_CREATE_VERSION, _EXTRACT_VERSION, _EXTRA_LEN = 1, 3, 13
_ZIP64_FIELDS: Final = (11, 10, 18)  # uncompressed size, compressed size, local header offset


def restamp(header: bytes, signature: bytes, stamp: bytes) -> bytes:
    """`header` (a local or central header) with its time and date fields set to `stamp`."""
    if header[:4] != signature:
        raise XlsxError(f"unexpected zip layout from zipstream-ng: {header[:4]!r} at a header")
    offset = 10 if signature == LOCAL_HEADER else 12
    return header[:offset] + stamp + header[offset + 4 :]


def fix_footer(chunks: Sequence[bytes], stamp: bytes) -> list[bytes]:
    """zipstream-ng's footer chunks with times stamped and needless Zip64 records removed."""
    records: list[bytes] = []
    zip64_end: bytes | None = None
    end: bytes | None = None
    for chunk in chunks:
        if chunk[:4] == CENTRAL_HEADER:
            records.append(restamp(chunk, CENTRAL_HEADER, stamp))
        elif chunk[:4] == ZIP64_END:
            zip64_end = chunk  # the Zip64 end record and its locator
        elif chunk[:4] == END:
            end = chunk
        else:
            raise XlsxError(f"unexpected zip layout from zipstream-ng: {chunk[:4]!r} in footer")
    if end is None:
        raise XlsxError("zipstream-ng's footer has no end of central directory record")
    if zip64_end is None and not any(_zip64_extra(r) for r in records):
        return [*records, end]
    classic = [_classic_record(r) for r in records]
    fields = list(_END.unpack_from(end))
    offset = _ZIP64_END.unpack_from(zip64_end)[9] if zip64_end is not None else fields[6]
    if any(r is None for r in classic) or offset > _MAX_32 or len(records) > _MAX_ENTRIES:
        # Really a Zip64 file (4 GiB or more): keep zipstream-ng's records.
        return [*records, *([zip64_end] if zip64_end is not None else []), end]
    rebuilt = [r for r in classic if r is not None]
    fields[3] = fields[4] = len(rebuilt)
    fields[5] = sum(map(len, rebuilt))
    fields[6] = offset
    return [*rebuilt, _END.pack(*fields) + end[_END.size :]]


def _split_extra(record: bytes) -> tuple[bytes, bytes | None]:
    """(the record's extra fields other than Zip64, the Zip64 field's data or None)."""
    fields = _CENTRAL.unpack_from(record)
    start = _CENTRAL.size + fields[12]
    extra = record[start : start + fields[_EXTRA_LEN]]
    kept, zip64 = b"", None
    pos = 0
    while pos + _EXTRA_HEADER.size <= len(extra):
        tag, size = _EXTRA_HEADER.unpack_from(extra, pos)
        end = pos + _EXTRA_HEADER.size + size
        if tag == _ZIP64_EXTRA_ID:
            zip64 = extra[pos + _EXTRA_HEADER.size : end]
        else:
            kept += extra[pos:end]
        pos = end
    return kept, zip64


def _zip64_extra(record: bytes) -> bool:
    return _split_extra(record)[1] is not None


def _classic_record(record: bytes) -> bytes | None:
    """`record` without its Zip64 extra field, or None if a value needs more than 32 bits."""
    kept, zip64 = _split_extra(record)
    if zip64 is None:
        return record
    fields = list(_CENTRAL.unpack_from(record))
    name_end = _CENTRAL.size + fields[12]
    comment = record[name_end + fields[_EXTRA_LEN] :]
    values = list(struct.unpack(f"<{len(zip64) // 8}Q", zip64))
    for index in _ZIP64_FIELDS:
        if fields[index] == _MAX_32 and values:
            fields[index] = values.pop(0)
    if any(fields[index] > _MAX_32 for index in _ZIP64_FIELDS):
        return None
    fields[_CREATE_VERSION] = fields[_EXTRACT_VERSION] = CLASSIC_VERSION
    fields[_EXTRA_LEN] = len(kept)
    return _CENTRAL.pack(*fields) + record[_CENTRAL.size : name_end] + kept + comment
