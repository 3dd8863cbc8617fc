"""Parsers for the client messages the dev server understands (pure functions of whole payloads).

PRELOGIN (MS-TDS 2.2.6.5), LOGIN7 (2.2.6.4), SQL batch (2.2.6.7), RPC (2.2.6.6) and
transaction-manager requests (2.2.6.9).  Each raises :class:`RequestError` on a payload it cannot
read; the protocol core turns that into a TDS error reply rather than a dropped connection.
"""

from __future__ import annotations

import decimal
import struct
from dataclasses import dataclass

from sql.devserver.errors import DevServerError


class RequestError(DevServerError, ValueError):
    """A well-framed message whose content the dev server cannot read or does not support."""


# PRELOGIN option tokens.
PL_VERSION = 0x00
PL_ENCRYPTION = 0x01
PL_INSTOPT = 0x02
PL_THREADID = 0x03
PL_MARS = 0x04
PL_TERMINATOR = 0xFF
ENCRYPT_NOT_SUP = 0x02


def parse_prelogin(payload: bytes) -> dict[int, bytes]:
    """PRELOGIN options by token: (token, u16 BE offset, u16 BE length) entries, then 0xFF."""
    options: dict[int, bytes] = {}
    i = 0
    while True:
        if i >= len(payload):
            raise RequestError("PRELOGIN option list has no terminator")
        token = payload[i]
        if token == PL_TERMINATOR:
            return options
        if i + 5 > len(payload):
            raise RequestError("PRELOGIN option entry is truncated")
        offset, length = struct.unpack_from(">HH", payload, i + 1)
        if offset + length > len(payload):
            raise RequestError("PRELOGIN option points past the end of the message")
        options[token] = payload[offset : offset + length]
        i += 5


def build_prelogin(options: dict[int, bytes]) -> bytes:
    """The PRELOGIN layout: option table first, then the option data in the same order."""
    table_size = 5 * len(options) + 1
    table = bytearray()
    data = bytearray()
    for token, value in options.items():
        table += struct.pack(">BHH", token, table_size + len(data), len(value))
        data += value
    return bytes(table) + b"\xff" + bytes(data)


@dataclass(frozen=True, slots=True)
class Login:
    tds_version: int
    packet_size: int
    user: str
    password: str
    database: str
    app_name: str
    host_name: str
    language: str


_LOGIN_FIXED = struct.Struct("<IIIIII BBBB iI")  # through ClientLCID: 36 bytes


def _unobfuscate(data: bytes) -> str:
    # LOGIN7 passwords: the client swapped each byte's nibbles then XORed 0xA5 (MS-TDS 2.2.6.4).
    plain = bytes((((b ^ 0xA5) << 4) & 0xF0) | ((b ^ 0xA5) >> 4) for b in data)
    return plain.decode("utf-16-le", errors="replace")


def parse_login7(payload: bytes) -> Login:
    if len(payload) < 94:
        raise RequestError("LOGIN7 message is shorter than its fixed part")
    (_length, version, packet_size, *_rest) = _LOGIN_FIXED.unpack_from(payload, 0)

    def text(at: int, obfuscated: bool = False) -> str:
        offset, chars = struct.unpack_from("<HH", payload, at)
        raw = payload[offset : offset + 2 * chars]
        if len(raw) != 2 * chars:
            raise RequestError("LOGIN7 field points past the end of the message")
        return _unobfuscate(raw) if obfuscated else raw.decode("utf-16-le", errors="replace")

    return Login(
        tds_version=version,
        packet_size=packet_size,
        host_name=text(36),
        user=text(40),
        password=text(44, obfuscated=True),
        app_name=text(48),
        language=text(64),
        database=text(68),
    )


