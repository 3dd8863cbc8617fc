"""The compiled row writer (xlsx.native) writes exactly what the Python encoders write.

Rows of primitive cells are written by the compiled code, a declined row by the Python
encoder, and the whole must be byte for byte the Python encoder's own output for the same
values; each test also checks that the compiled code wrote the plain rows itself (a writer
that declined everything would otherwise pass).
"""

from __future__ import annotations

import datetime as dt
import importlib
import math
import random
import struct
from collections.abc import Iterator, Sequence

import pytest

import primitive_cells
import xlsx
from primitive_cells import CellType
from tests.test_xlsx.test_meanings import scaled_samples
from xlsx import native
from xlsx.cells import CellEncoder
from xlsx.dates import second_decimals
from xlsx.rows import RowEncoder
from xlsx.spec import WriteStats

pytestmark = pytest.mark.compiled

ORIGIN = dt.date(1, 1, 1)
INT64 = (-(2**63), 2**63 - 1)
# Code points for random text: what needs escaping or trimming, lookalike escapes, spaces
# Python's str.strip() removes (ASCII and not), astral characters and lone surrogates.
ALPHABET = (
    "aZ09 _x<>&\"'\t\n\x1f\x7f\xa0\xe9\u3000\u2028\ufffe\uffff\u00e9\u6771\U0001f680\ud800\udc00"
)


def encoder(
    meanings: Sequence[xlsx.IntMeaning | None], number_format: str | None = None
) -> RowEncoder:
    width = len(meanings)
    letters = [chr(ord("A") + i) for i in range(width)]
    style = [7 if number_format else 0] * width
    decimals = [second_decimals(number_format) if number_format else 0] * width
    return RowEncoder(CellEncoder(letters, style, WriteStats(), decimals, list(meanings)))


def pack(types: Sequence[CellType], rows: Sequence[Sequence[object]]) -> tuple[bytes, bytes]:
    """(data, cells) for rows of Python values: texts appended to data, cells pointing there."""
    data = bytearray(b"\xd1" * 3)  # text offsets must not start at 0 to be checked
    cells = bytearray()
    for row in rows:
        for kind, value in zip(types, row, strict=True):
            if value is None:
                cells += struct.pack("<qii", 0, -1, 0)
            elif kind is CellType.DOUBLE:
                cells += struct.pack("<dii", value, 0, 0)
            elif kind in (CellType.INT64, CellType.BOOL):
                cells += struct.pack("<qii", int(value), 0, 0)  # type: ignore[call-overload]
            else:
                assert isinstance(value, str)
                raw = (
                    value.encode("cp1252")
                    if kind is CellType.BYTE_TEXT
                    else value.encode("utf-16-le", "surrogatepass")
                )
                cells += struct.pack("<qii", len(data), len(raw), 0)
                data += raw
    return bytes(data), bytes(cells)


def write_both(
    enc: RowEncoder,
    types: Sequence[CellType],
    rows: Sequence[Sequence[object]],
    first: int = 2,
    byte_tables: Sequence[str | None] | None = None,
) -> tuple[bytes, bytes, int]:
    """(compiled with declined rows written by Python, Python alone, rows the compiled code
    wrote)."""
    plan = native.plan_rows(enc, types, byte_tables)
    assert plan is not None
    data, cells = pack(types, rows)
    out: list[bytes] = []
    k = written = 0
    row_bytes = len(types) * primitive_cells.CELL_BYTES
    while k < len(rows):
        xml, done, stop = plan.encode(data, cells[k * row_bytes :], len(rows) - k, first + k, 10**9)
        out.append(xml)
        written += done
        k += done
        if stop == primitive_cells.STOP_DECLINED:
            out.append(enc.encode(rows[k], str(first + k)).encode())
            k += 1
        else:
            assert stop == primitive_cells.STOP_DONE
    expected = b"".join(enc.encode(row, str(first + n)).encode() for n, row in enumerate(rows))
    return b"".join(out), expected, written


