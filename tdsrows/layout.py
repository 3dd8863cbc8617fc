"""Column layouts: what a result set's COLMETADATA says about each column's bytes on the wire.

Pure data, no driver: :mod:`tdsrows.pytds_link` builds a :class:`Layout` from the driver's
parsed COLMETADATA; :mod:`tdsrows.codegen` turns it into decoding code. Wire formats are those of
MS-TDS 2.2.5.4 (data type definitions) and 2.2.5.5 (data type dependent data streams).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass


class Kind(enum.Enum):
    """What a column's value is, independent of how it is framed on the wire."""

    INT = "int"  # tinyint (unsigned), smallint, int, bigint
    BIT = "bit"
    FLOAT = "float"  # real (4 bytes) or float (8 bytes)
    MONEY = "money"  # smallmoney (4 bytes) or money (8 bytes): integer count of 1/10,000
    DECIMAL = "decimal"  # decimal/numeric(p, s): sign byte + little-endian magnitude
    DATE = "date"  # days since 0001-01-01, 3 bytes
    TIME = "time"  # time(s): 10**-s second units since midnight, 3-5 bytes
    DATETIME2 = "datetime2"  # time(s) bytes, then date bytes
    DATETIME = "datetime"  # days since 1900-01-01 (int32), then 1/300 s since midnight
    SMALLDATETIME = "smalldatetime"  # days since 1900-01-01 (uint16), then minutes (uint16)
    TEXT = "text"  # char/varchar(n): bytes in the column collation's code page
    NTEXT = "ntext"  # nchar/nvarchar(n): UTF-16LE
    BINARY = "binary"  # binary/varbinary(n)
    GUID = "guid"  # uniqueidentifier, 16 bytes (first three groups little-endian)


class Framing(enum.Enum):
    """How one value is delimited inside a ROW token (MS-TDS 2.2.5.2 TYPE_VARLEN)."""

    FIXED = 0  # FIXEDLENTYPE: no length, cannot be NULL in a ROW token
    BYTE_LEN = 1  # BYTELEN_TYPE: 1-byte length, 0 = NULL
    USHORT_LEN = 2  # USHORTLEN_TYPE: 2-byte length, 0xFFFF = NULL


# Bytes of a time(s) value by fractional-second digits (MS-TDS 2.2.5.5.1.8).
TIME_BYTES = (3, 3, 3, 4, 4, 5, 5, 5)
# Decimal magnitude bytes by precision (MS-TDS 2.2.5.5.1.6): 1-9 -> 4, 10-19 -> 8, 20-28 -> 12,
# 29-38 -> 16.
_DECIMAL_BYTES = ((9, 4), (19, 8), (28, 12), (38, 16))


def decimal_magnitude_bytes(precision: int) -> int:
    for limit, size in _DECIMAL_BYTES:
        if precision <= limit:
            return size
    raise ValueError(f"decimal precision {precision} is above 38")


@dataclass(frozen=True)
class Column:
    """One column of a result set, as far as decoding its values needs."""

    name: str
    kind: Kind
    framing: Framing
    # Bytes of the value (fixed and 1-byte-length framings); for USHORT_LEN, the declared
    # maximum in bytes.
    size: int
    scale: int = 0  # decimal scale, or fractional-second digits of time/datetime2
    codec: str | None = None  # TEXT: Python codec name of the column's collation

    @property
    def max_bytes(self) -> int:
        """Most bytes this value can take in a ROW token, its length prefix included."""
        return self.framing.value + self.size


@dataclass(frozen=True)
class Layout:
    columns: tuple[Column, ...]

    @classmethod
    def of(cls, columns: Sequence[Column]) -> Layout:
        return cls(tuple(columns))

    @property
    def bitmap_bytes(self) -> int:
        """Bytes of an NBCROW token's null bitmap (MS-TDS 2.2.7.17)."""
        return (len(self.columns) + 7) // 8

    @property
    def max_row_bytes(self) -> int:
        """Most bytes one ROW or NBCROW token of this layout can take, token byte included."""
        return 1 + self.bitmap_bytes + sum(c.max_bytes for c in self.columns)
