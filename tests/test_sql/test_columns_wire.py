"""``dbo.spColumns`` on the wire: bytes written out by hand from MS-TDS, read by the raw client.

COLMETADATA (2.2.7.4), ROW (2.2.7.19), NBCROW (2.2.7.15), PLP (2.2.5.2.3), collations
(2.2.5.1.2), and the negotiated packet size with pytds and the raw client.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import pytest

from sql.devserver import DevServer
from sql.devserver.columns import Column, spec_json
from tests.devclient import dev_connect
from tests.test_sql import tdsclient
from tests.test_sql.columns_client import call, raw_reply

# The reply to a batch of one EXEC ends: DONEINPROC (MORE|COUNT, SELECT, rows), RETURNSTATUS 0,
# DONEPROC (final: the message's last token).
CMD_SELECT, CMD_EXECUTE = 0xC1, 0xE0


def trailer(rows: int) -> bytes:
    return (
        struct.pack("<BHHQ", 0xFF, 0x11, CMD_SELECT, rows)
        + b"\x79\x00\x00\x00\x00"
        + struct.pack("<BHHQ", 0xFE, 0x00, CMD_EXECUTE, 0)
    )


def name(text: str) -> bytes:
    return bytes((len(text),)) + text.encode("utf-16-le")


def column(type_info: bytes, col_name: str, nullable: bool = True) -> bytes:
    return bytes(4) + (b"\x01\x00" if nullable else b"\x00\x00") + type_info + name(col_name)


LATIN1_CP1 = bytes.fromhex("0904d00034")  # SQL_Latin1_General_CP1_CI_AS: LCID 0x409, SortId 52


def test_colmetadata_rows_and_trailer_byte_for_byte(devserver_thread: DevServer) -> None:
    spec = spec_json(
        [Column("a", "int"), Column("b", "varchar(5)"), Column("c", "bigint", nullable=False)],
        [[7, "hi", -1], [None, None, 2]],
        row_tokens="auto",
    )
    reply = raw_reply(devserver_thread, spec)
    meta = (
        b"\x81\x03\x00"
        + column(b"\x26\x04", "a")  # INTN(4)
        + column(b"\xa7\x05\x00" + LATIN1_CP1, "b")  # BIGVARCHAR(5) + collation
        + column(b"\x7f", "c", nullable=False)  # INT8
    )
    row1 = b"\xd1" + b"\x04\x07\x00\x00\x00" + b"\x02\x00hi" + struct.pack("<q", -1)
    # NULLs inline would take 1 (INTN) + 2 (0xFFFF) bytes, more than the 1-byte bitmap: NBCROW.
    row2 = b"\xd2\x03" + struct.pack("<q", 2)
    assert reply.payload == meta + row1 + row2 + trailer(2)


@pytest.mark.parametrize(
    ("row_tokens", "expected"),
    [
        ("row", b"\xd1\x00" + b"\x02\x00hi"),  # INTN NULL is length 0
        ("nbcrow", b"\xd2\x01" + b"\x02\x00hi"),
        ("auto", b"\xd1\x00" + b"\x02\x00hi"),  # 1 inline byte is not more than the bitmap
    ],
)
def test_row_tokens_modes(devserver_thread: DevServer, row_tokens: str, expected: bytes) -> None:
    spec = spec_json(
        [Column("a", "int"), Column("b", "varchar(5)")], [[None, "hi"]], row_tokens=row_tokens
    )
    assert expected + trailer(1) in raw_reply(devserver_thread, spec).payload


def test_nbcrow_bitmap_spans_bytes_bit_by_bit(devserver_thread: DevServer) -> None:
    """Ten columns: two bitmap bytes, column i is bit i % 8 of byte i // 8."""
    columns = [Column(f"c{i}", "tinyint") for i in range(10)]
    row = [None if i in (0, 3, 9) else i for i in range(10)]
    reply = raw_reply(devserver_thread, spec_json(columns, [row], row_tokens="nbcrow"))
    bitmap = bytes((0b0000_1001, 0b0000_0010))
    cells = b"".join(bytes((1, i)) for i in range(10) if i not in (0, 3, 9))
    assert b"\xd2" + bitmap + cells + trailer(1) in reply.payload


