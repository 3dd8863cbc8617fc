"""Hypothesis strategies of TDS row streams, built from the wire's own structure, and their
mutations.

A :class:`Stream` is a layout of the compiled scanner's kinds (every framing, size, scale and
code page it reads) and ROW/NBCROW tokens of it, valid as SQL Server would send them or at
their edges (narrower values a nullable type allows, decimals past 64 bits and negative zeros,
days past 9999-12-31, any bytes of text), often followed by a DONE. It remembers where each
token and each length prefix is, so that :func:`mutations` can do what a broken or hostile
server does: flip bits, set a length prefix to one its column's type does not have (one off,
odd, past the declared maximum, NULL's), replace a token byte, insert or delete bytes, cut the
stream anywhere.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from hypothesis import strategies as st

from tdsrows.layout import TICKS_PER_DAY, TIME_BYTES, Column, Framing, Kind, Layout

ROW, NBCROW = 0xD1, 0xD2
DONE = b"\xfd" + bytes(12)  # MS-TDS 2.2.7.6
RETURN_STATUS = b"\x79" + bytes(4)  # MS-TDS 2.2.7.18
_FIXED, _BYTE, _USHORT = Framing.FIXED, Framing.BYTE_LEN, Framing.USHORT_LEN
MAX_DAY = 3_652_058  # 9999-12-31 in days since 0001-01-01
# Decimal magnitude bytes + 1 -> the largest scale of that precision class (MS-TDS 2.2.5.5.1.6).
_MOST_SCALE = {5: 9, 9: 19, 13: 28, 17: 38}
CODECS = ("cp1252", "cp1251", "cp932", "utf-8")


@dataclass(frozen=True)
class Prefix:
    """A value's length prefix in a stream: where it is, its width (1 or 2) and its column."""

    at: int
    width: int
    column: Column


@dataclass(frozen=True)
class Stream:
    layout: Layout
    data: bytes
    tokens: tuple[int, ...]  # where each row token starts
    prefixes: tuple[Prefix, ...]


# Every kind the compiled scanner reads (the common ones twice).
SCANNED: tuple[Kind, ...] = (
    Kind.INT,
    Kind.INT,
    Kind.BIT,
    Kind.FLOAT,
    Kind.MONEY,
    Kind.DECIMAL,
    Kind.DATE,
    Kind.DATETIME2,
    Kind.DATETIME,
    Kind.SMALLDATETIME,
    Kind.TEXT,
    Kind.NTEXT,
    Kind.NTEXT,
)
# The kinds the tuple builder makes objects of (it leaves datetime and smalldatetime rows to
# the generated decoder).
TUPLED: tuple[Kind, ...] = tuple(k for k in SCANNED if k not in (Kind.DATETIME, Kind.SMALLDATETIME))


@st.composite
def columns(draw: st.DrawFn, i: int, kinds: tuple[Kind, ...] = SCANNED) -> Column:
    """A column the compiled scanner reads (every kind, framing, size and scale it has)."""
    name = f"c{i}"
    kind = draw(st.sampled_from(kinds))
    framing = draw(st.sampled_from([_FIXED, _BYTE]))
    if kind is Kind.INT:
        return Column(name, kind, framing, draw(st.sampled_from([1, 2, 4, 8])))
    if kind is Kind.BIT:
        return Column(name, kind, framing, 1)
    if kind in (Kind.FLOAT, Kind.MONEY):
        return Column(name, kind, framing, draw(st.sampled_from([4, 8])))
    if kind is Kind.DECIMAL:
        size = draw(st.sampled_from(list(_MOST_SCALE)))
        scale = draw(st.integers(0, _MOST_SCALE[size]))
        return Column(name, kind, _BYTE, size, scale=scale)
    if kind is Kind.DATE:
        return Column(name, kind, _BYTE, 3)
    if kind is Kind.DATETIME2:
        scale = draw(st.integers(0, 7))
        return Column(name, kind, _BYTE, TIME_BYTES[scale] + 3, scale=scale)
    if kind is Kind.DATETIME:
        return Column(name, kind, framing, 8)
    if kind is Kind.SMALLDATETIME:
        return Column(name, kind, framing, 4)
    size = draw(st.sampled_from([1, 2, 5, 10, 40, 300, 8000]))
    if kind is Kind.TEXT:
        return Column(name, kind, _USHORT, size, codec=draw(st.sampled_from(CODECS)))
    return Column(name, kind, _USHORT, 2 * size)


@st.composite
def layouts(draw: st.DrawFn, most: int = 12, kinds: tuple[Kind, ...] = SCANNED) -> Layout:
    width = draw(st.integers(1, most) | st.sampled_from([1, 8, 9, 17]))
    return Layout.of([draw(columns(i, kinds)) for i in range(width)])


def _le(value: int, size: int) -> bytes:
    return (value % (1 << 8 * size)).to_bytes(size, "little")


