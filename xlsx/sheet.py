"""One worksheet's XML, streamed: head (views, widths, header row), rows, tail (autofilter)."""

from collections.abc import Iterator, Sequence
from itertools import chain
from typing import Final

from xlsx.errors import XlsxValueError
from xlsx.rows import RowEncoder
from xlsx.sources import RowXmlSource
from xlsx.spec import WriteStats
from xlsx.styles import STYLE_HEADER

# Rows are joined into batches of about this many characters before one encode and one
# compressor call: with one row per call the calls' overhead dominated (measured: twice as
# slow as batches).
BATCH_CHARS: Final = 64 * 1024
# A UTF-8 character takes at most this many bytes per Python character (code point).
_MAX_UTF8_PER_CHAR: Final = 4

_HEAD = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
    '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"'
    ' xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
    '<sheetViews><sheetView{selected} workbookViewId="0">'
    '<pane ySplit="1" topLeftCell="A2" activePane="bottomLeft" state="frozen"/>'
    '<selection pane="bottomLeft" activeCell="A2" sqref="A2"/>'
    "</sheetView></sheetViews>"
    '<sheetFormatPr defaultRowHeight="15"/>'
    "<cols>{cols}</cols><sheetData>"
)


def cols_xml(widths: Sequence[float]) -> str:
    return "".join(
        f'<col min="{i}" max="{i}" width="{w:g}" customWidth="1"/>'
        for i, w in enumerate(widths, start=1)
    )


def _utf8(batch: list[str | bytes]) -> bytes:
    """The items of a batch, text or UTF-8, as one UTF-8 string."""
    try:
        return "".join(batch).encode()  # type: ignore[arg-type]  # all text: one join
    except TypeError:  # bytes among them (compiled rows)
        return b"".join([x if isinstance(x, bytes) else x.encode() for x in batch])


class SheetWriter:
    """Streams one sheet; stops at the row or byte limit and leaves the unwritten row in `carry`.

    Iterate it (zipstream-ng does) to get the sheet's XML bytes; `carry` is a row already taken
    from `rows` that goes first. Afterwards `last_row` is the sheet's last row number and `carry`
    the row that did not fit (None when the rows ran out).
    """

    def __init__(
        self,
        *,
        rows: Iterator[Sequence[object]] | RowXmlSource,
        carry: Sequence[object] | None,
        encoder: RowEncoder,
        header: Sequence[str],
        widths: Sequence[float],
        selected: bool,
        max_rows: int,
        max_bytes: int,
        stats: WriteStats,
    ) -> None:
        self._rows = rows
        self.carry = carry
        self._encoder = encoder
        self._header = header
        self._widths = widths
        self._selected = selected
        self._max_rows = max_rows
        self._max_bytes = max_bytes
        self._stats = stats
        self.last_row = 1

    @property
    def more(self) -> bool:
        """After iterating: rows are left for a next sheet (this one reached a limit)."""
        if isinstance(self._rows, RowXmlSource):
            return not self._rows.finished
        return self.carry is not None

    def head(self) -> bytes:
        cells = self._encoder.cells
        header = "".join(
            cells.text(cells.letters[i] + "1", name, STYLE_HEADER)
            for i, name in enumerate(self._header)
        )
        selected = ' tabSelected="1"' if self._selected else ""
        return (
            _HEAD.format(selected=selected, cols=cols_xml(self._widths))
            + f'<row r="1">{header}</row>'
        ).encode()

    def tail(self, last_row: int) -> bytes:
        last = self._encoder.cells.letters[-1]
        return f'</sheetData><autoFilter ref="A1:{last}{last_row}"/></worksheet>'.encode()

    def __iter__(self) -> Iterator[bytes]:
        head = self.head()
        # Exact bytes still free, less what the closing tags can need.
        remaining = self._max_bytes - len(head) - len(self.tail(self._max_rows))
        if remaining < 0:
            raise XlsxValueError("max_sheet_xml_bytes is too small for the header row")
        yield head
        if isinstance(self._rows, RowXmlSource):
            yield from self._from_source(self._rows, remaining)
            return
        # Batch characters that surely fit whatever they encode to; past it, measure exactly.
        safe = remaining // _MAX_UTF8_PER_CHAR
        compiled = self._encoder.compiled.get
        for_shape = self._encoder.for_shape
        r = 1  # last row number used
        max_r = self._max_rows
        batch: list[str] = []
        pending = 0  # characters in batch
        source = self._rows if self.carry is None else chain((self.carry,), self._rows)
        self.carry = None
        for row in source:
            if r >= max_r:
                self.carry = row
                break
            r += 1
            rs = str(r)
            shape = tuple(map(type, row))
            xml = (compiled(shape) or for_shape(shape))(row, rs)
            pending += len(xml)
            if pending <= safe:
                batch.append(xml)
                if pending >= BATCH_CHARS:
                    data = self._take(batch)
                    remaining -= len(data)
                    safe = remaining // _MAX_UTF8_PER_CHAR
                    pending = 0
                    yield data
                continue
            # Near the byte limit (or a huge row): measure exactly before deciding.
            if batch:
                data = self._take(batch)
                remaining -= len(data)
                yield data
            pending = 0
            data = xml.encode()
            if len(data) > remaining:
                r -= 1
                if r == 1:
                    raise XlsxValueError(
                        f"row {rs} alone needs {len(data)} bytes of XML, more than"
                        " max_sheet_xml_bytes leaves in an empty sheet"
                    )
                self.carry = row
                break
            remaining -= len(data)
            safe = remaining // _MAX_UTF8_PER_CHAR
            self._stats.rows += 1
            yield data
        if batch:
            yield self._take(batch)
        self.last_row = r
        yield self.tail(r)

    def _from_source(self, source: RowXmlSource, remaining: int) -> Iterator[bytes]:
        """The rows of a source that writes its own XML, in batches of about BATCH_CHARS.

        A source cannot take a row back once written, so every batch stays within the
        characters that surely fit (a UTF-8 character takes at most 4 bytes): near the byte
        limit the sheet ends a little early rather than measuring row by row.
        """
        r = 1
        while r < self._max_rows:
            safe = remaining // _MAX_UTF8_PER_CHAR
            batch: list[str | bytes] = []
            written = source.fill(batch, r, self._max_rows, min(BATCH_CHARS, safe))
            if written == r and not source.finished and safe > BATCH_CHARS:
                written = source.fill(batch, r, self._max_rows, safe)  # one row > a batch
            if written == r:
                if not source.finished and r == 1:
                    raise XlsxValueError(
                        "row 2 alone needs more XML than max_sheet_xml_bytes leaves in an"
                        " empty sheet"
                    )
                break
            data = _utf8(batch)
            remaining -= len(data)
            self._stats.rows += written - r
            r = written
            yield data
        self.last_row = r
        yield self.tail(r)

    def _take(self, batch: list[str]) -> bytes:
        """The batch as bytes (one join, one encode); counts its rows and empties it."""
        data = "".join(batch).encode()
        self._stats.rows += len(batch)
        batch.clear()
        return data