def assert_same(
    enc: RowEncoder,
    types: Sequence[CellType],
    rows: Sequence[Sequence[object]],
    *,
    least: float,
    byte_tables: Sequence[str | None] | None = None,
) -> None:
    got, expected, written = write_both(enc, types, rows, byte_tables=byte_tables)
    assert got == expected
    assert written >= least * len(rows), f"the compiled code wrote only {written}/{len(rows)} rows"


def test_the_compiled_module_is_built() -> None:
    assert native.AVAILABLE, "xlsx._rowxml is not built: install with a C compiler (setup.py)"


def test_ints_in_and_beyond_the_exact_range() -> None:
    rng = random.Random(1)
    edges = [0, 1, -1, 2**53 - 1, -(2**53 - 1), 2**53, -(2**53), *INT64]
    values = edges + [rng.randint(*INT64) >> rng.randrange(64) for _ in range(2000)]
    for number_format in (None, "0"):
        enc = encoder([None], number_format)
        assert_same(enc, [CellType.INT64], [(v,) for v in values], least=1.0)


def test_floats_every_magnitude_and_the_non_finite() -> None:
    rng = random.Random(2)
    edges = [0.0, -0.0, 1.0, 1e16, 1e15, 1e-4, 1e-5, 5e-324, 1.7976931348623157e308, 0.1, 1 / 3]
    bits = [struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0] for _ in range(3000)]
    values = [*edges, math.inf, -math.inf, math.nan, *bits]
    assert_same(encoder([None]), [CellType.DOUBLE], [(v,) for v in values], least=0.9)


def test_bools_and_nulls() -> None:
    types = [CellType.BOOL, CellType.INT64, CellType.DOUBLE, CellType.UTF16_TEXT]
    rows = [(True, 1, 1.5, "a"), (False, None, None, None), (None, None, None, None)]
    assert_same(encoder([None] * 4), types, rows, least=1.0)


@pytest.mark.parametrize("scale", range(11))
def test_scaled_decimals(scale: int) -> None:
    values = [v for v in scaled_samples(scale) if INT64[0] <= v <= INT64[1]]
    assert_same(
        encoder([xlsx.ScaledDecimal(scale)]), [CellType.INT64], [(v,) for v in values], least=0.5
    )


def test_day_counts_around_every_edge() -> None:
    first = dt.date(1900, 3, 1).toordinal() - 1
    last = dt.date.max.toordinal() - 1
    rng = random.Random(3)
    days = [0, first - 1, first, first + 1, last - 1, last]
    days += [rng.randint(0, last) for _ in range(2000)]
    assert_same(encoder([xlsx.DayCount(ORIGIN)]), [CellType.INT64], [(d,) for d in days], least=0.7)


@pytest.mark.parametrize(
    ("scale", "number_format"),
    [(3, None), (3, "hh:mm:ss.000"), (7, "ss.0"), (0, None), (7, "ss.000")],
)
def test_tick_counts_floored_as_the_format_shows(scale: int, number_format: str | None) -> None:
    per_second = 10**scale
    per_day = 86_400 * per_second
    first = (dt.date(1900, 3, 1).toordinal() - 1) * per_day
    end = dt.date.max.toordinal() * per_day
    rng = random.Random(scale)
    ticks = [0, first - 1, first, first + 1, end - 1, rng.randint(0, end)]
    ticks += [rng.randint(first - per_day, end - 1) for _ in range(3000)]
    enc = encoder([xlsx.TickCount(per_second, ORIGIN)], number_format)
    assert_same(enc, [CellType.INT64], [(t,) for t in ticks], least=0.9)


def test_ticks_shown_finer_than_a_double_holds_keep_the_python_path() -> None:
    enc = encoder([xlsx.TickCount(10**7, ORIGIN)], "ss.000000")
    assert native.plan_rows(enc, [CellType.INT64]) is None


