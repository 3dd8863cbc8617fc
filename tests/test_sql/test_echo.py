"""``dbo.spEcho``: whatever a client sends as parameters comes back as data, unchanged.

pytds sends explicitly typed parameters over TCP; the one row that comes back has a column per
parameter, named and typed as it was sent, and every value exactly as it was sent: the hostile
strings of injection tests included.  Also the RPC parser underneath (status flags, DATE and
DATETIME2 decoded) and EXEC in a batch.
"""

from __future__ import annotations

import datetime
import decimal
import struct
import uuid
from typing import Any

import pytds
import pytest
from pytds.tds_base import Param
from pytds.tds_types import sql_type_by_declaration

from sql.devserver import DEV_DATABASE, DEV_PASSWORD, DEV_USER, DevServer, requests
from tests.test_sql import tdsclient

PROC = "dbo.spEcho"

HOSTILE = {
    "quote": "O'Brien",
    "quotes": "''''",
    "drop": "x'; DROP TABLE x; --",
    "comment": "/* */ -- ",
    "nul": "a\x00b\x00",
    "emoji": "\U0001f600 smile",
    "rtl": "\u200fabc\u202edef",
    "brackets": "]]; EXEC('x') [",
    "crlf": "a\r\nb\tc",
    "percent": "%s %(x)s {0} \\",
    "long": "x" * 3999 + "'",
    "empty": "",
}


def nvarchar(value: str | None, declaration: str = "NVARCHAR(4000)") -> Param:
    return Param(type=sql_type_by_declaration(declaration), value=value)


def typed(declaration: str, value: object) -> Param:
    return Param(type=sql_type_by_declaration(declaration), value=value)


def echo(conn: Any, params: dict[str, Any] | tuple[Any, ...]) -> tuple[list[Any], tuple[Any, ...]]:
    """The description and the one row spEcho returns."""
    with conn.cursor() as cur:
        cur.callproc(PROC, params)
        description = list(cur.description)
        rows = [tuple(r) for r in cur.fetchall()]
        assert not cur.nextset()
        assert cur.return_value == 0
    assert len(rows) == 1
    return description, rows[0]


@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_string_comes_back_unchanged(conn: Any, name: str) -> None:
    description, row = echo(conn, {"@X": nvarchar(HOSTILE[name])})
    assert row == (HOSTILE[name],)
    assert description[0][0] == "X"


def test_every_hostile_string_at_once_in_order(conn: Any) -> None:
    params = {f"@{name}": nvarchar(value) for name, value in HOSTILE.items()}
    description, row = echo(conn, params)
    assert [d[0] for d in description] == list(HOSTILE)
    assert row == tuple(HOSTILE.values())


def test_a_4000_character_string_and_nvarchar_max_as_plp(conn: Any) -> None:
    exact = "é" * 4000
    big = "\U0001f680" * 5000 + "'; --"  # 10,005 UTF-16 code units: sent and returned as PLP
    description, row = echo(
        conn, {"@Exact": nvarchar(exact), "@Big": nvarchar(big, "NVARCHAR(MAX)")}
    )
    assert row == (exact, big)
    assert description[0][3] == 4000  # NVARCHAR(4000)
    assert description[1][3] == -1  # pytds' size of a MAX column


TYPED = {
    "@Int": (typed("INT", -(2**31)), "INT"),
    "@Big": (typed("BIGINT", 2**63 - 1), "BIGINT"),
    "@Bit": (typed("BIT", True), "BIT"),
    "@Dec": (typed("DECIMAL(18,4)", decimal.Decimal("-12345678901234.5678")), "DECIMAL"),
    "@Date": (typed("DATE", datetime.date(2024, 2, 29)), "DATE"),
    "@Stamp": (typed("DATETIME2(7)", datetime.datetime(1, 1, 1, 0, 0, 0, 1)), "DATETIME2"),
    "@Late": (typed("DATETIME2(7)", datetime.datetime(9999, 12, 31, 23, 59, 59, 999999)), ""),
    "@Float": (typed("FLOAT", 0.1), "FLOAT"),
    "@Real": (typed("REAL", 0.5), ""),
    "@Small": (typed("SMALLINT", -32768), ""),
    "@Tiny": (typed("TINYINT", 255), ""),
    "@Num": (typed("NUMERIC(5,2)", decimal.Decimal("-999.99")), ""),
    "@Var": (typed("VARCHAR(100)", "café '--"), ""),
    "@Old": (typed("DATETIME", datetime.datetime(1753, 1, 1, 23, 59, 59, 997000)), ""),
    "@Time": (typed("TIME(7)", datetime.time(23, 59, 59, 999999)), ""),
    "@Uuid": (typed("UNIQUEIDENTIFIER", uuid.UUID("12345678-1234-5678-1234-567812345678")), ""),
    "@Bin": (typed("VARBINARY(10)", b"\x00'\xff"), ""),
}
# pytds' description type codes (its tds_base constants).
TYPE_CODES = {"INT": 56, "BIGINT": 127, "BIT": 50, "DECIMAL": 106, "DATE": 40, "DATETIME2": 42}


