"""The decoders as pure functions: bytes in, rows out, whatever the bytes end on.

The bytes are the dev server's own encoding of a spec (no socket): the decoder is fed every
prefix of them (a packet boundary can fall anywhere), must never hand over a row it has not
seen whole, and must agree with the per-value reference decoder and with its own skip walk.
Both decoders of FastRows.fetch: the generated one (every column), and the compiled scanner
with its tuple builder (scandecode.py; the same columns but the uniqueidentifier, which no
cell holds).
"""

from __future__ import annotations

import datetime as dt
import decimal
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from sql.devserver.columns import Column as SpecColumn
from sql.devserver.columns import parse_spec, spec_json
from tdsrows import Column, Framing, Kind, Layout, compile_layout, values
from tdsrows.cells import ReferenceDecoder
from tdsrows.codegen import DecodeFn
from tdsrows.scandecode import ScannedDecode
from tdsrows.stops import INCOMPLETE
from tdsrows.values import RAW_KINDS
from tests.test_tdsrows.support import comparable

DONE = b"\xfd" + bytes(12)  # a DONE token after the rows, as on the wire (MS-TDS 2.2.7.6)

# The same columns twice: as a spec for the dev server's encoder, and as the layout pytds'
# COLMETADATA gives the fast path (checked against a live pytds in test_differential).
SPEC_COLUMNS = [
    SpecColumn("i", "int"),
    SpecColumn("b", "bigint", nullable=False),
    SpecColumn("d", "decimal(18,4)"),
    SpecColumn("v", "varchar(10)"),
    SpecColumn("n", "nvarchar(10)"),
    SpecColumn("dt", "date"),
    SpecColumn("t", "datetime2(3)"),
    SpecColumn("f", "float"),
    SpecColumn("g", "uniqueidentifier"),
]
LAYOUT = Layout.of(
    [
        Column("i", Kind.INT, Framing.BYTE_LEN, 4),
        Column("b", Kind.INT, Framing.FIXED, 8),
        Column("d", Kind.DECIMAL, Framing.BYTE_LEN, 9, scale=4),
        Column("v", Kind.TEXT, Framing.USHORT_LEN, 10, codec="cp1252"),
        Column("n", Kind.NTEXT, Framing.USHORT_LEN, 20),
        Column("dt", Kind.DATE, Framing.BYTE_LEN, 3),
        Column("t", Kind.DATETIME2, Framing.BYTE_LEN, 7, scale=3),
        Column("f", Kind.FLOAT, Framing.BYTE_LEN, 8),
        Column("g", Kind.GUID, Framing.BYTE_LEN, 16),
    ]
)
ROWS: list[list[Any]] = [
    [
        1,
        2,
        "1.5",
        "abc",
        "\u00e9t\u00e9",
        "2024-01-02",
        "2024-01-02 03:04:05.678",
        0.5,
        "6F9619FF-8B86-D011-B42D-00C04FC964FF",
    ],
    [None, -1, None, None, None, None, None, None, None],
    [
        -7,
        2**62,
        "-0.0001",
        "",
        "",
        "0001-01-01",
        "9999-12-31 23:59:59.999",
        "nan",
        "00000000-0000-0000-0000-000000000000",
    ],
    [
        2**31 - 1,
        0,
        "99999999999999.9999",
        "caf\u00e9",
        "\U0001f600",
        "1900-03-01",
        "1900-03-01 00:00:00",
        -0.0,
        None,
    ],
]


@dataclass(frozen=True)
class Way:
    """One decoder of FastRows.fetch, with the columns and rows it is tested on."""

    compiled: bool
    spec_columns: list[SpecColumn]
    layout: Layout
    rows: list[list[Any]]

    def decoder(self, layout: Layout | None = None, **options: Any) -> DecodeFn:
        generated = compile_layout(layout or self.layout, **options)
        return ScannedDecode(generated).decode if self.compiled else generated.decode


_NO_GUID = len(SPEC_COLUMNS) - 1
WAYS = [
    Way(False, SPEC_COLUMNS, LAYOUT, ROWS),
    Way(
        True,
        SPEC_COLUMNS[:_NO_GUID],
        Layout(LAYOUT.columns[:_NO_GUID]),
        [r[:_NO_GUID] for r in ROWS],
    ),
]


@pytest.fixture(
    params=[
        pytest.param(WAYS[0], id="generated"),
        pytest.param(WAYS[1], id="compiled", marks=pytest.mark.compiled),
    ]
)
def way(request: pytest.FixtureRequest) -> Way:
    chosen: Way = request.param
    return chosen


def wire(way: Way, rows: Sequence[Sequence[Any]], row_tokens: str) -> bytes:
    """The rows' ROW/NBCROW tokens as the dev server sends them, then a DONE."""
    result = parse_spec(spec_json(way.spec_columns, rows, row_tokens=row_tokens))
    return b"".join(result.rows) + DONE


def reference(way: Way, data: bytes) -> tuple[list[tuple[Any, ...]], list[int]]:
    """The rows as the reference decoder reads them, and where each row ends."""
    ref = ReferenceDecoder(way.layout)
    out: list[tuple[Any, ...]] = []
    ends = []
    pos = 0
    while data[pos] != DONE[0]:
        pos = ref.token(data, pos, out.append, len(data))
        assert pos > 0
        ends.append(pos)
    return out, ends