def _texts(rng: random.Random, alphabet: str, count: int) -> list[str]:
    texts = ["", " ", "a", "a ", " a", "_x", "_x0041_", "x_", "a" * 16383, "a" * 16384]
    for _ in range(count):
        texts.append("".join(rng.choice(alphabet) for _ in range(rng.randrange(12))))
        texts.append("".join(rng.choice("aZ09 _-.") for _ in range(rng.randrange(12))))
    return texts


def test_utf16_text_plain_or_declined() -> None:
    texts = _texts(random.Random(4), ALPHABET, 4000)
    texts += [
        "\u3000a",
        "a\xa0",
        "Zürich",
        "東京",
        "Rakete 🚀",
        "\U0001f680" * 8192,
        "\U0001f680" * 8191 + "a",
    ]
    # As the wire gives them: a high and a low surrogate in a row are one character.
    texts = [
        t.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass") for t in texts
    ]
    assert_same(encoder([None]), [CellType.UTF16_TEXT], [(t,) for t in texts], least=0.4)


def test_byte_text_plain_ascii_or_declined() -> None:
    alphabet = "".join(c for c in ALPHABET if ord(c) < 0x100 and c not in "\xa0\xe9") + "é"
    texts = _texts(random.Random(5), alphabet, 4000)
    assert_same(encoder([None]), [CellType.BYTE_TEXT], [(t,) for t in texts], least=0.4)


def test_byte_text_beyond_ascii_through_the_code_page_s_table() -> None:
    # cp1252 as the row source decodes it: its five unassigned bytes as C1 controls.
    table = (
        bytes(range(256))
        .decode("latin-1")
        .translate({b: bytes((b,)).decode("cp1252", "replace") for b in range(128, 256)})
    )
    table = "".join(c if c != "\ufffd" else chr(i) for i, c in enumerate(table))
    alphabet = "aZ09 _x<>&\t\xa0éü€½"  # \xa0: whitespace str.strip() removes
    texts = [*_texts(random.Random(7), alphabet, 3000), "Zürich", "Straße ½ €", "\xa0a", "a\xa0"]
    rows = [(t,) for t in texts]
    assert_same(encoder([None]), [CellType.BYTE_TEXT], rows, least=0.5, byte_tables=[table])
    # Without the table only ASCII is written: fewer rows, the same bytes.
    got, expected, written = write_both(encoder([None]), [CellType.BYTE_TEXT], rows)
    assert got == expected
    assert written < sum(t.isascii() for t in texts) + 1


def test_a_byte_table_belongs_to_byte_text_and_has_256_characters() -> None:
    with pytest.raises(ValueError, match="256"):
        native.plan_rows(encoder([None]), [CellType.BYTE_TEXT], ["abc"])
    assert native.plan_rows(encoder([None]), [CellType.UTF16_TEXT], ["x" * 256]) is not None


def test_a_row_beyond_the_room_is_left_whole_for_the_next_call() -> None:
    enc = encoder([None, None])
    types = [CellType.INT64, CellType.UTF16_TEXT]
    rows = [(n, "text") for n in range(100)]
    plan = native.plan_rows(enc, types)
    assert plan is not None
    data, cells = pack(types, rows)
    one = len(enc.encode(rows[0], "2"))
    xml, done, stop = plan.encode(data, cells, len(rows), 2, 10 * one + one // 2)
    assert (done, stop) == (10, primitive_cells.STOP_ROOM)
    assert xml == b"".join(enc.encode(row, str(2 + n)).encode() for n, row in enumerate(rows[:10]))


def test_a_column_only_python_writes_means_no_plan() -> None:
    enc = encoder([None])
    assert native.plan_rows(enc, []) is None
    assert native.plan_rows(enc, [CellType.INT64, CellType.INT64]) is None  # wider than the sheet


def _doubles(rng: random.Random, count: int) -> Iterator[float]:
    """Doubles of every kind the formatter meets, and its boundary cases."""
    for _ in range(count):
        yield struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]
        x = 10 ** rng.uniform(-4.5, 15.5)
        yield from (x, -x)
        yield rng.randrange(61 * 86_400_000, 2_958_466 * 86_400_000) / 86_400_000  # serials
        yield rng.randrange(-(10**15), 10**15) / 10 ** rng.randrange(5)  # scaled decimals
        digits = rng.randrange(1, 17)
        yield float(f"{rng.randrange(10**digits)}e{rng.randrange(-4 - digits, 15 - digits)}")
        power = 2.0 ** rng.randrange(-14, 50)  # a power of two: its gap below is half
        below = struct.unpack("<q", struct.pack("<d", power))[0] - 1
        yield from (power, struct.unpack("<d", struct.pack("<q", below))[0])


