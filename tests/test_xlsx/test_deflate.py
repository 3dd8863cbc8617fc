"""The sheets' deflate: ISA-L at the default level, zlib's otherwise, both read by zipfile."""

from __future__ import annotations

import io
import zipfile
import zlib

import zipstream.ng

import xlsx
from xlsx import deflate


def test_the_default_level_uses_isal() -> None:
    # isal is a declared dependency: losing the fast path (say, a zipstream-ng release without
    # the _get_compressor hook) must fail here rather than silently slow every export.
    assert deflate.ACCELERATED
    compressor = zipstream.ng._get_compressor(
        zipfile.ZIP_DEFLATED, deflate.zip_level(xlsx.DEFAULT_COMPRESS_LEVEL)
    )
    assert type(compressor).__module__.startswith("isal")


def test_other_levels_and_other_zipstream_users_keep_zlib() -> None:
    for level in (0, 2, 6, 9):
        assert type(deflate.zip_level(level)) is int
    plain = zipstream.ng._get_compressor(zipfile.ZIP_DEFLATED, 1)
    assert type(plain) is type(zlib.compressobj(1, zlib.DEFLATED, -15))


def test_isal_output_inflates_with_zlib_and_zipfile() -> None:
    rows = [(n, f"text {n}", n / 7) for n in range(5_000)]
    data = b"".join(xlsx.stream_xlsx(["n", "text", "ratio"], rows))
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        sheet = archive.read("xl/worksheets/sheet1.xml")
    assert b"<v>4999</v>" in sheet
    assert sheet.count(b"<row ") == len(rows) + 1


def test_levels_trade_size_for_speed() -> None:
    rows = [(n, f"Item-{n:08d}", n * 1.5) for n in range(20_000)]
    fast = b"".join(xlsx.stream_xlsx(["n", "s", "f"], rows, compress_level=1))
    small = b"".join(xlsx.stream_xlsx(["n", "s", "f"], rows, compress_level=9))
    assert len(small) < len(fast)


def test_entries_are_checksummed_by_isal_with_zip_s_own_crc() -> None:
    from isal import isal_zlib

    assert zipstream.ng.crc32 is isal_zlib.crc32
    for data in (b"", b"a", bytes(range(256)) * 300):
        assert isal_zlib.crc32(data) == zlib.crc32(data)
        assert isal_zlib.crc32(data, 12345) == zlib.crc32(data, 12345)
