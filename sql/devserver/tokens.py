"""Token stream builders (MS-TDS 2.2.7): what the server writes inside REPLY messages."""

from __future__ import annotations

import struct

from sql.devserver import collations

# Token types.
COLMETADATA = 0x81
ROW = 0xD1
NBCROW = 0xD2
RETURNSTATUS = 0x79
RETURNVALUE = 0xAC
ERROR = 0xAA
INFO = 0xAB
LOGINACK = 0xAD
ENVCHANGE = 0xE3
DONE = 0xFD
DONEPROC = 0xFE
DONEINPROC = 0xFF

# Fixed-length data types (MS-TDS 2.2.5.4.1) used in result sets.
INT8 = 0x7F  # BIGINT NOT NULL

# DONE status bits (MS-TDS 2.2.7.6).
DONE_FINAL = 0x00
DONE_MORE = 0x01
DONE_ERROR = 0x02
DONE_INXACT = 0x04
DONE_COUNT = 0x10
DONE_ATTN = 0x20
DONE_SRVERROR = 0x100

# ENVCHANGE types (MS-TDS 2.2.7.9).
ENV_DATABASE = 1
ENV_LANGUAGE = 2
ENV_PACKET_SIZE = 4
ENV_COLLATION = 7
ENV_BEGIN_TRAN = 8
ENV_COMMIT_TRAN = 9
ENV_ROLLBACK_TRAN = 10

# Current-command codes SQL Server puts in DONE tokens (the statement kind).
CMD_SELECT = 0xC1
CMD_INSERT = 0xC3  # also what a count of affected rows (SET NOCOUNT OFF) is reported under here
CMD_EXECUTE = 0xE0
CMD_SET = 0xB9  # seen for SET statements; clients ignore curcmd
CMD_NONE = 0x00

# The server's collation, SQL_Latin1_General_CP1_CI_AS (MS-TDS 2.2.5.1.2).
COLLATION = collations.DEFAULT.wire

# TDS 7.4 as the server reports it in LOGINACK (big-endian on the wire).
TDS74 = 0x74000004
SERVER_NAME = "devserver"
PROGRAM_NAME = "Microsoft SQL Server"  # what SQL Server names itself; some clients look for it
PROGRAM_VERSION = bytes((16, 0, 0x10, 0x00))  # 16.0.4096 ("SQL Server 2022"-like)

_DONE = struct.Struct("<BHHQ")
_U16 = struct.Struct("<H")


def ucs2(text: str) -> bytes:
    """UTF-16LE as TDS carries it: UCS-2 code units, so a lone surrogate (which a client may
    send in a name or value) passes through rather than failing the reply."""
    return text.encode("utf-16-le", "surrogatepass")


def b_varchar(text: str) -> bytes:
    """B_VARCHAR: a one-byte count of UTF-16 code units (a character outside the BMP is two),
    then UTF-16LE."""
    encoded = ucs2(text)
    return bytes((len(encoded) // 2,)) + encoded


def us_varchar(text: str) -> bytes:
    """US_VARCHAR: a two-byte count of UTF-16 code units, then UTF-16LE."""
    encoded = ucs2(text)
    return _U16.pack(len(encoded) // 2) + encoded


def done(token: int, status: int, curcmd: int = CMD_NONE, rows: int = 0) -> bytes:
    return _DONE.pack(token, status, curcmd, rows)


def envchange(kind: int, new: bytes, old: bytes) -> bytes:
    body = bytes((kind,)) + new + old
    return bytes((ENVCHANGE,)) + _U16.pack(len(body)) + body


def env_text(kind: int, new: str, old: str) -> bytes:
    return envchange(kind, b_varchar(new), b_varchar(old))


def env_collation() -> bytes:
    return envchange(ENV_COLLATION, bytes((len(COLLATION),)) + COLLATION, b"\x00")


def env_begin_tran(descriptor: int) -> bytes:
    return envchange(ENV_BEGIN_TRAN, b"\x08" + struct.pack("<Q", descriptor), b"\x00")


def env_end_tran(kind: int, descriptor: int) -> bytes:
    return envchange(kind, b"\x00", b"\x08" + struct.pack("<Q", descriptor))


def message(
    token: int,
    number: int,
    text: str,
    *,
    state: int = 1,
    severity: int = 16,
    proc: str = "",
    line: int = 1,
) -> bytes:
    """ERROR or INFO token (same layout, MS-TDS 2.2.7.10 / 2.2.7.13)."""
    body = (
        struct.pack("<iBB", number, state, severity)
        + us_varchar(text)
        + b_varchar(SERVER_NAME)
        + b_varchar(proc)
        + struct.pack("<i", line)
    )
    return bytes((token,)) + _U16.pack(len(body)) + body


def error(number: int, text: str, *, state: int = 1, proc: str = "", line: int = 1) -> bytes:
    """ERROR token of severity 16: a statement error the user can fix (like SQL Server's)."""
    return message(ERROR, number, text, state=state, severity=16, proc=proc, line=line)


def info(number: int, text: str, *, severity: int = 0, proc: str = "", line: int = 1) -> bytes:
    """INFO token (e.g. 5701 "Changed database context ...", or number 0 for a PRINT): severity
    0 to 10, a message rather than an error."""
    return message(INFO, number, text, severity=severity, proc=proc, line=line)


def loginack(version: int = TDS74) -> bytes:
    body = (
        b"\x01"  # interface: SQL_TSQL
        + struct.pack(">I", version)
        + b_varchar(PROGRAM_NAME)
        + PROGRAM_VERSION
    )
    return bytes((LOGINACK,)) + _U16.pack(len(body)) + body


def returnstatus(value: int) -> bytes:
    return struct.pack("<Bi", RETURNSTATUS, value)


# RETURNVALUE status (MS-TDS 2.2.7.19): the value of an OUTPUT parameter of a procedure (0x02
# would be a user-defined function's result).
RETURNVALUE_OUTPUT = 0x01


def returnvalue(ordinal: int, name: str, type_info: bytes, value: bytes) -> bytes:
    """RETURNVALUE (MS-TDS 2.2.7.19): the parameter's position in the RPC, its name, status,
    UserType 0, Flags (fNullable), TYPE_INFO, and the value framed as in a ROW."""
    return (
        struct.pack("<BH", RETURNVALUE, ordinal)
        + b_varchar(name)
        + struct.pack("<BIH", RETURNVALUE_OUTPUT, 0, 0x0001)
        + type_info
        + value
    )
