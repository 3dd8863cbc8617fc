"""SQL Server data types on the wire: declarations parsed, TYPE_INFO built, values encoded.

:func:`parse_type` reads a declaration (``"decimal(38,10)"``, ``"varchar(max)"``, ...) into a
:class:`SqlType`.  A type gives its TYPE_INFO for COLMETADATA (MS-TDS 2.2.5.6; type ids from
2.2.5.4), turns a JSON value into the value's bytes (:meth:`SqlType.data`) and frames them in a
ROW (:func:`cell`), the way SQL Server sends them:

* nullable columns use the nullable types SQL Server uses (INTN, BITN, FLTN, MONEYN, DATETIMN);
  NOT NULL columns of the fixed-length types use INT1/2/4/8, BIT, FLT4/8, MONEY/MONEY4 and
  DATETIME/DATETIM4 (2.2.5.4.1); every other type is variable-length either way;
* CHAR/BINARY values are padded to their declared length as SQL Server stores them;
* MAX types and XML are PLP (2.2.5.2.3): a 64-bit total length, chunks of at most ``plp_chunk``
  bytes with a 32-bit length each, a zero-length terminator; NULL is PLP_NULL;
* TEXT/NTEXT/IMAGE values carry a text pointer and timestamp (2.2.7.19 ROW: TextPointer,
  Timestamp), NULL is a zero-length text pointer;
* SQL_VARIANT values are SSVARIANT_INSTANCEs (2.2.5.5.4) of a base type named in the value.

The other way round, :meth:`SqlType.value` reads a value's bytes into the Python value pytds
would return (the dev server decodes RPC parameters with it), and :data:`FIXED_KINDS`,
:data:`SIZED_KINDS` and :data:`DECLARED_KINDS` name the type a client's TYPE_INFO declares.
:func:`frame` frames value bytes for a ROW or a RETURNVALUE (spEcho sends its arguments' bytes
through it unchanged).

Every error is a :class:`~sql.devserver.errors.SpecError` saying why, without a location: the
caller (:mod:`sql.devserver.columns`) adds the row and column.
"""

from __future__ import annotations

import datetime
import decimal
import math
import re
import struct
import uuid
from dataclasses import dataclass
from enum import Enum

from sql.devserver import collations
from sql.devserver.errors import SpecError

# Fixed-length type ids (MS-TDS 2.2.5.4.1).
INT1, BIT, INT2, INT4, INT8 = 0x30, 0x32, 0x34, 0x38, 0x7F
FLT4, FLT8 = 0x3B, 0x3E
MONEY4, MONEY = 0x7A, 0x3C
DATETIM4, DATETIME = 0x3A, 0x3D
# Variable-length type ids (2.2.5.4.2).
GUID = 0x24
INTN, BITN, FLTN, MONEYN, DATETIMN = 0x26, 0x68, 0x6D, 0x6E, 0x6F
DECIMALN, NUMERICN = 0x6A, 0x6C
DATEN, TIMEN, DATETIME2N, DATETIMEOFFSETN = 0x28, 0x29, 0x2A, 0x2B
BIGVARBIN, BIGVARCHR, BIGBINARY, BIGCHAR = 0xA5, 0xA7, 0xAD, 0xAF
NVARCHAR, NCHAR = 0xE7, 0xEF
IMAGE, TEXT, NTEXT = 0x22, 0x23, 0x63
SSVARIANT = 0x62
XML = 0xF1

# Bounds from SQL Server's data type documentation.
MAX_CHAR_LENGTH = 8000  # char/varchar/binary/varbinary(n): n <= 8000 bytes
MAX_NCHAR_LENGTH = 4000  # nchar/nvarchar(n): n <= 4000 UTF-16 code units
MAX_DECIMAL_PRECISION = 38
MAX_TIME_SCALE = 7  # time/datetime2/datetimeoffset: 100 ns
MAX_LOB_BYTES = 2**31 - 1  # varchar(max), text, image ...: 2 GB - 1
MAX_VARIANT_LENGTH = 8016  # sql_variant: base type information and value
MAX_VARIANT_VALUE = 8000  # ... of which the value itself
MAX_OFFSET_MINUTES = 14 * 60  # datetimeoffset: -14:00 .. +14:00
# PLP chunk size SQL Server's own chunks do not exceed; specs can ask for smaller ones.
DEFAULT_PLP_CHUNK = 8000
PLP_NULL = 0xFFFFFFFFFFFFFFFF
PLP_UNKNOWN_LENGTH = 0xFFFFFFFFFFFFFFFE
# TEXT/NTEXT/IMAGE: a 16-byte text pointer (clients skip it; pytds insists on 16 bytes) and an
# 8-byte timestamp, then the value.  A result of a procedure has no base table; the table name
# parts in COLMETADATA name the procedure instead.
TEXT_POINTER = bytes(range(16))
TEXT_TIMESTAMP = bytes(8)
LOB_TABLE_PARTS = ("dbo", "spColumns")