def test_the_integer_float_formatter_is_python_s_repr() -> None:
    fast_repr = native.fast_float_text
    assert fast_repr is not None
    checked = 0
    for x in _doubles(random.Random(6), 40_000):
        text = fast_repr(x)
        if text is not None:
            assert text == repr(x), x.hex()
            checked += 1
    assert checked > 250_000  # most of the 360,000 are in its range
    assert fast_repr(0.0) == "0.0"
    assert fast_repr(-0.0) == "-0.0"
    assert fast_repr(1e15) is None
    assert fast_repr(9.9e-5) is None


def _table_text_rows(table: str, texts: Sequence[bytes]) -> tuple[bytes, bytes, list[str]]:
    """(data, cells, the texts as the table decodes them) for one BYTE_TEXT column."""
    data = b"\xd1" + b"".join(texts)
    cells = bytearray()
    at = 1
    for raw in texts:
        cells += struct.pack("<qii", at, len(raw), 0)
        at += len(raw)
    return data, bytes(cells), ["".join(table[b] for b in raw) for raw in texts]


def test_a_surrogate_in_a_byte_table_is_escaped_as_the_python_encoder_escapes_it() -> None:
    """UTF-8 has no surrogates: the compiled code declines the text, the Python encoder
    writes `_xD800_`."""
    table = "".join(map(chr, range(128))) + "\ud800\udfff" + "é" * 126
    enc = encoder([None])
    plan = native.plan_rows(enc, [CellType.BYTE_TEXT], [table])
    assert plan is not None
    texts = [b"a\x80b", b"\x81", b"\x82plain"]
    data, cells, decoded = _table_text_rows(table, texts)
    xml, done, stop = plan.encode(data, cells, 3, 2, 10**9)
    assert (done, stop) == (0, primitive_cells.STOP_DECLINED)
    xml, done, stop = plan.encode(data, cells[2 * 16 :], 1, 4, 10**9)
    assert (done, stop) == (1, primitive_cells.STOP_DONE)
    assert xml == enc.encode((decoded[2],), "4").encode()
    assert b"_xD800_" in enc.encode((decoded[0],), "2").encode()


def test_a_byte_table_keeps_the_ascii_bytes() -> None:
    """ASCII text is written as its bytes: a table that would decode it otherwise is refused."""
    table = "".join(map(chr, range(256))).replace("A", "B", 1)
    with pytest.raises(ValueError, match="ASCII"):
        native.plan_rows(encoder([None]), [CellType.BYTE_TEXT], [table])


def test_rows_are_numbered_from_1_to_2_63_minus_1() -> None:
    plan = native.plan_rows(encoder([None]), [CellType.INT64])
    assert plan is not None
    cells = struct.pack("<qii", 5, 0, 0) * 2
    for first in (0, -5):
        with pytest.raises(ValueError, match="first_row"):
            plan.encode(b"", cells, 1, first, 10**9)
    last = 2**63 - 1
    xml, done, _ = plan.encode(b"", cells, 1, last, 10**9)
    assert (xml, done) == (f'<row r="{last}"><c r="A{last}"><v>5</v></c></row>'.encode(), 1)
    with pytest.raises(ValueError, match="first_row"):
        plan.encode(b"", cells, 2, last, 10**9)  # the second row's number would overflow
    with pytest.raises(OverflowError):
        plan.encode(b"", cells, 1, 2**63, 10**9)


