"""Parsers for the client messages the dev server understands (pure functions of whole payloads).

PRELOGIN (MS-TDS 2.2.6.5), LOGIN7 (2.2.6.4), SQL batch (2.2.6.7), RPC (2.2.6.6) and
transaction-manager requests (2.2.6.9).  Each raises :class:`RequestError` on a payload it cannot
read; the protocol core turns that into a TDS error reply rather than a dropped connection.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from sql.devserver import collations, sqltypes
from sql.devserver.errors import DevServerError, SpecError


class RequestError(DevServerError, ValueError):
    """A well-framed message whose content the dev server cannot read or does not support."""


# PRELOGIN option tokens.
PL_VERSION = 0x00
PL_ENCRYPTION = 0x01
PL_INSTOPT = 0x02
PL_THREADID = 0x03
PL_MARS = 0x04
PL_TERMINATOR = 0xFF
# PRELOGIN ENCRYPTION values (MS-TDS 2.2.6.5).
ENCRYPT_OFF = 0x00  # encryption available but off: only LOGIN7 is encrypted
ENCRYPT_ON = 0x01  # encryption available and on
ENCRYPT_NOT_SUP = 0x02  # encryption not available
ENCRYPT_REQ = 0x03  # encryption required
ENCRYPT_CLIENT_CERT = 0x80  # a bit over the others: certificate-based authentication


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


# RPC parameter status flags (MS-TDS 2.2.6.6, ParameterData's StatusFlags).
BY_REF_VALUE = 0x01  # fByRefValue: an OUTPUT parameter, whose value comes back in RETURNVALUE
DEFAULT_VALUE = 0x02  # fDefaultValue: use the procedure's default, not the value sent


@dataclass(frozen=True, slots=True)
class RpcParam:
    """One argument of a call: an RPC parameter, or (built by :mod:`sql.devserver.tsql`) a
    literal of ``EXEC`` in a batch."""

    name: str  # "" for positional parameters
    type_name: str  # SQL Server's name of the sent type, for conversion error messages
    # None for NULL; else what pytds would read for it (sqltypes.SqlType.value): int, bool,
    # float, Decimal, date, time, datetime, UUID, str or bytes.
    value: object
    status: int = 0  # BY_REF_VALUE | DEFAULT_VALUE
    # The type as the client declared it (precision, scale, length, collation); None: the plain
    # type of type_name.
    sql_type: sqltypes.SqlType | None = None
    # The value's bytes exactly as they came (no length prefix, PLP chunks joined); None for
    # NULL or for an argument that was not read off the wire.
    data: bytes | None = None

    @property
    def by_ref(self) -> bool:
        """Passed as OUTPUT."""
        return bool(self.status & BY_REF_VALUE)

    @property
    def wants_default(self) -> bool:
        """Passed as DEFAULT: the parameter takes the procedure's default."""
        return bool(self.status & DEFAULT_VALUE)


@dataclass(frozen=True, slots=True)
class Rpc:
    proc_name: str | None  # None when called by well-known id
    proc_id: int | None
    params: tuple[RpcParam, ...]


NULLTYPE = 0x1F  # a parameter of no type: NULL (SQL Server types it INT)
PLP_NULL = 0xFFFFFFFFFFFFFFFF
_USHORT_NULL = 0xFFFF
_MAX_LENGTH = 0xFFFF  # a USHORTLEN type's max length meaning MAX (the value is PLP)
# Nullable ids whose TYPE_INFO is one length byte, which says the type (INTN of 4: int).
_SIZED_IDS = frozenset(type_id for type_id, _size in sqltypes.SIZED_KINDS)


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

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "little")

    def u32(self) -> int:
        return int.from_bytes(self.take(4), "little")

    def u64(self) -> int:
        return int.from_bytes(self.take(8), "little")

    def ucs2(self, chars: int) -> str:
        return self.take(2 * chars).decode("utf-16-le", errors="surrogatepass")


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


def _unsupported(type_id: int) -> RequestError:
    return RequestError(
        f"RPC parameter of TDS type {type_id:#04x} is not supported by the dev server"
    )


def _param_type(r: _Reader, type_id: int) -> sqltypes.SqlType:
    """An RPC parameter's TYPE_INFO (MS-TDS 2.2.5.6) as the type T-SQL would declare."""
    collation = None
    if type_id == NULLTYPE:
        declaration = "int"
    elif type_id in sqltypes.FIXED_KINDS:
        declaration = sqltypes.FIXED_KINDS[type_id]
    elif type_id in _SIZED_IDS:
        size = r.u8()
        if (type_id, size) not in sqltypes.SIZED_KINDS:
            raise RequestError(f"RPC parameter of TDS type {type_id:#04x} has length {size}")
        declaration = sqltypes.SIZED_KINDS[type_id, size]
    elif (kind := sqltypes.DECLARED_KINDS.get(type_id)) is None:
        raise _unsupported(type_id)
    elif kind in ("decimal", "numeric"):
        _size, precision, scale = r.take(3)
        declaration = f"{kind}({precision},{scale})"
    elif kind == "date":
        declaration = kind
    elif kind in ("time", "datetime2", "datetimeoffset"):
        declaration = f"{kind}({r.u8()})"
    else:  # char, varchar, nchar, nvarchar, binary, varbinary
        max_len = r.u16()
        if kind in ("char", "varchar", "nchar", "nvarchar"):
            known = collations.by_wire(r.take(5))
            collation = known.name if known is not None else None
        units = max_len // 2 if kind.startswith("n") else max_len
        declaration = f"{kind}({'max' if max_len == _MAX_LENGTH else units})"
    try:
        return sqltypes.parse_type(declaration, collation)
    except SpecError as exc:
        raise RequestError(f"RPC parameter type {declaration}: {exc}") from None


def _param_data(r: _Reader, typ: sqltypes.SqlType, fixed: bool) -> bytes | None:
    """The bytes of one parameter's value, framed as its type is on the wire (None: NULL)."""
    if fixed:
        return r.take(sqltypes.FIXED_SIZES[typ.kind])
    framing = typ.framing(nullable=True)
    if framing is sqltypes.Framing.PLP:
        return _plp(r)
    if framing is sqltypes.Framing.USHORTLEN:
        size = r.u16()
        return None if size == _USHORT_NULL else r.take(size)
    size = r.u8()  # BYTELEN
    return None if size == 0 else r.take(size)


def _param(r: _Reader) -> RpcParam:
    """ParameterData (MS-TDS 2.2.6.6): name, status flags, TYPE_INFO, value."""
    name = r.ucs2(r.u8())
    status = r.u8()
    type_id = r.u8()
    typ = _param_type(r, type_id)
    data = None if type_id == NULLTYPE else _param_data(r, typ, type_id in sqltypes.FIXED_KINDS)
    try:
        value = None if data is None else typ.value(data)
    except (SpecError, ValueError, OverflowError) as exc:
        raise RequestError(f"RPC parameter {name or '(positional)'} is not a {typ.declaration}: "
                           f"{exc}") from None  # fmt: skip
    return RpcParam(name, typ.kind, value, status, typ, data)


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
        params.append(_param(r))
    return Rpc(proc_name=proc_name, proc_id=proc_id, params=tuple(params))