_DAYS_TO_1900 = datetime.date(1900, 1, 1).toordinal() - 1  # DATETIME's day 0, from 0001-01-01
_MAX_DAYS = datetime.date(9999, 12, 31).toordinal() - 1
TICKS_PER_SECOND = 10**7  # 100 ns
_TICKS_PER_DAY = 86_400 * TICKS_PER_SECOND
# 100 ns ticks per unit of a time(scale) value, by scale.
_TICKS_PER_UNIT = (10_000_000, 1_000_000, 100_000, 10_000, 1_000, 100, 10, 1)
_DATETIME_TICKS_PER_SECOND = 300  # DATETIME counts 1/300 s


class Framing(Enum):
    """How a value is framed in a ROW (and what its NULL looks like)."""

    FIXED = "fixed"  # the bytes alone; no NULL
    BYTELEN = "bytelen"  # 1-byte length; NULL = length 0
    USHORTLEN = "ushortlen"  # 2-byte length; NULL = 0xFFFF
    PLP = "plp"  # partially length-prefixed; NULL = PLP_NULL
    TEXTPTR = "textptr"  # text pointer, timestamp, 4-byte length; NULL = empty text pointer
    VARIANT = "variant"  # 4-byte length; NULL = length 0


@dataclass(frozen=True, slots=True)
class PlpOptions:
    """How PLP values are chunked: at most ``chunk`` bytes each; total length known or not."""

    chunk: int = DEFAULT_PLP_CHUNK
    unknown_length: bool = False


DEFAULT_PLP = PlpOptions()  # SQL Server's own chunks, the length announced


