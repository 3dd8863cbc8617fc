"""Zip64 records zipstream-ng adds past 2 GiB are removed while the file stays under 4 GiB."""

import io
import os
import struct
import tempfile
import zipfile

import pytest

import xlsx
from tests.test_xlsx.support import FIXED_TIME, write
from xlsx import zipfix

CENTRAL = struct.Struct("<4s4B4HL2L5H2L")
END = struct.Struct("<4s4H2LH")
ZIP64_END = struct.Struct("<4sQ2H2L4Q")
ZIP64_LOCATOR = struct.Struct("<4sLQL")
STAMP = b"\x01\x02\x03\x04"


def central(name: bytes, offset: int, *, csize: int = 10, usize: int = 20) -> bytes:
    """A central header as zipstream-ng writes it when the offset is past 2**31 - 1."""
    big = offset > 2**31 - 1
    extra = struct.pack("<HHQ", 1, 8, offset) if big else b""
    return (
        CENTRAL.pack(
            b"PK\x01\x02",
            45 if big else 20,
            3,
            45 if big else 20,
            0,
            8,
            8,
            0,
            0,
            0xABCD,
            csize,
            usize,
            len(name),
            len(extra),
            0,
            0,
            0,
            0o600 << 16,
            0xFFFFFFFF if big else offset,
        )
        + name
        + extra
    )


def footer(records: list[bytes], cd_offset: int) -> list[bytes]:
    size = sum(map(len, records))
    zip64 = ZIP64_END.pack(
        b"PK\x06\x06", 44, 45, 45, 0, 0, len(records), len(records), size, cd_offset
    ) + ZIP64_LOCATOR.pack(b"PK\x06\x07", 0, cd_offset + size, 1)
    end = END.pack(b"PK\x05\x06", 0, 0, len(records), len(records), size, 0xFFFFFFFF, 0)
    return [*records, zip64, end]


def test_footer_past_2_gib_becomes_classic() -> None:
    records = [central(b"a.xml", 0), central(b"b.xml", 3_000_000_000)]
    fixed = zipfix.fix_footer(footer(records, 3_500_000_000), STAMP)
    assert len(fixed) == 3  # two records and the end record; no Zip64 end record or locator
    for record, (name, offset) in zip(
        fixed[:2], [(b"a.xml", 0), (b"b.xml", 3_000_000_000)], strict=True
    ):
        fields = CENTRAL.unpack_from(record)
        assert (fields[1], fields[3]) == (20, 20)  # versions
        assert record[12:16] == STAMP
        assert (fields[10], fields[11], fields[13], fields[18]) == (10, 20, 0, offset)
        assert record[CENTRAL.size :] == name
    end = END.unpack(fixed[2])
    assert end == (b"PK\x05\x06", 0, 0, 2, 2, len(fixed[0]) + len(fixed[1]), 3_500_000_000, 0)


def test_footer_of_a_real_zip64_file_is_kept() -> None:
    records = [central(b"a.xml", 0), central(b"b.xml", 5_000_000_000)]
    original = footer(records, 5_500_000_000)
    fixed = zipfix.fix_footer(original, STAMP)
    assert fixed[2:] == original[2:]  # Zip64 end record, locator and end record as they were
    for before, after in zip(original[:2], fixed[:2], strict=True):
        assert after == before[:12] + STAMP + before[16:]  # only restamped


def test_small_files_footer_is_only_restamped() -> None:
    data = write(["a"], [[1]])
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        assert all(i.extra == b"" and i.create_version == 20 for i in z.infolist())


@pytest.mark.slow
def test_a_file_past_2_gib_has_no_zip64_records() -> None:
    # Level 0 keeps the output as large as the XML: ~2.2 GB from 74,000 rows of 30,000 characters.
    text = "x" * 30_000
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "big.xlsx")
        with open(path, "wb") as f:
            for chunk in xlsx.stream_xlsx(
                ["text"], ([text] for _ in range(74_000)), compress_level=0, modified_at=FIXED_TIME
            ):
                f.write(chunk)
        size = os.path.getsize(path)
        assert 2**31 < size < 2**32
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
            assert infos[-1].header_offset > 2**31  # zipstream-ng would have used Zip64 here
            for info in infos:
                assert info.extra == b""
                assert (info.create_version, info.extract_version) == (20, 20)
            assert z.read("xl/workbook.xml").startswith(b"<?xml")
            with z.open("xl/worksheets/sheet2.xml") as sheet:
                assert sheet.read(100).startswith(b"<?xml")
        with open(path, "rb") as f:
            f.seek(size - 22)
            assert f.read(4) == b"PK\x05\x06"
            f.seek(size - 200)
            assert b"PK\x06\x06" not in f.read()
            for info in infos:  # local headers: classic too
                f.seek(info.header_offset)
                header = f.read(30)
                assert header[:4] == b"PK\x03\x04"
                assert struct.unpack_from("<H", header, 4)[0] == 20
                assert struct.unpack_from("<H", header, 28)[0] == 0