def test_inline_nulls_of_every_framing(devserver_thread: DevServer) -> None:
    """ROW with NULLs: 0-length (BYTELEN types), 0xFFFF (USHORT), PLP_NULL, an empty text
    pointer, a 0-length sql_variant."""
    types = ["datetime2(7)", "nvarchar(10)", "varbinary(max)", "ntext", "sql_variant"]
    reply = raw_reply(
        devserver_thread,
        spec_json(
            [Column(f"c{i}", t) for i, t in enumerate(types)], [[None] * 5], row_tokens="row"
        ),
    )
    row = b"\xd1" + b"\x00" + b"\xff\xff" + b"\xff" * 8 + b"\x00" + b"\x00" * 4
    assert row + trailer(1) in reply.payload


def test_plp_chunks_and_terminator(devserver_thread: DevServer) -> None:
    value = "é" * 10_001  # 20,002 bytes of UTF-16
    reply = raw_reply(
        devserver_thread, spec_json([Column("v", "nvarchar(max)")], [[value]], row_tokens="row")
    )
    meta = b"\x81\x01\x00" + column(b"\xe7\xff\xff" + LATIN1_CP1, "v")
    assert reply.payload.startswith(meta + b"\xd1")
    body = reply.payload[len(meta) + 1 : -len(trailer(1))]
    assert struct.unpack_from("<Q", body)[0] == 20_002
    chunks, pos = [], 8
    while (size := struct.unpack_from("<I", body, pos)[0]) != 0:
        chunks.append(body[pos + 4 : pos + 4 + size])
        pos += 4 + size
    assert pos + 4 == len(body)  # the terminator ends the value
    assert [len(c) for c in chunks] == [8000, 8000, 4002]
    assert b"".join(chunks) == value.encode("utf-16-le")


def test_forced_small_chunks_and_unknown_length(devserver_thread: DevServer) -> None:
    spec = spec_json(
        [Column("v", "varbinary(max)")], [["0102030405"]], plp_chunk=2, plp_unknown_length=True
    )
    reply = raw_reply(devserver_thread, spec)
    plp = (
        b"\xfe" + b"\xff" * 7  # PLP_UNKNOWN_LEN
        + b"\x02\x00\x00\x00\x01\x02" + b"\x02\x00\x00\x00\x03\x04" + b"\x01\x00\x00\x00\x05"
        + b"\x00\x00\x00\x00"
    )  # fmt: skip
    assert b"\xd1" + plp + trailer(1) in reply.payload


@pytest.mark.parametrize(
    ("collation", "wire", "text", "encoded"),
    [
        ("SQL_Latin1_General_CP1_CI_AS", "0904d00034", "é€", b"\xe9\x80"),
        ("Latin1_General_CI_AS", "0904d00000", "é€", b"\xe9\x80"),
        ("Cyrillic_General_CI_AS", "1904d00000", "Жж", b"\xc6\xe6"),
        ("Greek_CI_AS", "0804d00000", "Ωω", b"\xd9\xf9"),
        ("Japanese_CI_AS", "1104d00000", "東", b"\x93\x8c"),
        ("Chinese_PRC_CI_AS", "0408d00000", "中", b"\xd6\xd0"),
        # fUTF8 (0x04000000) and version 2 (the _100 collations) in the top byte.
        ("Latin1_General_100_CI_AS_SC_UTF8", "0904d02400", "é€", "é€".encode()),
    ],
)
def test_collation_bytes_and_code_page(
    devserver_thread: DevServer, collation: str, wire: str, text: str, encoded: bytes
) -> None:
    spec = spec_json([Column("v", "varchar(10)", collation=collation)], [[text]], row_tokens="row")
    payload = raw_reply(devserver_thread, spec).payload
    meta = b"\x81\x01\x00" + column(b"\xa7\x0a\x00" + bytes.fromhex(wire), "v")
    row = b"\xd1" + len(encoded).to_bytes(2, "little") + encoded
    assert payload == meta + row + trailer(1)


