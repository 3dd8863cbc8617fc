"""The report definition: the properties the rest of the project relies on."""

from __future__ import annotations

import decimal
import struct

from sql import report_data as rd
from sql.devserver.resultset import ReportEncoder

EXCEL_MAX_ROWS = 1_048_576


def test_columns_in_order_with_their_types() -> None:
    assert [(c.name, c.sql_type) for c in rd.COLUMNS] == [
        ("Id", "INT"),
        ("ColInt", "INT"),
        ("ColBigInt", "BIGINT"),
        ("ColDecimal", "DECIMAL(18,4)"),
        ("ColVarchar", "VARCHAR(100)"),
        ("ColNVarchar", "NVARCHAR(100)"),
        ("ColDate", "DATE"),
        ("ColDateTime", "DATETIME2(3)"),
        ("ColBit", "BIT"),
        ("ColFloat", "FLOAT"),
    ]


def test_max_row_count_is_above_one_excel_sheet() -> None:
    assert rd.MAX_ROW_COUNT > EXCEL_MAX_ROWS
    assert len(rd.varchar_text(rd.MAX_ROW_COUNT)) == len(rd.varchar_text(1))


def test_values_are_deterministic_typed_and_in_range() -> None:
    rows = [rd.row_values(n) for n in range(1, 5001)]
    assert rows == [rd.row_values(n) for n in range(1, 5001)]
    assert all(r[0] == n for n, r in enumerate(rows, start=1))
    nulls = sum(v is None for r in rows for v in r)
    assert 0 < nulls < len(rows) * 10 // 4
    for r in rows:
        decimal_value, bigint, integer, text, ntext, floating = r[3], r[2], r[1], r[4], r[5], r[9]
        if decimal_value is not None:
            assert isinstance(decimal_value, decimal.Decimal)
            assert abs(decimal_value) < 10**14  # DECIMAL(18,4)
            assert decimal_value == decimal_value.quantize(decimal.Decimal("0.0001"))
        if bigint is not None:
            assert isinstance(bigint, int)
            assert -(2**63) <= bigint < 2**63
        if integer is not None:
            assert isinstance(integer, int)
            assert -(2**31) <= integer < 2**31
        if floating is not None:
            # Exactly representable: survives a round trip through an 8-byte double.
            assert struct.unpack("<d", struct.pack("<d", floating))[0] == floating
        assert text is None or (isinstance(text, str) and len(text) <= 100)
        assert ntext is None or (isinstance(ntext, str) and len(ntext) <= 100)
    assert any(isinstance(r[2], int) and r[2] > 2**53 for r in rows)
    assert any(isinstance(r[5], str) and not r[5].isascii() for r in rows)


def test_encoder_writes_one_token_per_row_with_nulls_as_nbcrow() -> None:
    encoder = ReportEncoder()
    one = encoder.encode_rows(1, 1)
    sixteenth = encoder.encode_rows(16, 1)
    assert one[0] == 0xD1  # no NULLs in row 1: ROW
    assert sixteenth[0] == 0xD2  # row 16 is all NULL but Id: NBCROW with bitmap 0xFE 0x03
    assert sixteenth[1:3] == bytes((0xFE, 0x03))
    assert encoder.encode_rows(1, 32) == b"".join(encoder.encode_rows(n, 1) for n in range(1, 33))