@pytest.mark.parametrize("row_tokens", ["auto", "row", "nbcrow"])
def test_whole_bytes_decode_as_the_reference_decoder_does(way: Way, row_tokens: str) -> None:
    data = wire(way, way.rows, row_tokens)
    out: list[tuple[Any, ...]] = []
    pos, stop = way.decoder()(data, 0, out.append)
    assert (pos, stop) == (len(data) - len(DONE), DONE[0])
    assert comparable(out) == comparable(reference(way, data)[0])
    assert len(out) == len(ROWS)


@pytest.mark.parametrize("row_tokens", ["auto", "row", "nbcrow"])
def test_every_prefix_gives_the_whole_rows_in_it_and_nothing_more(
    way: Way, row_tokens: str
) -> None:
    """A packet can end anywhere: decode(prefix) returns the rows that end inside it and
    stops at the start of the first row it cuts."""
    data = wire(way, way.rows, row_tokens)
    decode = way.decoder()
    skip = compile_layout(way.layout).skip
    whole, ends = reference(way, data)
    for cut in range(len(data) - len(DONE)):
        out: list[tuple[Any, ...]] = []
        pos, stop = decode(data[:cut], 0, out.append)
        complete = sum(1 for end in ends if end <= cut)
        assert stop == INCOMPLETE, cut
        assert comparable(out) == comparable(whole[:complete]), cut
        assert pos == (ends[complete - 1] if complete else 0), cut
        assert skip(data[:cut], 0) == (pos, INCOMPLETE), cut


def test_trailing_data_after_the_rows_is_left_alone(way: Way) -> None:
    data = wire(way, way.rows, "auto")
    trailing = b"\x79" + struct.pack("<i", 0) + DONE  # RETURNSTATUS, DONE
    out: list[tuple[Any, ...]] = []
    pos, stop = way.decoder()(data[: -len(DONE)] + trailing, 0, out.append)
    assert stop == 0x79
    assert pos == len(data) - len(DONE)
    assert len(out) == len(ROWS)


def test_raw_columns_are_ints_that_stand_for_the_same_values(way: Way) -> None:
    """DECIMAL -> scaled int, DATE -> days since 0001-01-01, DATETIME2 -> ticks since then."""
    data = wire(way, way.rows, "auto")
    objects: list[tuple[Any, ...]] = []
    raw: list[tuple[Any, ...]] = []
    way.decoder()(data, 0, objects.append)
    way.decoder(raw_kinds=RAW_KINDS)(data, 0, raw.append)

    def others(row: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(v for i, v in enumerate(row) if i not in (2, 5, 6))

    for obj, ints in zip(objects, raw, strict=True):
        if obj[2] is not None:
            assert decimal.Decimal(ints[2]).scaleb(-4) == obj[2]
        if obj[5] is not None:
            assert dt.date.fromordinal(ints[5] + 1) == obj[5]
        if obj[6] is not None:
            assert dt.datetime(1, 1, 1) + dt.timedelta(milliseconds=ints[6]) == obj[6]
        assert comparable([others(ints)]) == comparable([others(obj)])


def test_a_value_length_the_layout_does_not_expect_goes_to_the_reference_decoder(
    way: Way,
) -> None:
    """INTN(8) column holding a 4-byte value: legal TDS; decoded by the reference path."""
    layout = Layout.of([Column("x", Kind.INT, Framing.BYTE_LEN, 8)])
    data = b"\xd1\x04" + struct.pack("<i", -5) + b"\xd1\x08" + struct.pack("<q", 2**40) + DONE
    out: list[tuple[Any, ...]] = []
    assert way.decoder(layout)(data, 0, out.append) == (len(data) - len(DONE), DONE[0])
    assert out == [(-5,), (2**40,)]


def test_unassigned_code_page_bytes_decode_to_c1_controls(way: Way) -> None:
    """cp1252's 0x81 (unassigned in Python, mapped by Windows): no error, U+0081."""
    layout = Layout.of([Column("v", Kind.TEXT, Framing.USHORT_LEN, 10, codec="cp1252")])
    data = b"\xd1\x03\x00a\x81\x80" + DONE
    out: list[tuple[Any, ...]] = []
    way.decoder(layout)(data, 0, out.append)
    assert out == [("a\x81\u20ac",)]


def test_datetime_and_smalldatetime_ints_are_milliseconds_since_1900() -> None:
    """The raw form of DATETIME (every 1/300 s of a second, pytds' rounding to ms) and of
    SMALLDATETIME, at the ends of their ranges, is the datetime pytds builds."""
    epoch = dt.datetime(1900, 1, 1)
    last_tick = 24 * 3600 * 300 - 1
    for days in (-53_690, -1, 0, 1, 45_000, 2_958_463):
        for t in [*range(600), last_tick - 1, last_tick]:
            ms = values.datetime_raw(days, t)
            assert epoch + dt.timedelta(milliseconds=ms) == values.datetime_value(days, t)
    for days, minutes in ((0, 0), (0, 1439), (65_535, 1439), (40_000, 61)):
        ms = values.smalldatetime_raw(days, minutes)
        assert epoch + dt.timedelta(milliseconds=ms) == values.smalldatetime_value(days, minutes)


@pytest.mark.parametrize("codec", ["cp1252", "cp1250", "cp1251", "cp874", "cp1255", "latin-1"])
def test_a_single_byte_code_page_has_a_table_of_its_256_characters(codec: str) -> None:
    table = values.byte_table(codec)
    assert table is not None
    decode = values.text_decoder(codec)
    assert [decode(bytes((b,))) for b in range(256)] == list(table)


@pytest.mark.parametrize("codec", ["cp932", "cp936", "cp949", "cp950", "utf-8"])
def test_a_multi_byte_code_page_has_none(codec: str) -> None:
    assert values.byte_table(codec) is None