def test_sql_variant_instances(devserver_thread: DevServer) -> None:
    """SSVARIANT_INSTANCE: length, base type, property bytes, properties, value."""
    cells = [
        {"type": "int", "value": 5},
        {"type": "decimal(9,2)", "value": "-3.14"},
        {"type": "nvarchar(4)", "value": "ab"},
        {"type": "time(3)", "value": "00:00:01"},
    ]
    spec = spec_json([Column("v", "sql_variant")], [[c] for c in cells], row_tokens="row")
    payload = raw_reply(devserver_thread, spec).payload
    assert b"\x81\x01\x00" + column(b"\x62" + (8016).to_bytes(4, "little"), "v") in payload
    expected = [
        b"\x38\x00" + struct.pack("<i", 5),  # INT4, no properties
        b"\x6a\x02\x09\x02" + b"\x00" + (314).to_bytes(4, "little"),  # precision, scale; sign 0
        b"\xe7\x07" + LATIN1_CP1 + b"\x08\x00" + "ab".encode("utf-16-le"),  # collation, max len
        b"\x29\x01\x03" + (1000).to_bytes(4, "little"),  # TIMEN, scale 3: 1000 ms
    ]
    rows = b"".join(b"\xd1" + len(e).to_bytes(4, "little") + e for e in expected)
    assert rows + trailer(4) in payload


def test_text_ntext_image_carry_pointer_timestamp_and_table_name(
    devserver_thread: DevServer,
) -> None:
    spec = spec_json([Column("t", "text"), Column("i", "image")], [["ab", "01"]], row_tokens="row")
    payload = raw_reply(devserver_thread, spec).payload
    table = (
        b"\x02"
        + b"\x03\x00"
        + "dbo".encode("utf-16-le")
        + b"\x09\x00"
        + "spColumns".encode("utf-16-le")
    )
    text_info = b"\x23" + (2**31 - 1).to_bytes(4, "little") + LATIN1_CP1 + table
    image_info = b"\x22" + (2**31 - 1).to_bytes(4, "little") + table
    assert payload.startswith(b"\x81\x02\x00" + column(text_info, "t") + column(image_info, "i"))
    pointer = b"\x10" + bytes(range(16)) + bytes(8)
    row = b"\xd1" + pointer + b"\x02\x00\x00\x00ab" + pointer + b"\x01\x00\x00\x00\x01"
    assert row + trailer(1) in payload


# -- packet sizes -----------------------------------------------------------------------------

PACKET_SIZES = [512, 513, 4096, 32767]
# A row of mixed widths (about 120 bytes), so rows straddle packet boundaries at many offsets.
WIDE = [
    Column("i", "int"),
    Column("s", "nvarchar(40)"),
    Column("d", "decimal(38,10)"),
    Column("t", "datetime2(7)"),
    Column("m", "varchar(max)"),
    Column("b", "bit", nullable=False),
]
WIDE_ROWS = [
    [1, "Zürich 🚀", "-1234567890.0123456789", "2024-01-02 03:04:05.1234567", "x" * 37, True],
    [None, "", None, None, None, False],
    [2**31 - 1, "東京" * 10, "0.0000000001", "0001-01-01 00:00:00", "", True],
]


@pytest.fixture(params=PACKET_SIZES, ids=[f"packet{p}" for p in PACKET_SIZES])
def packet_size(request: pytest.FixtureRequest) -> int:
    return int(request.param)


def test_the_raw_reply_honours_the_negotiated_packet_size(
    devserver_thread: DevServer, packet_size: int
) -> None:
    reply = raw_reply(devserver_thread, spec_json(WIDE, WIDE_ROWS, repeat=500), packet_size)
    assert all(size == packet_size for size in reply.packet_sizes[:-1])
    assert 0 < reply.packet_sizes[-1] <= packet_size
    assert tdsclient.done_tokens(reply.payload)[0] == (0xFF, 0x11, 1500)


@pytest.fixture
def conn_at(devserver_thread: DevServer, packet_size: int) -> Iterator[Any]:
    with dev_connect(devserver_thread.port, timeout=30, blocksize=packet_size) as c:
        yield c


def test_pytds_reads_every_row_at_every_packet_size(conn_at: Any, packet_size: int) -> None:
    # pytds reads each packet into a buffer of the negotiated size: a larger packet would fail.
    _description, rows = call(conn_at, WIDE, WIDE_ROWS, repeat=500)
    assert len(rows) == 1500
    first, second, third = rows[:3]
    assert rows == [first, second, third] * 500
    assert second == (None, "", None, None, None, False)
    assert first[1] == "Zürich 🚀" and first[4] == "x" * 37  # noqa: PT018 - one row's text
    assert third[0] == 2**31 - 1
