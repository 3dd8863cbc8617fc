"""The inside of a downloaded workbook, as it streams: each worksheet's XML and the sheet list.

:class:`SheetScan` is fed one worksheet's XML as it inflates and checks, in bounded memory:

- the XML is well-formed (expat, fed piece by piece: the whole part, not only its ends),
  unless ``xml_check`` is off: expat takes ~0.35 s of CPU per 100k rows of our report, twice
  the rest of the check, which matters when the harness shares the stack's cores;
- its rows are numbered 1, 2, 3... with no gap, no repeat and no row without a number, so a
  sheet that lost or doubled rows in the middle fails even when its total happens to match;
- it ends with ``</worksheet>``.

It keeps the first bytes of the sheet (the header row and the first data row) and the last ones
(the last row), for the header check and the value spot checks (:mod:`tests.load.expect`).

Rows are found with a regular expression on the raw XML rather than with an XML callback per
element: a callback per cell costs several seconds per 100k-row file, the expression a few
hundredths. It is exact for well-formed XML (which expat proves separately): ``<`` only ever
starts markup, since text and attribute values must escape it, and a row's start tag ends at
the first ``>`` because row attributes are numbers and flags. Workbooks from writers that put
worksheet elements in a prefixed namespace (``<x:row>``) are not read (ours and openpyxl's
use the default namespace).

:func:`listed_sheets` reads ``xl/workbook.xml`` and its relationships: the sheets a reader
shows, in order, each with the worksheet part it points to.
"""

from __future__ import annotations

import posixpath
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from xml.parsers import expat

from tests.load.errors import InvalidDownload

KIB = 1024
# A start tag in a worksheet is tens of bytes (a cell) to a few hundred (the root element with
# its namespaces). A tag cut by a piece boundary is held until its end arrives; longer than
# this it is not a worksheet of ours, and the cap keeps damaged data from being buffered whole.
MAX_TAG_BYTES = 64 * KIB
# The sheet's first bytes are kept for its header row and first data row: the root, the views,
# one <col> (~60 bytes) per column, then the two rows. Ours take ~1.5 KB; this allows a few
# hundred columns of short values.
MAX_HEAD_BYTES = 64 * KIB
# The sheet's last bytes are kept for its last row and closing tags: a row of our reports is
# under 1 KiB.
MAX_TAIL_BYTES = 16 * KIB
# xl/workbook.xml and its relationships are read whole: ~250 bytes per sheet, and a rollover
# of the largest export allowed (10M rows) makes 10 sheets. A larger part is not one of ours.
MAX_PART_BYTES = 1024 * KIB

HEADER_ROW = 1  # the row that holds the column headers, on every sheet (rollover repeats it)
FIRST_DATA_ROW = 2
# A header cell holds text: an inline string, a shared string or a formula's string result.
TEXT_KINDS = frozenset({"inlineStr", "s", "str"})

# A row's start tag and its number (the r attribute; the group is empty when it has none). The
# lookahead keeps <rowBreaks> out; </row> does not match (its "<" is followed by "/").
_ROW = re.compile(rb"<row(?=[\s/>])(?:[^>]*?\sr\s*=\s*[\"']([0-9]+)[\"'])?")
_ROW_END = b"</row>"
_SHEET_END = b"</worksheet>"
# Cell text escapes characters XML cannot hold as _xHHHH_ (ECMA-376 Part 1, 22.9.2.19).
_XSTRING_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")
_COLUMN_LETTERS = re.compile(r"[A-Z]+")
_WORKSHEET_RELATIONSHIP = "/worksheet"


@dataclass(frozen=True)
class Cell:
    column: int  # 0-based: A is 0
    kind: str  # the t attribute: "n" (a number, the default), "inlineStr", "s", "str", "b", "e"
    text: str | None  # the <v> value or the inline string's text; None when the cell has neither