def skip_all_headers(payload: bytes) -> tuple[int, int]:
    """ALL_HEADERS (TDS 7.2+): returns (offset after it, transaction descriptor or 0)."""
    if len(payload) < 4:
        raise RequestError("request is too short for ALL_HEADERS")
    (total,) = struct.unpack_from("<I", payload, 0)
    if total < 4 or total > len(payload):
        raise RequestError("ALL_HEADERS length is out of range")
    descriptor = 0
    i = 4
    while i + 6 <= total:
        length, kind = struct.unpack_from("<IH", payload, i)
        if length < 6 or i + length > total:
            raise RequestError("ALL_HEADERS entry length is out of range")
        if kind == 2 and length >= 18:  # transaction descriptor header
            (descriptor,) = struct.unpack_from("<Q", payload, i + 6)
        i += length
    return total, descriptor


def parse_sql_batch(payload: bytes) -> str:
    start, _ = skip_all_headers(payload)
    if (len(payload) - start) % 2:
        raise RequestError("SQL batch text is not whole UTF-16 code units")
    return payload[start:].decode("utf-16-le", errors="replace")


# Transaction-manager request types (MS-TDS 2.2.6.9).
TM_BEGIN_XACT = 5
TM_COMMIT_XACT = 7
TM_ROLLBACK_XACT = 8
TM_SAVE_XACT = 9


@dataclass(frozen=True, slots=True)
class Transaction:
    request: int  # one of the TM_* numbers
    begin_new: bool  # commit/rollback with fBeginXact: start a new transaction straight away
    descriptor: int  # the transaction the client believes is current


def parse_transaction(payload: bytes) -> Transaction:
    start, descriptor = skip_all_headers(payload)
    if len(payload) < start + 2:
        raise RequestError("transaction-manager request has no request type")
    (request,) = struct.unpack_from("<H", payload, start)
    begin_new = False
    if request in (TM_COMMIT_XACT, TM_ROLLBACK_XACT) and len(payload) >= start + 3:
        name_len = payload[start + 2]
        flag_at = start + 3 + name_len
        if flag_at < len(payload):
            begin_new = bool(payload[flag_at] & 0x01)
    return Transaction(request=request, begin_new=begin_new, descriptor=descriptor)


@dataclass(frozen=True, slots=True)
class RpcParam:
    name: str  # "" for positional parameters
    type_name: str  # SQL Server's name of the sent type, for conversion error messages
    value: object  # None for NULL; int, float, bool, str, Decimal or bytes


@dataclass(frozen=True, slots=True)
class Rpc:
    proc_name: str | None  # None when called by well-known id
    proc_id: int | None
    params: tuple[RpcParam, ...]


_FIXED_TYPES: dict[int, tuple[str, str]] = {
    # type id: (name, struct format of the value)
    0x30: ("tinyint", "<B"),
    0x32: ("bit", "<B"),
    0x34: ("smallint", "<h"),
    0x38: ("int", "<i"),
    0x7F: ("bigint", "<q"),
    0x3B: ("real", "<f"),
    0x3E: ("float", "<d"),
}
_INTN_NAMES = {1: "tinyint", 2: "smallint", 4: "int", 8: "bigint"}
_INTN_FORMATS = {1: "<B", 2: "<h", 4: "<i", 8: "<q"}
_BYTELEN_TYPES = {0x24: "uniqueidentifier", 0x6E: "money", 0x6F: "datetime"}
_SCALED_TYPES = {0x29: "time", 0x2A: "datetime2", 0x2B: "datetimeoffset"}
_USHORT_TEXT = {
    0xA7: ("varchar", "cp1252"),
    0xAF: ("char", "cp1252"),
    0xE7: ("nvarchar", "utf-16-le"),
    0xEF: ("nchar", "utf-16-le"),
}
_USHORT_BINARY = {0xA5: "varbinary", 0xAD: "binary"}
PLP_NULL = 0xFFFFFFFFFFFFFFFF


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes, pos: int) -> None:
        self.data = data
        self.pos = pos

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise RequestError("RPC request is truncated")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def unpack(self, fmt: str) -> tuple[object, ...]:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "little")

    def u32(self) -> int:
        return int.from_bytes(self.take(4), "little")

    def u64(self) -> int:
        return int.from_bytes(self.take(8), "little")

    def ucs2(self, chars: int) -> str:
        return self.take(2 * chars).decode("utf-16-le", errors="replace")


