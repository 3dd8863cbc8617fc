"""Column layouts: what a result set's COLMETADATA says about each column's bytes on the wire.

Pure data, no driver: :mod:`tdsrows.pytds_link` builds a :class:`Layout` from the driver's
parsed COLMETADATA; :mod:`tdsrows.codegen` turns it into decoding code. Wire formats are those of
MS-TDS 2.2.5.4 (data type definitions) and 2.2.5.5 (data type dependent data streams).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final


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


# Ticks of a time(s) in a day, by scale s: a time or datetime2 of this many or more is no time of
# day (SQL Server never sends one; in a sum of days and ticks it would pass for the next day).
TICKS_PER_DAY: Final = tuple(86_400 * 10**s for s in range(len(TIME_BYTES)))
# Narrower values a nullable column of these kinds may send besides its own size (MS-TDS
# 2.2.5.5.1: INTN, FLTN, MONEYN and DATETIMN take their length from each value, and pytds reads
# any of these sizes): 1, 2 or 4 bytes in a wider int column, 4 in a float, money or datetime.
_NARROWER: Final = {Kind.INT: (1, 2, 4), Kind.FLOAT: (4,), Kind.MONEY: (4,), Kind.DATETIME: (4,)}
# SQL names of each kind by size, for error messages.
_TYPE_NAMES: Final = {
    (Kind.INT, 1): "tinyint",
    (Kind.INT, 2): "smallint",
    (Kind.INT, 8): "bigint",
    (Kind.FLOAT, 4): "real",
    (Kind.MONEY, 4): "smallmoney",
    (Kind.TEXT, 0): "varchar",
    (Kind.NTEXT, 0): "nvarchar",
    (Kind.BINARY, 0): "varbinary",
    (Kind.GUID, 16): "uniqueidentifier",
}


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

    @property
    def type_name(self) -> str:
        """The column's SQL type, as far as the layout knows it (for messages)."""
        if self.kind in (Kind.TIME, Kind.DATETIME2):
            return f"{self.kind.value}({self.scale})"
        sized = self.size if self.framing is not Framing.USHORT_LEN else 0
        name: str = _TYPE_NAMES.get((self.kind, sized), self.kind.value)
        return name

    @property
    def narrower_sizes(self) -> tuple[int, ...]:
        """Sizes besides :attr:`size` a present BYTE_LEN value of this column may have."""
        if self.framing is not Framing.BYTE_LEN:
            return ()
        return tuple(s for s in _NARROWER.get(self.kind, ()) if s < self.size)

    def length_problem(self, length: int) -> str | None:
        """What is wrong with a present value of ``length`` bytes in this column (its length
        prefix said so), or None if the column's type has values of that length: a fixed size
        (a decimal's by its precision, a date's 3, a datetime2's by its scale ...), or at most
        the declared size for text and binary, an even number of bytes for UTF-16."""
        if self.framing is Framing.USHORT_LEN:
            if length > self.size:
                return f"a value of {length} bytes, more than the {self.size} it is declared with"
            if self.kind is Kind.NTEXT and length % 2:
                return f"a value of {length} bytes, an odd number (UTF-16 has 2 bytes a unit)"
            return None
        if self.framing is Framing.FIXED or length == self.size:
            return None
        if length in self.narrower_sizes:
            return None
        sizes = " or ".join(map(str, (self.size, *self.narrower_sizes)))
        if self.kind is Kind.DECIMAL:
            return f"a value of {length} bytes, not the {sizes} of its precision"
        return f"a value of {length} bytes, not {sizes}"

    def problem(self, what: str) -> str:
        """An error message about a value of this column."""
        return f"column {self.name!r} ({self.type_name}): {what}"


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