def test_typed_parameters_come_back_with_their_types_and_values(conn: Any) -> None:
    description, row = echo(conn, {name: p for name, (p, _) in TYPED.items()})
    assert [d[0] for d in description] == [name[1:] for name in TYPED]
    assert row == tuple(p.value for p, _ in TYPED.values())
    for d, (_param, kind) in zip(description, TYPED.values(), strict=True):
        if kind in TYPE_CODES:
            assert d[1] == TYPE_CODES[kind], d
    dec, stamp = description[3], description[5]
    assert (dec[4], dec[5]) == (18, 4)  # the precision and scale the RPC sent
    assert stamp[4] == 7  # pytds reports a DATETIME2's scale as its precision
    assert all(d[6] for d in description)  # nullable, as a parameter is


def test_nulls_of_every_type_come_back_as_null_of_that_type(conn: Any) -> None:
    declarations = ["INT", "BIGINT", "BIT", "DECIMAL(18,4)", "DATE", "DATETIME2(7)",
                    "NVARCHAR(4000)", "NVARCHAR(MAX)", "FLOAT"]  # fmt: skip
    params = {f"@n{i}": typed(d, None) for i, d in enumerate(declarations)}
    description, row = echo(conn, params)
    assert row == (None,) * len(declarations)
    assert description[3][4:6] == (18, 4)


def test_positional_parameters_are_named_by_position(conn: Any) -> None:
    description, row = echo(conn, (nvarchar("a"), typed("INT", 2), nvarchar(None)))
    assert [d[0] for d in description] == ["p1", "p2", "p3"]
    assert row == ("a", 2, None)


def test_sixty_four_parameters_and_not_one_more(conn: Any) -> None:
    params = {f"@c{i}": typed("INT", i) for i in range(64)}
    assert echo(conn, params)[1] == tuple(range(64))
    with conn.cursor() as cur, pytest.raises(pytds.OperationalError) as info:
        cur.callproc(PROC, {**params, "@c64": typed("INT", 64)})
    assert info.value.msg_no == 50000
    assert "at most 64 parameters" in info.value.text


def test_no_parameters_no_result_set(conn: Any) -> None:
    with conn.cursor() as cur:
        cur.callproc(PROC, ())
        assert cur.description is None
        assert cur.return_value == 0


def test_exec_in_a_batch_echoes_literals_typed_as_tsql_types_them(conn: Any) -> None:
    with conn.cursor() as cur:
        cur.execute("EXEC dbo.spEcho 7, N'it''s 🚀', 'café', NULL, 3000000000, @Last = N''")
        assert [d[0] for d in cur.description] == ["p1", "p2", "p3", "p4", "p5", "Last"]
        assert [tuple(r) for r in cur.fetchall()] == [(7, "it's 🚀", "café", None, 3 * 10**9, "")]
        codes = [d[1] for d in cur.description]
    assert codes[0] == 56 and codes[4] == 127  # noqa: PT018 - INT and BIGINT literals


def test_a_named_parameter_before_a_positional_one_is_error_119(conn: Any) -> None:
    with conn.cursor() as cur, pytest.raises(pytds.Error) as info:
        cur.execute("EXEC dbo.spEcho @A = 1, 2")
    assert info.value.msg_no == 119


# -- the RPC parser ---------------------------------------------------------------------------


def param(name: str, status: int, type_info: bytes, value: bytes) -> bytes:
    return bytes((len(name),)) + name.encode("utf-16-le") + bytes((status,)) + type_info + value


def parse(*params: bytes) -> tuple[requests.RpcParam, ...]:
    message = tdsclient.rpc_params_message("dbo.spEcho", *params)
    return requests.parse_rpc(message[8:]).params  # one packet: skip its header


def test_status_flags_are_kept() -> None:
    by_ref, default, plain = parse(
        param("@Out", 0x01, b"\x26\x04", b"\x04" + struct.pack("<i", 5)),
        param("@Def", 0x02, b"\x26\x04", b"\x00"),
        param("", 0x00, b"\x38", struct.pack("<i", -1)),
    )
    assert (by_ref.status, by_ref.by_ref, by_ref.wants_default, by_ref.value) == (1, True, False, 5)
    assert (default.status, default.wants_default, default.value) == (2, True, None)
    assert (plain.status, plain.name, plain.value, plain.type_name) == (0, "", -1, "int")