def _plp(r: _Reader) -> bytes | None:
    total = r.u64()
    if total == PLP_NULL:
        return None
    parts: list[bytes] = []
    while True:
        size = r.u32()
        if size == 0:
            return b"".join(parts)
        parts.append(r.take(size))


def _param_value(r: _Reader, type_id: int) -> tuple[str, object]:
    """Reads TYPE_INFO and the value of one RPC parameter: (SQL type name, Python value)."""
    if type_id in _FIXED_TYPES:
        name, fmt = _FIXED_TYPES[type_id]
        return name, r.unpack(fmt)[0]
    if type_id == 0x1F:
        return "null", None
    if type_id in (0x26, 0x68, 0x6D):  # INTN, BITN, FLTN
        r.u8()  # max length
        size = r.u8()
        if type_id == 0x26:
            name = _INTN_NAMES.get(size, "int")
            return name, None if size == 0 else r.unpack(_INTN_FORMATS[size])[0]
        if type_id == 0x68:
            return "bit", None if size == 0 else bool(r.u8())
        return "float", None if size == 0 else r.unpack("<f" if size == 4 else "<d")[0]
    if type_id in (0x6A, 0x6C):  # DECIMALN, NUMERICN
        r.u8()
        r.u8()  # precision
        scale = r.u8()
        size = r.u8()
        if size == 0:
            return "decimal", None
        sign = r.u8()
        magnitude = int.from_bytes(r.take(size - 1), "little")
        value = decimal.Decimal(magnitude if sign else -magnitude).scaleb(-scale)
        return "decimal", value
    if type_id in _BYTELEN_TYPES:
        r.u8()
        size = r.u8()
        return _BYTELEN_TYPES[type_id], None if size == 0 else r.take(size)
    if type_id == 0x28:  # DATEN
        size = r.u8()
        return "date", None if size == 0 else r.take(size)
    if type_id in _SCALED_TYPES:
        r.u8()  # scale
        size = r.u8()
        return _SCALED_TYPES[type_id], None if size == 0 else r.take(size)
    if type_id in _USHORT_TEXT or type_id in _USHORT_BINARY:
        max_len = r.u16()
        if type_id in _USHORT_TEXT:
            r.take(5)  # collation
            name, codec = _USHORT_TEXT[type_id]
        else:
            name, codec = _USHORT_BINARY[type_id], ""
        if max_len == 0xFFFF:
            raw = _plp(r)
        else:
            size = r.u16()
            raw = None if size == 0xFFFF else r.take(size)
        if raw is None:
            return name, None
        return name, raw.decode(codec, errors="replace") if codec else raw
    raise RequestError(
        f"RPC parameter of TDS type {type_id:#04x} is not supported by the dev server"
    )


def parse_rpc(payload: bytes) -> Rpc:
    start, _ = skip_all_headers(payload)
    r = _Reader(payload, start)
    name_len = r.u16()
    if name_len == 0xFFFF:
        proc_name, proc_id = None, r.u16()
    else:
        proc_name, proc_id = r.ucs2(name_len), None
    r.u16()  # option flags (WITH RECOMPILE, no metadata): nothing to change here
    params = []
    while r.pos < len(payload):
        if payload[r.pos] in (0x80, 0xFF, 0xFE):
            raise RequestError("batched RPC requests are not supported by the dev server")
        name = r.ucs2(r.u8())
        r.u8()  # status flags (by-ref, default value)
        type_name, value = _param_value(r, r.u8())
        params.append(RpcParam(name=name, type_name=type_name, value=value))
    return Rpc(proc_name=proc_name, proc_id=proc_id, params=tuple(params))