@dataclass(frozen=True)
class Row:
    number: int
    cells: tuple[Cell, ...]

    def cell(self, column: int) -> Cell | None:
        """The cell in the 0-based ``column``, None when the row has none there (a NULL)."""
        return next((c for c in self.cells if c.column == column), None)


class SheetScan:
    """One worksheet's XML, fed with :meth:`feed` as it inflates and ended with :meth:`close`.
    Raises :class:`InvalidDownload` (naming the part) at the first problem."""

    def __init__(self, part: str, *, xml_check: bool = True) -> None:
        self.part = part
        self.rows = 0  # rows seen so far, which is also the last row's number
        self._parser = expat.ParserCreate() if xml_check else None
        self._carry = b""  # a start tag cut by the end of the last piece
        self._head = bytearray()
        self._tail = b""

    def feed(self, xml: bytes) -> None:
        self._parse(xml, final=False)
        self._keep(xml)
        window = self._carry + xml if self._carry else xml
        last_open = window.rfind(b"<")
        if last_open == -1 or window.find(b">", last_open) != -1:
            end = len(window)  # every tag in the window is complete
        else:
            end = last_open
            if len(window) - end > MAX_TAG_BYTES:
                raise InvalidDownload(f"{self.part}: a tag longer than {MAX_TAG_BYTES:,} bytes")
        self._number_rows(window, end)
        self._carry = window[end:]

    def close(self) -> None:
        """The part's data ended: the XML must be complete."""
        self._parse(b"", final=True)
        self._number_rows(self._carry, len(self._carry))
        self._carry = b""
        if not self._tail.rstrip().endswith(_SHEET_END):
            raise InvalidDownload(f"{self.part} does not end with {_SHEET_END.decode()}")

    def header(self) -> Row:
        """Row 1, which must hold the column headers: at least one cell, every cell text."""
        if self.rows < HEADER_ROW:
            raise InvalidDownload(f"{self.part} has no header row")
        row = self.row(HEADER_ROW)
        if row is None:
            raise InvalidDownload(
                f"{self.part}: the header row is not within the first {MAX_HEAD_BYTES:,} bytes"
            )
        if not row.cells or any(cell.kind not in TEXT_KINDS for cell in row.cells):
            kinds = [cell.kind for cell in row.cells]
            raise InvalidDownload(f"{self.part}: row 1 is not a header row of text (cells {kinds})")
        return row

    def row(self, number: int) -> Row | None:
        """Row ``number`` if it lies within the sheet's first bytes (header, first data row)."""
        for match in _ROW.finditer(self._head):
            if match[1] is not None and int(match[1]) == number:
                return _read_row(self.part, self._head, match.start())
        return None

    def last_row(self) -> Row | None:
        """The sheet's last row, if it lies within the sheet's last bytes."""
        last = None
        for match in _ROW.finditer(self._tail):
            last = match
        if last is None or last[1] is None or int(last[1]) != self.rows:
            return None
        return _read_row(self.part, self._tail, last.start())

    def _number_rows(self, xml: bytes, end: int) -> None:
        found = _ROW.findall(xml, 0, end)  # each row's number, b"" for a row without one
        first = self.rows + 1
        if found == [b"%d" % n for n in range(first, first + len(found))]:
            self.rows += len(found)  # the usual case, one comparison for the piece
            return
        for number in found:  # say which row is wrong
            if not number:
                raise InvalidDownload(f"{self.part}: row {self.rows + 1} has no row number")
            if int(number) != self.rows + 1:
                raise InvalidDownload(
                    f"{self.part}: row {int(number)} follows row {self.rows} "
                    "(rows must be numbered 1, 2, 3... without a gap)"
                )
            self.rows += 1

    def _keep(self, xml: bytes) -> None:
        room = MAX_HEAD_BYTES - len(self._head)
        if room > 0:
            self._head += xml[:room]
        if len(xml) >= MAX_TAIL_BYTES:
            self._tail = xml[-MAX_TAIL_BYTES:]
        else:
            self._tail = (self._tail + xml)[-MAX_TAIL_BYTES:]

    def _parse(self, xml: bytes, *, final: bool) -> None:
        if self._parser is None:
            return
        try:
            self._parser.Parse(xml, final)
        except expat.ExpatError as exc:
            raise InvalidDownload(f"{self.part} is not well-formed XML: {exc}") from None


