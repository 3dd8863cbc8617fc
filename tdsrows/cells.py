"""The reference decoder: one value at a time, every framing and NULL the wire allows.

The generated code (codegen.py, genfill.py) sends a row here when it meets something its fast
path did not expect: a NULL inside a ROW token, a value length other than the column's usual
one, a row cut off by the end of the bytes. It is also the definition the generated code is tested
against. Slow (a call per value) and simple, and explicit, in two passes over a row, as the
compiled scanner reads it:

1. the walk, column by column: every length is checked against the bytes there are (a row cut
   off is reported as such) and against what the column's type allows
   (:meth:`~tdsrows.layout.Column.length_problem`: a value that does not fit raises
   :class:`~tdsrows.errors.StreamError` naming the column and the problem, even when the rest
   of the row is cut off), and so is a time of a day or more once its bytes are there;
2. only then, the row known whole, its values are made (an error making one, such as a day
   past 9999-12-31 that has no ``date``, is raised for a whole row only).

No exception stands for "cut off".
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Any, Final

from tdsrows import values
from tdsrows.errors import StreamError
from tdsrows.layout import TICKS_PER_DAY, TIME_BYTES, Column, Framing, Kind, Layout
from tdsrows.tokens import NBCROW_TOKEN, ROW_TOKEN

# (data, position of the payload, payload length) -> value; the payload's bytes are there and
# its length is one the column has.
Payload = Callable[[bytes, int, int], object]
# (data, position, end of data) -> (where its payload starts (-1: NULL), its length, where the
# value ends (CUT when the bytes end inside it)); StreamError for a value the column's type
# does not have.
Locate = Callable[[bytes, int, int], tuple[int, int, int]]
CUT: Final = -1

_I8 = struct.Struct("<q").unpack_from
_I4 = struct.Struct("<i").unpack_from
_I2 = struct.Struct("<h").unpack_from
_U2 = struct.Struct("<H").unpack_from
_F4 = struct.Struct("<f").unpack_from
_F8 = struct.Struct("<d").unpack_from
_MONEY8 = struct.Struct("<iI").unpack_from
_DATETIME = struct.Struct("<ii").unpack_from
_SMALLDATETIME = struct.Struct("<HH").unpack_from


def _le(data: bytes, p: int, size: int) -> int:
    return int.from_bytes(data[p : p + size], "little")


def _payload(column: Column, raw: bool) -> Payload:
    kind, scale = column.kind, column.scale

    def bad(data: bytes, p: int, size: int) -> object:  # pragma: no cover - lengths are checked
        raise StreamError(column.problem(f"a value of {size} bytes"))

    if kind is Kind.INT:

        def int_value(data: bytes, p: int, size: int) -> object:
            if size == 4:
                return _I4(data, p)[0]
            if size == 8:
                return _I8(data, p)[0]
            if size == 2:
                return _I2(data, p)[0]
            if size == 1:
                return data[p]
            return bad(data, p, size)

        return int_value
    if kind is Kind.BIT:
        return lambda data, p, size: data[p] != 0 if size == 1 else bad(data, p, size)
    if kind is Kind.FLOAT:

        def float_value(data: bytes, p: int, size: int) -> object:
            if size == 8:
                return _F8(data, p)[0]
            if size == 4:
                return _F4(data, p)[0]
            return bad(data, p, size)

        return float_value
    if kind is Kind.MONEY:

        def money(data: bytes, p: int, size: int) -> object:
            if size == 8:
                hi, lo = _MONEY8(data, p)
                amount = hi * 4294967296 + lo
            elif size == 4:
                amount = _I4(data, p)[0]
            else:
                return bad(data, p, size)
            return amount if raw else values.money_value(amount)

        return money
    if kind is Kind.DECIMAL:
        convert = values.decimal_raw if raw else values.decimal_value
        return lambda data, p, size: convert(data[p], _le(data, p + 1, size - 1), scale)
    if kind is Kind.DATE:
        if raw:
            return lambda data, p, size: _le(data, p, 3)
        return lambda data, p, size: values.date_value(_le(data, p, 3))
    if kind is Kind.TIME:
        return lambda data, p, size: values.time_value(_le(data, p, size), scale)
    if kind is Kind.DATETIME2:
        two = values.datetime2_raw if raw else values.datetime2_value
        return lambda data, p, size: two(_le(data, p + size - 3, 3), _le(data, p, size - 3), scale)
    if kind in (Kind.DATETIME, Kind.SMALLDATETIME):
        long = values.datetime_raw if raw else values.datetime_value
        short = values.smalldatetime_raw if raw else values.smalldatetime_value

        def datetime_value(data: bytes, p: int, size: int) -> object:
            if size == 8:
                return long(*_DATETIME(data, p))
            if size == 4:
                return short(*_SMALLDATETIME(data, p))
            return bad(data, p, size)

        return datetime_value
    if kind is Kind.GUID:
        return lambda data, p, size: values.guid_value(data[p : p + 16])
    if kind is Kind.TEXT:
        assert column.codec is not None
        text = values.text_decoder(column.codec)
        return lambda data, p, size: text(data[p : p + size])
    if kind is Kind.NTEXT:
        return lambda data, p, size: values.ntext_value(data[p : p + size])
    if kind is Kind.BINARY:
        return lambda data, p, size: data[p : p + size]
    raise AssertionError(kind)  # pragma: no cover - every kind is handled above


def locator(column: Column) -> Locate:
    """Walks one value of ``column`` (its length prefix included) at a position, checking it
    (see the module docstring), without decoding it."""
    size = column.size
    if column.kind in (Kind.TIME, Kind.DATETIME2):
        tick_bytes = TIME_BYTES[column.scale]
        per_day = TICKS_PER_DAY[column.scale]
    else:
        tick_bytes = per_day = 0

    def check_time(data: bytes, start: int) -> None:
        ticks = _le(data, start, tick_bytes)
        if ticks >= per_day:
            where = f"a time of a day or more ({ticks} ticks of 10**-{column.scale} s)"
            raise StreamError(column.problem(where))

    if column.framing is Framing.FIXED:

        def fixed(data: bytes, p: int, n: int) -> tuple[int, int, int]:
            end = p + size
            return (p, size, end) if end <= n else (p, size, CUT)

        return fixed
    prefix = 1 if column.framing is Framing.BYTE_LEN else 2
    null = 0 if column.framing is Framing.BYTE_LEN else 0xFFFF

    def framed(data: bytes, p: int, n: int) -> tuple[int, int, int]:
        start = p + prefix
        if start > n:
            return -1, 0, CUT
        length = data[p] if prefix == 1 else data[p] | data[p + 1] << 8
        if length == null:
            return -1, 0, start
        if length != size or prefix == 2:
            problem = column.length_problem(length)
            if problem is not None:
                raise StreamError(column.problem(problem))
        end = start + length
        if end > n:
            return start, length, CUT
        if per_day:
            check_time(data, start)
        return start, length, end

    return framed


class ReferenceDecoder:
    """Decodes row bodies cell by cell."""

    def __init__(self, layout: Layout, *, raw_kinds: frozenset[Kind] = frozenset()) -> None:
        self._locators = [locator(c) for c in layout.columns]
        self._payloads = [_payload(c, c.kind in raw_kinds) for c in layout.columns]
        self._bitmap_bytes = layout.bitmap_bytes

    def token(
        self, data: bytes, pos: int, append: Callable[[tuple[Any, ...]], object], n: int
    ) -> int:
        """Decode the ROW or NBCROW token at ``pos``: its end, or -1 if cut off (or if the
        bytes end at ``pos``); :class:`StreamError` for a value its column cannot hold."""
        if pos >= n:
            return CUT
        if data[pos] == ROW_TOKEN:
            return self.row(data, pos + 1, append, n, 0)
        if data[pos] == NBCROW_TOKEN:
            start = pos + 1 + self._bitmap_bytes
            if start > n:
                return CUT
            nulls = int.from_bytes(data[pos + 1 : start], "little")
            return self.row(data, start, append, n, nulls)
        raise AssertionError(f"not a row token: {data[pos]:#x}")  # pragma: no cover

    def row(
        self, data: bytes, p: int, append: Callable[[tuple[Any, ...]], object], n: int, nulls: int
    ) -> int:
        """Decode the row body at ``p`` (``nulls``: its NBCROW bitmap): its end, -1 if cut off.
        The whole row is walked first: no value of a row cut off is made."""
        spans: list[tuple[int, int]] = []
        for i, locate in enumerate(self._locators):
            if nulls >> i & 1:
                spans.append((-1, 0))
                continue
            start, length, p = locate(data, p, n)
            if p < 0:
                return CUT
            spans.append((start, length))
        append(
            tuple(
                None if start < 0 else payload(data, start, length)
                for payload, (start, length) in zip(self._payloads, spans, strict=True)
            )
        )
        return p