@dataclass(frozen=True, slots=True)
class SqlType:
    """One declared type.  ``kind`` is the base name (``"decimal"``); ``declaration`` the
    canonical text (``"decimal(38,10)"``); ``length`` is n of char/binary types (None: MAX)."""

    kind: str
    declaration: str
    length: int | None = None
    precision: int = 0
    scale: int = 0
    collation: collations.Collation | None = None

    # -- metadata -----------------------------------------------------------------------------

    def type_info(self, nullable: bool) -> bytes:
        """TYPE_INFO of a column of this type (MS-TDS 2.2.5.6)."""
        kind = self.kind
        if kind in _FIXED:
            fixed_id, n_id, size = _FIXED[kind]
            return bytes((n_id, size)) if nullable else bytes((fixed_id,))
        if kind in ("decimal", "numeric"):
            type_id = DECIMALN if kind == "decimal" else NUMERICN
            return bytes((type_id, _decimal_size(self.precision), self.precision, self.scale))
        if kind == "date":
            return bytes((DATEN,))
        if kind in _SCALED:
            return bytes((_SCALED[kind], self.scale))
        if kind == "uniqueidentifier":
            return bytes((GUID, 16))
        if kind in _SHORT:
            type_id = _SHORT[kind][0]
            size = 0xFFFF if self.length is None else self._byte_limit()  # 0xFFFF: MAX (PLP)
            info = bytes((type_id,)) + size.to_bytes(2, "little")
            return info + self._collation_bytes() if kind in _CHARACTER else info
        if kind in _LOB:
            type_id, max_len = _LOB[kind]
            info = bytes((type_id,)) + max_len.to_bytes(4, "little")
            if kind != "image":
                info += self._collation_bytes()
            info += bytes((len(LOB_TABLE_PARTS),))
            for part in LOB_TABLE_PARTS:
                encoded = part.encode("utf-16-le")
                info += (len(encoded) // 2).to_bytes(2, "little") + encoded
            return info
        if kind == "xml":
            return bytes((XML, 0))  # no schema collection
        if kind == "sql_variant":
            return bytes((SSVARIANT,)) + MAX_VARIANT_LENGTH.to_bytes(4, "little")
        raise AssertionError(kind)  # pragma: no cover - parse_type admits no other kind

    def _collation_bytes(self) -> bytes:
        return (self.collation or collations.DEFAULT).wire

    def framing(self, nullable: bool) -> Framing:
        kind = self.kind
        if kind in _FIXED:
            return Framing.BYTELEN if nullable else Framing.FIXED
        if kind in _SHORT:
            return Framing.PLP if self.length is None else Framing.USHORTLEN
        if kind in _LOB:
            return Framing.TEXTPTR
        if kind == "xml":
            return Framing.PLP
        if kind == "sql_variant":
            return Framing.VARIANT
        return Framing.BYTELEN

    def variant_header(self) -> bytes:
        """VARIANT_BASETYPE, VARIANT_PROPBYTES and VARIANT_PROPERTIES of a value of this type
        inside a sql_variant (MS-TDS 2.2.5.5.4)."""
        kind = self.kind
        if kind in _FIXED:
            return bytes((_FIXED[kind][0], 0))
        if kind == "uniqueidentifier":
            return bytes((GUID, 0))
        if kind == "date":
            return bytes((DATEN, 0))
        if kind in _SCALED:
            return bytes((_SCALED[kind], 1, self.scale))
        if kind in ("decimal", "numeric"):
            type_id = DECIMALN if kind == "decimal" else NUMERICN
            return bytes((type_id, 2, self.precision, self.scale))
        if kind in _SHORT and self.length is not None:
            type_id = _SHORT[kind][0]
            size = self._byte_limit().to_bytes(2, "little")
            if kind in _CHARACTER:
                return bytes((type_id, 7)) + self._collation_bytes() + size
            return bytes((type_id, 2)) + size
        raise SpecError(f"a sql_variant cannot hold {self.declaration}")

    # -- values -------------------------------------------------------------------------------

    def data(self, value: object) -> bytes:
        """The bytes of a non-NULL value, without framing."""
        kind = self.kind
        if kind in _INT_RANGES:
            low, high, fmt = _INT_RANGES[kind]
            return struct.pack(fmt, _integer(value, low, high, kind))
        if kind == "bit":
            if value is True or value is False or value in (0, 1):
                return b"\x01" if value else b"\x00"
            raise SpecError(f"a bit is true or false, not {_shown(value)}")
        if kind in ("real", "float"):
            return _float(value, "<f" if kind == "real" else "<d", kind)
        if kind in ("money", "smallmoney"):
            units = _scaled_decimal(value, 4, kind, _MONEY_LIMITS[kind])
            if kind == "smallmoney":
                return struct.pack("<i", units)
            return struct.pack("<iI", units >> 32, units & 0xFFFFFFFF)
        if kind in ("decimal", "numeric"):
            units = _scaled_decimal(
                value, self.scale, self.declaration, 10**self.precision - 1, self.precision
            )
            size = _decimal_size(self.precision)
            return bytes((0 if units < 0 else 1,)) + abs(units).to_bytes(size - 1, "little")
        if kind == "date":
            return _date_days(_text(value, kind, "YYYY-MM-DD"), kind).to_bytes(3, "little")
        if kind in _SCALED:
            return self._scaled_data(_text(value, kind, _SCALED_FORMATS[kind]))
        if kind == "datetime":
            return _datetime(_text(value, kind, "YYYY-MM-DD HH:MM:SS[.fff]"))
        if kind == "smalldatetime":
            return _smalldatetime(_text(value, kind, "YYYY-MM-DD HH:MM[:SS[.fff]]"))
        if kind == "uniqueidentifier":
            text = _text(value, kind, "a UUID")
            try:
                return uuid.UUID(text).bytes_le
            except ValueError:
                raise SpecError(f"{text!r} is not a UUID") from None
        if kind in _SHORT or kind in _LOB or kind == "xml":
            return self._string_data(value)
        if kind == "sql_variant":
            return _variant_data(value)
        raise AssertionError(kind)  # pragma: no cover

    def _scaled_data(self, text: str) -> bytes:
        kind, scale = self.kind, self.scale
        pattern = {"time": _TIME_ONLY, "datetime2": _DATETIME2, "datetimeoffset": _DTO}[kind]
        m = pattern.fullmatch(text)
        if m is None:
            raise SpecError(f"{text!r} is not {_SCALED_FORMATS[kind]}")
        ticks = _time_ticks(m, scale, self.declaration)
        time_bytes = _time_size(scale)
        if kind == "time":
            return (ticks // _TICKS_PER_UNIT[scale]).to_bytes(time_bytes, "little")
        days = _date_days(m["date"], kind)
        offset = 0
        if kind == "datetimeoffset":
            offset = _offset_minutes(m)
            # On the wire: the UTC date and time, then the offset (MS-TDS 2.2.5.5.1.8).
            total = days * _TICKS_PER_DAY + ticks - offset * 60 * TICKS_PER_SECOND
            days, ticks = divmod(total, _TICKS_PER_DAY)
            if not 0 <= days <= _MAX_DAYS:
                raise SpecError(f"{text!r} is out of range in UTC")
        out = (ticks // _TICKS_PER_UNIT[scale]).to_bytes(time_bytes, "little")
        out += days.to_bytes(3, "little")
        if kind == "datetimeoffset":
            out += offset.to_bytes(2, "little", signed=True)
        return out

    def _string_data(self, value: object) -> bytes:
        kind = self.kind
        if kind in _BINARY:
            text = _text(value, kind, "a hex string")
            try:
                data = bytes.fromhex(text.removeprefix("0x").removeprefix("0X"))
            except ValueError:
                raise SpecError(f"{_shown(text)} is not a hex string") from None
            pad = b"\x00"
        elif kind in _UNICODE:
            data = _text(value, kind, "a string").encode("utf-16-le", "surrogatepass")
            pad = " ".encode("utf-16-le")
        else:
            text = _text(value, kind, "a string")
            collation = self.collation or collations.DEFAULT
            try:
                data = collation.encode(text)
            except UnicodeEncodeError as exc:
                bad = text[exc.start : exc.end]
                raise SpecError(
                    f"{bad!r} has no encoding in {collation.name} ({collation.codec})"
                ) from None
            pad = b" "
        limit = self._byte_limit()
        if len(data) > limit:
            raise SpecError(f"{len(data)} bytes do not fit {self.declaration}")
        if kind in ("char", "nchar", "binary"):
            data += pad * ((limit - len(data)) // len(pad))
        return data

    def _byte_limit(self) -> int:
        if self.length is None:
            return MAX_LOB_BYTES - 1 if self.kind == "ntext" else MAX_LOB_BYTES
        return self.length * 2 if self.kind in _UNICODE else self.length

    def value(self, data: bytes) -> object:
        """The Python value of a non-NULL value's bytes (as :meth:`data` writes them and as
        clients send them in RPC parameters), as pytds returns it: int, bool, float, Decimal,
        date, time, datetime (aware for datetimeoffset), UUID, str or bytes.  Temporal types
        keep microseconds (Python's precision): a 100 ns tick is cut off; DATETIME's 1/300 s
        rounds to the nearest microsecond.  Character data decodes with the collation's code
        page (undecodable bytes become U+FFFD); UTF-16 keeps lone surrogates."""
        kind = self.kind
        if kind in _INT_RANGES:
            return int.from_bytes(data, "little", signed=kind != "tinyint")
        if kind == "bit":
            return data != b"\x00"
        if kind in ("real", "float"):
            return float(struct.unpack("<f" if len(data) == 4 else "<d", data)[0])
        if kind in ("money", "smallmoney"):
            if len(data) == 8:  # the high 32 bits first (MS-TDS 2.2.5.5.1.4)
                high, low = struct.unpack("<iI", data)
                units = (high << 32) | low
            else:
                units = int.from_bytes(data, "little", signed=True)
            return decimal.Decimal(units).scaleb(-4)
        if kind in ("decimal", "numeric"):
            magnitude = int.from_bytes(data[1:], "little")
            return decimal.Decimal(magnitude if data[0] else -magnitude).scaleb(-self.scale)
        if kind == "date":
            return _day(int.from_bytes(data, "little"))
        if kind in _SCALED:
            return self._scaled_value(data)
        if kind == "datetime":
            days, ticks = struct.unpack("<iI", data)
            micros, rest = divmod(ticks * 1_000_000, _DATETIME_TICKS_PER_SECOND)
            micros += rest * 2 >= _DATETIME_TICKS_PER_SECOND  # to the nearest microsecond
            return datetime.datetime.combine(_day(days + _DAYS_TO_1900), datetime.time()) + (
                datetime.timedelta(microseconds=micros)
            )
        if kind == "smalldatetime":
            days, minutes = struct.unpack("<HH", data)
            return datetime.datetime.combine(
                _day(days + _DAYS_TO_1900), datetime.time()
            ) + datetime.timedelta(minutes=minutes)
        if kind == "uniqueidentifier":
            return uuid.UUID(bytes_le=data)
        if kind in _UNICODE:
            return data.decode("utf-16-le", "surrogatepass")
        if kind in _CHARACTER:
            return data.decode((self.collation or collations.DEFAULT).codec, "replace")
        if kind in _BINARY:
            return data
        raise SpecError(f"the dev server does not read values of {self.declaration}")

    def _scaled_value(self, data: bytes) -> object:
        """TIME, DATETIME2, DATETIMEOFFSET (MS-TDS 2.2.5.5.1.8): the time in 10**-scale s
        units, then (but TIME) days since 0001-01-01, then (DATETIMEOFFSET) the offset in
        minutes; DATETIMEOFFSET's date and time are UTC."""
        size = _time_size(self.scale)
        ticks = int.from_bytes(data[:size], "little") * _TICKS_PER_UNIT[self.scale]
        moment = datetime.timedelta(microseconds=ticks // 10)
        if self.kind == "time":
            return (datetime.datetime.min + moment).time()
        stamp = datetime.datetime.combine(
            _day(int.from_bytes(data[size : size + 3], "little")), datetime.time()
        )
        if self.kind == "datetime2":
            return stamp + moment
        offset = datetime.timedelta(minutes=int.from_bytes(data[size + 3 :], "little", signed=True))
        utc = (stamp + moment).replace(tzinfo=datetime.UTC)
        return utc.astimezone(datetime.timezone(offset))


def cell(typ: SqlType, nullable: bool, value: object, plp: PlpOptions) -> bytes:
    """A column's bytes in a ROW: the value framed as its type asks (None: the NULL)."""
    return frame(typ.framing(nullable), None if value is None else typ.data(value), plp)


def frame(framing: Framing, data: bytes | None, plp: PlpOptions) -> bytes:
    """A value's bytes (:meth:`SqlType.data`; None: NULL) framed for a ROW or RETURNVALUE."""
    if data is None:
        null = null_cell(framing)
        if null is None:
            raise SpecError("NULL in a NOT NULL column")
        return null
    if framing is Framing.FIXED:
        return data
    if framing is Framing.BYTELEN:
        return bytes((len(data),)) + data
    if framing is Framing.USHORTLEN:
        return len(data).to_bytes(2, "little") + data
    if framing is Framing.PLP:
        return plp_value(data, plp)
    if framing is Framing.TEXTPTR:
        return (
            bytes((len(TEXT_POINTER),)) + TEXT_POINTER + TEXT_TIMESTAMP
            + len(data).to_bytes(4, "little") + data
        )  # fmt: skip
    return len(data).to_bytes(4, "little") + data  # VARIANT


def null_cell(framing: Framing) -> bytes | None:
    """The inline NULL of a framing in a ROW; None where the type has none (NOT NULL fixed)."""
    return _NULLS[framing]


_NULLS: dict[Framing, bytes | None] = {
    Framing.FIXED: None,
    Framing.BYTELEN: b"\x00",
    Framing.USHORTLEN: b"\xff\xff",
    Framing.PLP: PLP_NULL.to_bytes(8, "little"),
    Framing.TEXTPTR: b"\x00",
    Framing.VARIANT: bytes(4),
}


def plp_value(data: bytes, plp: PlpOptions) -> bytes:
    """PLP_BODY (MS-TDS 2.2.5.2.3): total length, chunks, terminator."""
    total = PLP_UNKNOWN_LENGTH if plp.unknown_length else len(data)
    parts = [total.to_bytes(8, "little")]
    step = plp.chunk
    for i in range(0, len(data), step):
        piece = data[i : i + step]
        parts.append(len(piece).to_bytes(4, "little"))
        parts.append(piece)
    parts.append(bytes(4))
    return b"".join(parts)


# -- declarations ---------------------------------------------------------------------------

# kind: (NOT NULL type id, nullable type id, size)
_FIXED: dict[str, tuple[int, int, int]] = {
    "tinyint": (INT1, INTN, 1),
    "smallint": (INT2, INTN, 2),
    "int": (INT4, INTN, 4),
    "bigint": (INT8, INTN, 8),
    "bit": (BIT, BITN, 1),
    "real": (FLT4, FLTN, 4),
    "float": (FLT8, FLTN, 8),
    "smallmoney": (MONEY4, MONEYN, 4),
    "money": (MONEY, MONEYN, 8),
    "smalldatetime": (DATETIM4, DATETIMN, 4),
    "datetime": (DATETIME, DATETIMN, 8),
}
_INT_RANGES: dict[str, tuple[int, int, str]] = {
    "tinyint": (0, 255, "<B"),
    "smallint": (-(2**15), 2**15 - 1, "<h"),
    "int": (-(2**31), 2**31 - 1, "<i"),
    "bigint": (-(2**63), 2**63 - 1, "<q"),
}
_MONEY_LIMITS = {"smallmoney": 2**31 - 1, "money": 2**63 - 1}  # in units of 1/10000
_SCALED = {"time": TIMEN, "datetime2": DATETIME2N, "datetimeoffset": DATETIMEOFFSETN}
_SCALED_FORMATS = {
    "time": "HH:MM:SS[.fffffff]",
    "datetime2": "YYYY-MM-DD HH:MM:SS[.fffffff]",
    "datetimeoffset": "YYYY-MM-DD HH:MM:SS[.fffffff]+HH:MM",
}
# kind: (type id, whether n counts UTF-16 code units)
_SHORT: dict[str, tuple[int, bool]] = {
    "char": (BIGCHAR, False),
    "varchar": (BIGVARCHR, False),
    "nchar": (NCHAR, True),
    "nvarchar": (NVARCHAR, True),
    "binary": (BIGBINARY, False),
    "varbinary": (BIGVARBIN, False),
}
# kind: (type id, the maximum length TYPE_INFO announces)
_LOB: dict[str, tuple[int, int]] = {
    "text": (TEXT, MAX_LOB_BYTES),
    "ntext": (NTEXT, MAX_LOB_BYTES - 1),
    "image": (IMAGE, MAX_LOB_BYTES),
}
_CHARACTER = frozenset({"char", "varchar", "nchar", "nvarchar", "text", "ntext"})
_UNICODE = frozenset({"nchar", "nvarchar", "ntext", "xml"})
_BINARY = frozenset({"binary", "varbinary", "image"})
_LENGTH_DEFAULT = 1  # char, varchar, binary ... without (n) mean (1), as in a T-SQL declaration
_PLAIN = frozenset({*_FIXED, "date", "uniqueidentifier", "text", "ntext", "image", "xml"}) | {
    "sql_variant"
}

_DECLARATION = re.compile(r"\s*(?P<kind>[A-Za-z_][A-Za-z_0-9]*)\s*(?:\((?P<args>[^)]*)\))?\s*")
KINDS = tuple(sorted({*_PLAIN, *_SCALED, *_SHORT, "decimal", "numeric"}))

# The other way round, for the TYPE_INFO of a client's RPC parameter: the type a fixed-length id
# means, the type a nullable id of a given size means (INTN of 4 bytes: int), and the type of the
# ids whose TYPE_INFO carries a precision, scale or length.
FIXED_KINDS: dict[int, str] = {fixed: kind for kind, (fixed, _n, _size) in _FIXED.items()}
FIXED_SIZES: dict[str, int] = {kind: size for kind, (_fixed, _n, size) in _FIXED.items()}
SIZED_KINDS: dict[tuple[int, int], str] = {
    **{(n_id, size): kind for kind, (_fixed, n_id, size) in _FIXED.items()},
    (GUID, 16): "uniqueidentifier",
}
DECLARED_KINDS: dict[int, str] = {
    DECIMALN: "decimal",
    NUMERICN: "numeric",
    DATEN: "date",
    **{type_id: kind for kind, type_id in _SCALED.items()},
    **{type_id: kind for kind, (type_id, _units) in _SHORT.items()},
}


def parse_type(declaration: str, collation: str | None = None) -> SqlType:
    """A type declaration as T-SQL writes it; ``collation`` names a character type's collation."""
    m = _DECLARATION.fullmatch(declaration)
    if m is None:
        raise SpecError(f"{declaration!r} is not a type declaration")
    kind = m["kind"].lower()
    args = [a.strip().lower() for a in m["args"].split(",")] if m["args"] is not None else []
    if kind == "float" and len(args) == 1 and args[0].isdigit() and 1 <= int(args[0]) <= 53:
        kind, args = ("real" if int(args[0]) <= 24 else "float"), []  # float(n), as T-SQL
    if kind not in KINDS:
        raise SpecError(f"unknown type {m['kind']!r} (the dev server knows {', '.join(KINDS)})")
    coll = None
    if collation is not None:
        if kind not in _CHARACTER:
            raise SpecError(f"{kind} has no collation")
        coll = collations.by_name(collation)
    if kind in _PLAIN:
        _no_args(kind, args)
        return SqlType(kind, kind, collation=coll)
    if kind in _SCALED:
        scale = _int_arg(declaration, "the scale", args, 0, MAX_TIME_SCALE, MAX_TIME_SCALE)
        return SqlType(kind, f"{kind}({scale})", scale=scale)
    if kind in ("decimal", "numeric"):
        if len(args) > 2:
            raise SpecError(f"{kind} takes (precision) or (precision, scale)")
        precision = _int_arg(declaration, "the precision", args[:1], 1, MAX_DECIMAL_PRECISION, 18)
        scale = _int_arg(declaration, "the scale", args[1:], 0, precision, 0)
        return SqlType(kind, f"{kind}({precision},{scale})", precision=precision, scale=scale)
    # char, varchar, nchar, nvarchar, binary, varbinary
    limit = MAX_NCHAR_LENGTH if _SHORT[kind][1] else MAX_CHAR_LENGTH
    if args == ["max"] and kind.startswith(("var", "nvar")):
        return SqlType(kind, f"{kind}(max)", length=None, collation=coll)
    length = _int_arg(declaration, "the length", args, 1, limit, _LENGTH_DEFAULT)
    return SqlType(kind, f"{kind}({length})", length=length, collation=coll)


def _no_args(kind: str, args: list[str]) -> None:
    if args:
        raise SpecError(f"{kind} takes no arguments")


def _int_arg(
    declaration: str, what: str, args: list[str], low: int, high: int, default: int
) -> int:
    if not args:
        return default
    if len(args) != 1 or not args[0].isdigit() or not low <= int(args[0]) <= high:
        raise SpecError(f"{declaration.strip()}: {what} must be {low} to {high}")
    return int(args[0])


def _decimal_size(precision: int) -> int:
    """Bytes of a DECIMAL value, sign byte included (MS-TDS 2.2.5.5.1.3)."""
    return 5 if precision <= 9 else 9 if precision <= 19 else 13 if precision <= 28 else 17


def _time_size(scale: int) -> int:
    """Bytes of the time part of TIME/DATETIME2/DATETIMEOFFSET (MS-TDS 2.2.5.5.1.8)."""
    return 3 if scale <= 2 else 4 if scale <= 4 else 5


# -- values ---------------------------------------------------------------------------------

_MAX_SHOWN = 40  # characters of an offending value quoted in an error


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def _text(value: object, kind: str, form: str) -> str:
    if not isinstance(value, str):
        raise SpecError(f"a {kind} value is written as {form}, not {_shown(value)}")
    return value


def _integer(value: object, low: int, high: int, kind: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SpecError(f"a {kind} value is a JSON integer, not {_shown(value)}")
    if not low <= value <= high:
        raise SpecError(f"{value} is out of range for {kind} ({low} to {high})")
    return value


_FLOAT_WORDS = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


def _float(value: object, fmt: str, kind: str) -> bytes:
    if isinstance(value, str) and value.lower() in _FLOAT_WORDS:
        number = _FLOAT_WORDS[value.lower()]
    elif isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            raise SpecError(f"{_shown(value)} is out of range for {kind}") from None
    else:
        raise SpecError(f'a {kind} value is a JSON number or "nan", "inf", "-inf"')
    try:
        return struct.pack(fmt, number)
    except OverflowError:
        raise SpecError(f"{_shown(value)} is out of range for {kind}") from None


# Far more digits than any value a spec can fit in DECIMAL(38,38) has, and every condition that
# would round or saturate trapped: a number is taken exactly or not at all.
_EXACT = decimal.Context(
    prec=200,
    Emax=10**6,
    Emin=-(10**6),
    traps=[decimal.InvalidOperation, decimal.Inexact, decimal.Overflow, decimal.Underflow],
)
_MAX_NUMBER_TEXT = 100  # characters: far above 38 digits, sign, point and an exponent


def _scaled_decimal(
    value: object, scale: int, declaration: str, limit: int, precision: int | None = None
) -> int:
    """An exact number as an integer count of 10**-scale units; SpecError when it needs more
    digits after the point than ``scale`` or does not fit ``limit``."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = decimal.Decimal(value)
    elif isinstance(value, str) and len(value) <= _MAX_NUMBER_TEXT:
        try:
            number = _EXACT.create_decimal(value.strip())
        except decimal.DecimalException:
            raise SpecError(f"{_shown(value)} is not a number") from None
    else:
        raise SpecError(f'a {declaration} value is a string such as "-123.45", not {_shown(value)}')
    if not number.is_finite():
        raise SpecError(f"{declaration} holds no {value}")
    try:
        units = _EXACT.scaleb(number, scale)
    except decimal.DecimalException:
        raise SpecError(f"{value} is out of range for {declaration}") from None
    if units != units.to_integral_value():
        raise SpecError(f"{value} has more than {scale} digits after the point ({declaration})")
    result = int(units)
    if abs(result) > limit and not (declaration.endswith("money") and result == -limit - 1):
        digits = f" (more than {precision} digits)" if precision is not None else ""
        raise SpecError(f"{value} is out of range for {declaration}{digits}")
    return result


_DATE_PART = r"(?P<date>\d{4}-\d{2}-\d{2})"
_TIME_PART = r"(?P<h>\d{2}):(?P<mi>\d{2}):(?P<s>\d{2})(?:\.(?P<frac>\d{1,7}))?"
_TIME_ONLY = re.compile(_TIME_PART)
_DATETIME2 = re.compile(rf"{_DATE_PART}[ T]{_TIME_PART}")
_DTO = re.compile(rf"{_DATE_PART}[ T]{_TIME_PART} ?(?P<sign>[+-])(?P<oh>\d{{2}}):(?P<om>\d{{2}})")
_DATETIME = re.compile(rf"{_DATE_PART}[ T](?P<h>\d{{2}}):(?P<mi>\d{{2}}):(?P<s>\d{{2}})"
                       r"(?:\.(?P<ms>\d{1,3}))?")  # fmt: skip
_SMALLDATETIME = re.compile(rf"{_DATE_PART}[ T](?P<h>\d{{2}}):(?P<mi>\d{{2}})"
                            r"(?::(?P<s>\d{2})(?:\.(?P<ms>\d{1,3}))?)?")  # fmt: skip


def _day(days: int) -> datetime.date:
    """The date ``days`` after 0001-01-01."""
    return datetime.date.fromordinal(days + 1)


def _date_days(text: str, kind: str) -> int:
    """Days since 0001-01-01."""
    try:
        if len(text) != 10:
            raise ValueError(text)
        return datetime.date.fromisoformat(text).toordinal() - 1
    except ValueError:
        raise SpecError(f"{text!r} is not a {kind} date (YYYY-MM-DD)") from None


def _time_ticks(m: re.Match[str], scale: int, declaration: str) -> int:
    """100 ns ticks since midnight of a matched HH:MM:SS[.fffffff] that fits ``scale``."""
    hours, minutes, seconds = int(m["h"]), int(m["mi"]), int(m["s"])
    if hours > 23 or minutes > 59 or seconds > 59:
        raise SpecError(f"{m[0]!r} is not a time of day")
    frac = m["frac"] or ""
    if frac[scale:].strip("0"):
        raise SpecError(f"{m[0]!r} has more fractional digits than {declaration} holds")
    ticks = int(frac.ljust(MAX_TIME_SCALE, "0"))
    return ((hours * 60 + minutes) * 60 + seconds) * TICKS_PER_SECOND + ticks


def _offset_minutes(m: re.Match[str]) -> int:
    hours, minutes = int(m["oh"]), int(m["om"])
    offset = hours * 60 + minutes
    if minutes > 59 or offset > MAX_OFFSET_MINUTES:
        raise SpecError(f"{m[0]!r}: the offset must be -14:00 to +14:00")
    return -offset if m["sign"] == "-" else offset


_DATETIME_FIRST_DAY = datetime.date(1753, 1, 1).toordinal() - 1
_SMALLDATETIME_LAST = (datetime.date(2079, 6, 6).toordinal() - 1, 23 * 60 + 59)


def _datetime(text: str) -> bytes:
    """DATETIME: days since 1900-01-01 and 1/300 s since midnight, milliseconds rounded to the
    1/300 s grid as SQL Server rounds them (.xx0, .xx3, .xx7; .999 is the next second)."""
    m = _DATETIME.fullmatch(text)
    if m is None:
        raise SpecError(f"{text!r} is not YYYY-MM-DD HH:MM:SS[.fff]")
    days = _date_days(m["date"], "datetime")
    hours, minutes, seconds = int(m["h"]), int(m["mi"]), int(m["s"])
    if hours > 23 or minutes > 59 or seconds > 59:
        raise SpecError(f"{text!r} is not a time of day")
    ms = int((m["ms"] or "").ljust(3, "0"))
    ticks = ((hours * 60 + minutes) * 60 + seconds) * _DATETIME_TICKS_PER_SECOND
    ticks += (ms * 3 + 5) // 10  # ms x 0.3, half up
    carry, ticks = divmod(ticks, 86_400 * _DATETIME_TICKS_PER_SECOND)
    days += carry
    if not _DATETIME_FIRST_DAY <= days <= _MAX_DAYS:
        raise SpecError(f"{text!r} is out of range for datetime (1753-01-01 to 9999-12-31)")
    return struct.pack("<iI", days - _DAYS_TO_1900, ticks)


def _smalldatetime(text: str) -> bytes:
    """SMALLDATETIME: days since 1900-01-01 and minutes; 29.999 s and more round up."""
    m = _SMALLDATETIME.fullmatch(text)
    if m is None:
        raise SpecError(f"{text!r} is not YYYY-MM-DD HH:MM[:SS[.fff]]")
    days = _date_days(m["date"], "smalldatetime") - _DAYS_TO_1900
    hours, minutes, seconds = int(m["h"]), int(m["mi"]), int(m["s"] or 0)
    if hours > 23 or minutes > 59 or seconds > 59:
        raise SpecError(f"{text!r} is not a time of day")
    minutes += hours * 60
    if seconds * 1000 + int((m["ms"] or "").ljust(3, "0")) >= 29_999:
        minutes += 1
    carry, minutes = divmod(minutes, 24 * 60)
    days += carry
    last_day, last_minute = _SMALLDATETIME_LAST
    if days < 0 or (days + _DAYS_TO_1900, minutes) > (last_day, last_minute):
        raise SpecError(f"{text!r} is out of range for smalldatetime (1900-01-01 to 2079-06-06)")
    return struct.pack("<HH", days, minutes)


def _variant_data(value: object) -> bytes:
    """SSVARIANT_INSTANCE of ``{"type": "<declaration>", "value": ..., "collation"?: ...}``."""
    if not isinstance(value, dict) or set(value) - {"type", "value", "collation"}:
        raise SpecError(
            'a sql_variant value is {"type": "<type>", "value": <value>} '
            '(and "collation" for character types)'
        )
    declaration = value.get("type")
    if not isinstance(declaration, str):
        raise SpecError('a sql_variant value names its base type in "type"')
    collation = value.get("collation")
    if collation is not None and not isinstance(collation, str):
        raise SpecError('a sql_variant\'s "collation" is a collation name')
    base = parse_type(declaration, collation)
    if value.get("value") is None:
        raise SpecError("a sql_variant holding NULL is written as null, not as an object")
    header = base.variant_header()
    data = base.data(value["value"])
    if len(data) > MAX_VARIANT_VALUE:
        raise SpecError(f"{len(data)} bytes do not fit a sql_variant ({MAX_VARIANT_VALUE})")
    return header + data