def _read_row(part: str, xml: bytes | bytearray, start: int) -> Row | None:
    """The row element starting at ``start``, read on its own; None if it does not end within
    ``xml`` (a row longer than the bytes kept)."""
    open_end = xml.find(b">", start)
    if open_end == -1:
        return None
    if xml[open_end - 1 : open_end] == b"/":
        element = bytes(xml[start : open_end + 1])  # <row r="7"/>: a row without cells
    else:
        close = xml.find(_ROW_END, open_end)
        if close == -1:
            return None
        element = bytes(xml[start : close + len(_ROW_END)])
    try:
        return parse_row(element)
    except (ET.ParseError, ValueError) as exc:
        raise InvalidDownload(f"{part}: a row that cannot be read on its own: {exc}") from None


def parse_row(element: bytes) -> Row:
    """A ``<row>`` element (as our writer and openpyxl write it: default namespace) -> its cells."""
    row = ET.fromstring(element)
    cells = []
    column = -1
    for c in row:
        if _local(c.tag) != "c":
            continue
        ref = c.get("r")
        letters = _COLUMN_LETTERS.match(ref) if ref else None
        column = _column_index(letters[0]) if letters else column + 1
        kind = c.get("t", "n")
        text: str | None = None
        for child in c:
            name = _local(child.tag)
            if name == "v":
                text = child.text or ""
            elif name == "is":  # an inline string: its text, or its rich-text runs' texts
                raw = "".join(t.text or "" for t in child.iter() if _local(t.tag) == "t")
                text = _XSTRING_ESCAPE.sub(lambda m: chr(int(m[1], 16)), raw)
        cells.append(Cell(column, kind, text))
    return Row(int(row.get("r", "0")), tuple(cells))


def _column_index(letters: str) -> int:
    index = 0
    for letter in letters:
        index = index * 26 + ord(letter) - ord("A") + 1
    return index - 1


def _local(tag: str) -> str:
    """An element's or attribute's name without its namespace."""
    return tag.rpartition("}")[2]


def listed_sheets(workbook_xml: bytes, rels_xml: bytes) -> list[tuple[str, str]]:
    """(name, worksheet part) of every sheet ``xl/workbook.xml`` lists, in its order; each
    sheet's relationship id resolved through ``xl/_rels/workbook.xml.rels``."""
    try:
        book = ET.fromstring(workbook_xml)
        links = ET.fromstring(rels_xml)
    except ET.ParseError as exc:
        raise InvalidDownload(f"the workbook part or its relationships: {exc}") from None
    targets = {}
    for rel in links:
        kind, target, rid = rel.get("Type", ""), rel.get("Target"), rel.get("Id")
        if kind.endswith(_WORKSHEET_RELATIONSHIP) and target and rid:
            # Targets are relative to xl/ (the workbook part's folder) unless absolute.
            path = target[1:] if target.startswith("/") else posixpath.join("xl", target)
            targets[rid] = posixpath.normpath(path)
    listed = []
    for sheet in book.iter():
        if _local(sheet.tag) != "sheet":
            continue
        name = sheet.get("name", "")
        rid = next((v for k, v in sheet.attrib.items() if k.endswith("}id")), None)
        if rid is None or rid not in targets:
            raise InvalidDownload(f"sheet {name!r} in xl/workbook.xml points to no worksheet")
        listed.append((name, targets[rid]))
    if not listed:
        raise InvalidDownload("xl/workbook.xml lists no sheet")
    return listed