def test_an_op_the_compiled_code_does_not_have_is_refused() -> None:
    module = native._rowxml
    assert module is not None
    column = (b'<c r="A', b'"><v>', b"</v></c>", b"", b"", 0, 0, 0, 0, 0, 0, None)
    assert module.plan([(1, *column)]) is not None
    # 2**32 + 1 is not op 1, whatever the width of a C int.
    for op in (0, 10, 255, -1, 2**32 + 1, 2**31 + 1):
        with pytest.raises(ValueError, match=f"unknown op {op}"):
            module.plan([(op, *column)])
    with pytest.raises(OverflowError):
        module.plan([(2**64 + 1, *column)])


def test_a_text_cell_outside_the_data_is_refused() -> None:
    enc = encoder([None, None])
    types = [CellType.INT64, CellType.UTF16_TEXT]
    plan = native.plan_rows(enc, types)
    assert plan is not None
    data = b"\xd1" + "abc".encode("utf-16-le")
    good = struct.pack("<qiiqii", 7, 0, 0, 1, 6, 0)
    assert plan.encode(data, good, 1, 2, 10**9)[1] == 1
    empty_at_end = struct.pack("<qiiqii", 7, 0, 0, len(data), 0, 0)
    assert plan.encode(data, empty_at_end, 1, 2, 10**9)[1] == 1
    for offset, length in ((1, 8), (len(data) + 1, 0), (-1, 2), (2**62, 2), (len(data), 2)):
        cells = struct.pack("<qiiqii", 7, 0, 0, offset, length, 0)
        with pytest.raises(ValueError, match=r"column 1's text .* outside the data"):
            plan.encode(data, cells, 1, 2, 10**9)


def test_a_plan_s_parameters_are_bounded() -> None:
    """A tick count's origin and multiplier within 2**62 (their product with any int64 then
    fits the 128 bits the serial is computed in), a decimal's scale within 38."""
    module = native._rowxml
    assert module is not None

    def column(op: int, *params: int) -> tuple[object, ...]:
        return (op, b"<c>", b"<v>", b"</v></c>", b"", b"", *params, None)

    ticks, scaled_text = 7, 5
    assert module.plan([column(ticks, -(2**62), 2**62, 1, 0, 1, 1)]) is not None
    for origin, multiplier in ((-(2**62) - 1, 1), (2**62 + 1, 1), (0, 2**62 + 1), (0, 0)):
        with pytest.raises(ValueError, match="out of range"):
            module.plan([column(ticks, origin, multiplier, 1, 0, 1, 1)])
    assert module.plan([column(scaled_text, 38, 0, 0, 0, 0, 0)]) is not None
    for scale in (-1, 39):
        with pytest.raises(ValueError, match="scale"):
            module.plan([column(scaled_text, scale, 0, 0, 0, 0, 0)])


def test_the_c_constants_are_the_python_ones() -> None:
    """``xlsx/_rowxml.c``'s numbers, exported as module constants, are those of their one
    Python definition: the cell layout and the writer's stops (:mod:`primitive_cells`), the
    ops (native._Op). The scanner's side: tests/test_tdsrows/test_c_constants.py."""
    rowxml = importlib.import_module("xlsx._rowxml")
    assert rowxml.CELL_BYTES == primitive_cells.CELL_BYTES
    stops = {name: getattr(rowxml, name) for name in dir(rowxml) if name.startswith("STOP_")}
    assert stops == {
        "STOP_DONE": primitive_cells.STOP_DONE,
        "STOP_ROOM": primitive_cells.STOP_ROOM,
        "STOP_DECLINED": primitive_cells.STOP_DECLINED,
    }
    ops = {name[3:]: getattr(rowxml, name) for name in dir(rowxml) if name.startswith("OP_")}
    assert ops == {op.name: op.value for op in native._Op}