@st.composite
def payloads(draw: st.DrawFn, column: Column) -> bytes:
    """The bytes of a present value of ``column`` (without its length prefix): mostly a value
    SQL Server sends, at every edge of it, sometimes what only a broken server would."""
    kind, size = column.kind, column.size
    if column.narrower_sizes and draw(st.integers(0, 5)) == 0:
        size = draw(st.sampled_from(column.narrower_sizes))
    if kind is Kind.DECIMAL:
        magnitude = draw(
            st.integers(0, 2**64 + 5)
            | st.integers(0, 2 ** (8 * size - 8) - 1)
            | st.sampled_from([0, 2**63 - 1, 2**63, 10**18])
        )
        sign = draw(st.sampled_from([0, 1, 1, 2]))
        return bytes((sign,)) + _le(magnitude, size - 1)
    if kind is Kind.DATE:
        return _le(draw(st.integers(0, MAX_DAY) | st.integers(0, 2**24 - 1)), 3)
    if kind is Kind.DATETIME2:
        tick_bytes = size - 3
        per_day = TICKS_PER_DAY[column.scale]
        ticks = draw(
            st.integers(0, per_day - 1)
            | st.sampled_from([0, per_day - 1])
            | st.integers(0, 2 ** (8 * tick_bytes) - 1)
        )
        days = draw(st.integers(0, MAX_DAY) | st.sampled_from([0, MAX_DAY, 2**24 - 1]))
        return _le(ticks, tick_bytes) + _le(days, 3)
    if kind is Kind.DATETIME and size == 8:
        days = draw(st.integers(-53_690, 2_958_463) | st.integers(-(2**31), 2**31 - 1))
        t = draw(st.integers(0, 25_919_999) | st.integers(-(2**31), 2**31 - 1))
        return struct.pack("<ii", days, t)
    if kind is Kind.TEXT:
        most = min(column.size, 60)
        text = draw(
            st.binary(max_size=most)
            | st.text(alphabet="abcXYZ 019_x<>&é€ü東", max_size=most).map(
                lambda t: t.encode(column.codec or "ascii", "replace")[:most]
            )
        )
        return text
    if kind is Kind.NTEXT:
        units = min(column.size, 80) // 2
        raw = draw(
            st.binary(max_size=2 * units)
            | st.text(max_size=units).map(
                lambda t: t.encode("utf-16-le", "surrogatepass")[: 2 * units]
            )
        )
        return raw[: len(raw) & ~1]
    return draw(st.binary(min_size=size, max_size=size))


@st.composite
def streams(draw: st.DrawFn, layout_strategy: st.SearchStrategy[Layout] | None = None) -> Stream:
    """A layout and 1 to 8 rows of it, each a ROW or NBCROW token, then what follows rows."""
    layout = draw(layouts() if layout_strategy is None else layout_strategy)
    out = bytearray()
    tokens: list[int] = []
    prefixes: list[Prefix] = []
    null_rate = draw(st.sampled_from([0, 1, 3, 9]))  # of 10
    for _ in range(draw(st.integers(1, 8))):
        nulls = [draw(st.integers(0, 9)) < null_rate for _ in layout.columns]
        fixed_null = any(
            n and c.framing is _FIXED for n, c in zip(nulls, layout.columns, strict=True)
        )
        nbcrow = fixed_null or draw(st.booleans())
        tokens.append(len(out))
        if nbcrow:
            out.append(NBCROW)
            bitmap = sum(1 << i for i, n in enumerate(nulls) if n)
            out += bitmap.to_bytes(layout.bitmap_bytes, "little")
        else:
            out.append(ROW)
        for column, null in zip(layout.columns, nulls, strict=True):
            if null and nbcrow:
                continue
            width = column.framing.value  # the prefix's bytes: 0, 1 or 2
            if width:
                prefixes.append(Prefix(len(out), width, column))
            if null:
                out += b"\x00" if width == 1 else b"\xff\xff"
                continue
            body = draw(payloads(column))
            if width == 1:
                out.append(len(body))
            elif width == 2:
                out += struct.pack("<H", len(body))
            out += body
    out += draw(st.sampled_from([DONE, RETURN_STATUS + DONE, b""]))
    return Stream(layout, bytes(out), tuple(tokens), tuple(prefixes))


# (what, where, value): where picks a position, prefix or token by modulo.
Mutation = tuple[str, int, int]
_WHAT = ["flip", "length", "length", "token", "insert", "delete", "cut"]


def mutations(most: int = 4) -> st.SearchStrategy[list[Mutation]]:
    return st.lists(
        st.tuples(st.sampled_from(_WHAT), st.integers(0, 2**16), st.integers(0, 2**16)),
        max_size=most,
    )


def _length_value(prefix: Prefix, value: int) -> int:
    """A length for a prefix: one its column's type may not have, or any."""
    size = prefix.column.size
    choices = [0, size - 1, size + 1, size + 2, 1, 2, 3, 4, 5, 8, 9, 13, 17, 0xFF]
    if prefix.width == 2:
        choices += [size | 1, 0xFFFE, 0xFFFF, 0x8000, value]
    chosen = choices[value % len(choices)] if value < 2**15 else value
    return chosen % (1 << 8 * prefix.width)


def mutate(stream: Stream, changes: list[Mutation]) -> bytes:
    """The stream's bytes with ``changes`` made: first those at known places (length prefixes,
    token bytes, bit flips), then those that move bytes (insertions, deletions, a cut)."""
    data = bytearray(stream.data)
    order = {"flip": 0, "length": 0, "token": 0, "insert": 1, "delete": 1, "cut": 2}
    for what, where, value in sorted(changes, key=lambda c: order[c[0]]):
        if what == "flip" and data:
            data[where % len(data)] ^= value % 255 + 1
        elif what == "length" and stream.prefixes:
            prefix = stream.prefixes[where % len(stream.prefixes)]
            length = _length_value(prefix, value)
            data[prefix.at : prefix.at + prefix.width] = length.to_bytes(prefix.width, "little")
        elif what == "token" and stream.tokens:
            data[stream.tokens[where % len(stream.tokens)]] = value % 256
        elif what == "insert":
            data.insert(where % (len(data) + 1), value % 256)
        elif what == "delete" and data:
            del data[where % len(data)]
        elif what == "cut":
            del data[where % (len(data) + 1) :]
    return bytes(data)
