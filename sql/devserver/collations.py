"""Collations the dev server can put on character columns: the 5 wire bytes and the code page.

MS-TDS 2.2.5.1.2 (Collation Rule Definition): a little-endian 32-bit word of LCID (20 bits),
the flags fIgnoreCase 0x100000, fIgnoreAccent 0x200000, fIgnoreWidth 0x400000, fIgnoreKana
0x800000, fBinary 0x1000000, fBinary2 0x2000000, fUTF8 0x4000000 (a reserved bit), a 4-bit
version (bits 28-31), then one byte of SortId.  A SQL collation (``SQL_*``) has a non-zero SortId
that names its code page; a Windows collation has SortId 0 and its code page follows from the
LCID.  ``_CI_AS`` means case-insensitive and accent-sensitive; kana and width are insensitive
unless ``_KS``/``_WS`` say otherwise.  The version is 0 for the collations of SQL Server 2000,
2 for the ``_100`` ones (SQL Server 2008).

Values of CHAR/VARCHAR/TEXT columns travel in the collation's code page, or in UTF-8 when
fUTF8 is set (SQL Server 2019's ``*_UTF8`` collations).
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass

from sql.devserver.errors import SpecError

IGNORE_CASE = 0x100000
IGNORE_WIDTH = 0x400000
IGNORE_KANA = 0x800000
UTF8 = 0x4000000
VERSION_SHIFT = 28
CI_AS = IGNORE_CASE | IGNORE_KANA | IGNORE_WIDTH


class UnknownCollationError(SpecError):
    """A collation name the dev server does not know."""


@dataclass(frozen=True, slots=True)
class Collation:
    name: str
    lcid: int
    flags: int
    version: int
    sort_id: int
    codec: str  # Python codec of the values' bytes

    @property
    def wire(self) -> bytes:
        """The 5 bytes of COLLATION in TYPE_INFO."""
        word = self.lcid | self.flags | (self.version << VERSION_SHIFT)
        return word.to_bytes(4, "little") + bytes((self.sort_id,))

    def encode(self, text: str) -> bytes:
        """``text`` in the collation's encoding (UnicodeEncodeError when it has no such
        character)."""
        return codecs.encode(text, self.codec)


# LCIDs from [MS-LCID]; SortId 52 is SQL_Latin1_General_CP1_CI_AS (code page 1252).
COLLATIONS: dict[str, Collation] = {
    c.name.lower(): c
    for c in (
        Collation("SQL_Latin1_General_CP1_CI_AS", 0x0409, CI_AS, 0, 52, "cp1252"),
        Collation("Latin1_General_CI_AS", 0x0409, CI_AS, 0, 0, "cp1252"),
        Collation("Cyrillic_General_CI_AS", 0x0419, CI_AS, 0, 0, "cp1251"),
        Collation("Greek_CI_AS", 0x0408, CI_AS, 0, 0, "cp1253"),
        Collation("Japanese_CI_AS", 0x0411, CI_AS, 0, 0, "cp932"),
        Collation("Chinese_PRC_CI_AS", 0x0804, CI_AS, 0, 0, "cp936"),
        Collation("Latin1_General_100_CI_AS_SC_UTF8", 0x0409, CI_AS | UTF8, 2, 0, "utf-8"),
    )
}

# The server's default collation (the ENVCHANGE after login announces the same bytes).
DEFAULT = COLLATIONS["sql_latin1_general_cp1_ci_as"]


def by_wire(wire: bytes) -> Collation | None:
    """The known collation with these 5 TYPE_INFO bytes (a client's RPC parameter), or None."""
    return _BY_WIRE.get(bytes(wire))


_BY_WIRE: dict[bytes, Collation] = {c.wire: c for c in COLLATIONS.values()}


def by_name(name: str) -> Collation:
    try:
        return COLLATIONS[name.lower()]
    except KeyError:
        known = ", ".join(c.name for c in COLLATIONS.values())
        raise UnknownCollationError(
            f"unknown collation {name!r} (the dev server knows {known})"
        ) from None