def test_dates_and_times_are_decoded() -> None:
    """MS-TDS 2.2.5.5.1.8: DATE is 3 bytes of days since 0001-01-01; DATETIME2(s) the time in
    10**-s seconds (3 to 5 bytes by scale) then the date; DATETIMEOFFSET the UTC date and time,
    then the offset in minutes."""
    days = (datetime.date(2024, 2, 29) - datetime.date(1, 1, 1)).days.to_bytes(3, "little")
    ticks7 = (((1 * 60 + 2) * 60 + 3) * 10**7 + 4_567_890).to_bytes(5, "little")
    ticks3 = ((23 * 60 + 59) * 60 * 1000 + 59_999).to_bytes(4, "little")
    date, stamp7, stamp3, offset = parse(
        param("@D", 0, b"\x28", b"\x03" + days),
        param("@S", 0, b"\x2a\x07", b"\x08" + ticks7 + days),
        param("@T", 0, b"\x2a\x03", b"\x07" + ticks3 + days),
        param("@O", 0, b"\x2b\x07", b"\x0a" + ticks7 + days + (90).to_bytes(2, "little")),
    )
    assert date.value == datetime.date(2024, 2, 29)
    assert date.sql_type is not None and date.sql_type.declaration == "date"  # noqa: PT018
    assert stamp7.value == datetime.datetime(2024, 2, 29, 1, 2, 3, 456789)  # 100 ns cut off
    assert stamp7.data == ticks7 + days  # ... but kept in the bytes
    assert stamp3.value == datetime.datetime(2024, 2, 29, 23, 59, 59, 999000)
    tz = datetime.timezone(datetime.timedelta(minutes=90))
    assert offset.value == datetime.datetime(2024, 2, 29, 2, 32, 3, 456789, tzinfo=tz)
    assert [p.type_name for p in (date, stamp7, offset)] == [
        "date", "datetime2", "datetimeoffset"
    ]  # fmt: skip


def test_declarations_carry_precision_scale_and_length() -> None:
    collation = bytes.fromhex("0904d00034")
    decimal_param, text, text_max, real = parse(
        param("@A", 0, b"\x6a\x09\x12\x04", b"\x09\x01" + (123456).to_bytes(8, "little")),
        param("@B", 0, b"\xe7\x40\x1f" + collation, b"\x02\x00" + "x".encode("utf-16-le")),
        param("@C", 0, b"\xe7\xff\xff" + collation, b"\xff" * 8),
        param("@D", 0, b"\x6d\x04", b"\x04" + struct.pack("<f", 0.5)),
    )
    declarations = [
        p.sql_type.declaration for p in (decimal_param, text, text_max, real) if p.sql_type
    ]
    assert declarations == ["decimal(18,4)", "nvarchar(4000)", "nvarchar(max)", "real"]
    assert decimal_param.value == decimal.Decimal("12.3456")
    assert (text.value, text_max.value, real.value) == ("x", None, 0.5)


def test_values_come_back_byte_for_byte_even_undecodable_ones(server: DevServer) -> None:
    """A lone surrogate in NVARCHAR and a byte cp1252 has no character for in VARCHAR: the
    value bytes of the ROW are the bytes of the RPC (read by the raw client)."""
    collation = bytes.fromhex("0904d00034")
    utf16 = "'\x00".encode("utf-16-le") + b"\x00\xd8" + "\U0001f600".encode("utf-16-le")
    cp1252 = b"\x81\x8d'--"
    with tdsclient.RawClient("127.0.0.1", server.port) as client:
        client.login(DEV_USER, DEV_PASSWORD, DEV_DATABASE)
        client.sock.sendall(
            tdsclient.rpc_params_message(
                PROC,
                param(
                    "@N", 0, b"\xe7\x14\x00" + collation, len(utf16).to_bytes(2, "little") + utf16
                ),
                param(
                    "@V", 0, b"\xa7\x0a\x00" + collation, len(cp1252).to_bytes(2, "little") + cp1252
                ),
            )
        )
        found = tdsclient.reply_tokens(client.read_reply().payload)
    assert [t[0] for t in found] == ["COLMETADATA", "ROW", "DONEINPROC", "RETURNSTATUS", "DONEPROC"]
    assert found[0] == ("COLMETADATA", ("N", "V"))
    assert found[1] == ("ROW", (utf16, cp1252))
