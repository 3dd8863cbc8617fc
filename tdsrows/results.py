"""Rows of a pytds cursor's result set, read packet by packet through compiled or generated code.

    rows = FastRows.open(cursor)          # after callproc/execute has read COLMETADATA
    while batch := rows.fetch():          # every complete row of the next packet(s)
        ...
    # then pytds goes on as usual (cursor.nextset(), return status, the next request)

The decoder takes every ROW/NBCROW token of the bytes it is given: the compiled scanner and
tuple builder (scandecode.py) where they are built and read every column, else the generated
decoder (codegen.py); the same tuples either way. Rows as text (:meth:`FastRows.fill`, the
export) go through the scanner and a compiled cell writer (scanfill.py) or the generated fill
(genfill.py). A row cut by a packet boundary waits for the
next packet. At the first token that is not a row the unread bytes go back to pytds
(:meth:`~tdsrows.pytds_link.Link.give_back`) and pytds reads on
(:meth:`~tdsrows.pytds_link.Link.fetch_one`): INFO, ERROR and DONE tokens are handled by pytds
exactly as without the fast path, and if a row follows them, the fast path resumes.

After an attention, :meth:`FastRows.drain_cancelled` walks the rows still in flight by their
lengths only, until pytds has read the server's DONE(ATTN).

A value its column's type does not have (a length other than the type's, text longer than
declared, UTF-16 of an odd number of bytes, a time of a day or more) raises
:class:`~tdsrows.errors.StreamError` naming the column and the problem, whichever code reads
it: the compiled scanner (through the generated decoder), the generated decoder, or pytds
(:func:`~tdsrows.pytds_link.check_values`, for the rows pytds reads between other tokens).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from tdsrows import scan, values
from tdsrows.codegen import CompiledLayout, compile_layout
from tdsrows.errors import StreamError, UnsupportedLayout
from tdsrows.genfill import CompiledText, FillFn, RowText
from tdsrows.layout import Kind, Layout
from tdsrows.pytds_link import Link, check_values
from tdsrows.scandecode import ScannedDecode
from tdsrows.scanfill import ScannedFill
from tdsrows.stops import FULL, INCOMPLETE
from tdsrows.tokens import COLMETADATA_TOKEN, NBCROW_TOKEN, ROW_TOKEN

# (data, pos, out) -> (pos, stop): codegen's decode, appending to the list ``out``.
DecodeInto = Callable[[bytes, int, list[Any]], tuple[int, int]]


class FastRows:
    """The fast path over one result set of one cursor (one thread, like the cursor)."""

    def __init__(
        self, link: Link, compiled: CompiledLayout, *, compiled_fetch: bool = True
    ) -> None:
        self._link = link
        self._compiled = compiled
        # fetch() decodes through the compiled scanner and tuple builder (True) or the
        # generated decoder; made on the first fetch (an export only fills, see use_text).
        self.compiled_fetch = compiled_fetch and scanned_decode_available(compiled.layout)
        self._decode_into: DecodeInto | None = None
        # Unread bytes: the start of a row cut by a packet's end (``_need_more``), or rows a
        # fill left for its next call. A row never needs more than the layout's largest row,
        # so more than that cut off means the bytes are not what the layout says.
        self._pending = b""
        self._need_more = False
        self._limit = compiled.layout.max_row_bytes
        self._finished = False
        self._error: BaseException | None = None
        self._text: RowText | None = None
        self._fill: FillFn | None = None
        self._held: tuple[Any, ...] | None = None  # a row pytds read, not yet filled
        self.rows = 0
        self.compiled = False  # fill goes through compiled code (use_text)

    @classmethod
    def open(
        cls, cursor: Any, *, raw_kinds: frozenset[Kind] = frozenset(), compiled: bool = True
    ) -> FastRows:
        """The fast path for ``cursor``'s current result set; :class:`UnsupportedLayout` if
        pytds must decode it (the exception says which column or setting). Columns of
        ``raw_kinds`` are decoded to ints (values.RAW_KINDS says which ints). ``compiled``:
        fetch() may go through the compiled scanner (:attr:`compiled_fetch` says if it does)."""
        link = Link(cursor)
        layout = compile_for(link.layout(), raw_kinds=raw_kinds)
        check_values(cursor)  # the rows pytds reads after a token that is not a row
        return cls(link, layout, compiled_fetch=compiled)

    @property
    def layout(self) -> Layout:
        return self._compiled.layout

    @property
    def raw_kinds(self) -> frozenset[Kind]:
        return self._compiled.raw_kinds

    @property
    def finished(self) -> bool:
        return self._finished

    # -- rows as tuples -------------------------------------------------------------------------

    def fetch(self) -> list[tuple[Any, ...]]:
        """The next rows (every complete row the next packet holds); [] at the set's end.

        Errors pytds raises (an ERROR token after the rows, a lost connection) come after the
        rows decoded before them: once those were returned, the next call raises.
        """
        self._raise_held_error()
        decode = self._decode_into or self._make_decoder()
        out: list[tuple[Any, ...]] = []
        if self._held is not None:
            out.append(self._held)
            self._held = None
        while not out and not self._finished:
            data = self._next_bytes()
            if data is None:
                continue
            pos, stop = decode(data, 0, out)
            if self._stopped(data, pos, stop):
                self._to_driver(out, bool(out))
        self.rows += len(out)
        return out

    def _make_decoder(self) -> DecodeInto:
        if self.compiled_fetch:
            self._decode_into = ScannedDecode(self._compiled).decode_into
        else:
            decode = self._compiled.decode
            self._decode_into = lambda data, pos, out: decode(data, pos, out.append)
        return self._decode_into

    def wait_for_row(self) -> bool:
        """Read until a row is next (True) or the set has ended (False), with the next row
        read whole and its values checked (:class:`StreamError` for one its column cannot
        hold; the row is decoded again by the next fetch or fill).

        What comes before the first row (INFO, ERROR and DONE tokens) is pytds'; an error the
        database reports instead of rows is raised here.
        """
        while not self._finished:
            if self._held is not None:
                return True
            data = self._next_bytes()
            if data is None:
                continue
            if data[0] in (ROW_TOKEN, NBCROW_TOKEN):
                self._pending = data
                if self._compiled.row_end(data, 0) == INCOMPLETE:
                    self._need_more = True  # the row goes on in the next packet
                    if len(data) > self._limit:
                        self._fail_cut_row()
                    continue
                return True
            self._stopped(data, 0, data[0])
            held: list[tuple[Any, ...]] = []
            self._to_driver(held, False)
            self._held = held[0] if held else None
        return False

    # -- rows as text ---------------------------------------------------------------------------

    def use_text(self, text: RowText, *, compiled: bool = True) -> None:
        """From now on :meth:`fill` turns rows into ``text``'s text: through the compiled
        scanner and ``text``'s compiled writer when both exist and ``compiled`` (see
        :mod:`tdsrows.scanfill`), else in generated Python code. Same text either way."""
        self._text = text
        python_fill = CompiledText(self.layout, text, raw_kinds=self.raw_kinds).fill
        self._fill = python_fill
        self.compiled = False
        if not compiled or not scan.covers(self.layout, self.raw_kinds):
            return
        scanner = scan.RowScanner(self.layout, self.raw_kinds)
        tables = [
            values.byte_table(c.codec) if c.kind is Kind.TEXT and c.codec else None
            for c in self.layout.columns
        ]
        writer = text.compiled(scanner.primitives, tables)
        if writer is not None:
            self._fill = ScannedFill(scanner, writer, python_fill).fill
            self.compiled = True

    def fill(self, out: list[str | bytes], last: int, limit: int, room: int) -> int:
        """Append the text of rows numbered ``last + 1``... to ``out`` (str, or UTF-8 bytes
        from compiled code), as :class:`xlsx.sources.RowXmlSource` describes; the number of
        the last one appended."""
        if self._fill is None or self._text is None:
            raise TypeError("FastRows.fill needs use_text() first")
        self._raise_held_error()
        r = last
        while r < limit and not self._finished:
            if self._held is not None:  # a row pytds read after a token that was not a row
                text = self._text.encode(self._held, str(r + 1))
                if len(text) > room:
                    break
                room -= len(text)
                out.append(text)
                self._held = None
                r += 1
                continue
            data = self._next_bytes()
            if data is None:
                continue
            pos, stop, r, room = self._fill(data, 0, out, r, limit, room)
            if stop == FULL:
                self._pending = data[pos:]
                break
            if self._stopped(data, pos, stop):
                held: list[tuple[Any, ...]] = []
                self._to_driver(held, r > last)
                self._held = held[0] if held else None
        self.rows += r - last
        return r

    # -- both -------------------------------------------------------------------------------------

    def _raise_held_error(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _next_bytes(self) -> bytes | None:
        """Unread bytes to decode from (reading the next packet when they end inside a row);
        None when a packet had to be read first and the caller should look again."""
        data = self._pending
        if data and not self._need_more:
            return data
        chunk = self._link.take()
        if not chunk:
            if not self._link.next_packet():
                self._fail_cut_row()
            return None
        self._need_more = False
        return data + chunk if data else chunk

    def _stopped(self, data: bytes, pos: int, stop: int) -> bool:
        """Keep what is unread after a decode; True if a token that is not a row is next."""
        if stop == INCOMPLETE:
            self._pending = data[pos:]
            self._need_more = True
            if len(self._pending) > self._limit:
                self._fail_cut_row()
            return False
        self._pending = b""
        self._link.give_back(data[pos:])
        return True

    def _fail_cut_row(self) -> None:
        """A row longer than its layout allows, or cut off by the end of the message."""
        self._finished = True
        raise StreamError(
            f"{len(self._pending)} bytes of a row that does not end as its columns say"
            " (or that the message cuts off)"
        )

    def _to_driver(self, out: list[tuple[Any, ...]], delivered: bool) -> None:
        """pytds reads on from the unread bytes: non-row tokens, then a row or the set's end.

        An error it raises once rows were ``delivered`` by this call is kept for the next
        call (the set is not finished: an error never looks like an end).
        """
        try:
            row = self._link.fetch_one()
        except Exception as exc:
            if not delivered:
                raise
            self._error = exc
            return
        if row is None:
            self._finished = True
        else:
            out.append(row)

    def drain_cancelled(self) -> None:
        """After an attention (sent now if it was not), read until the server acknowledges it.

        Rows still in flight are skipped by their lengths; every other token goes to pytds,
        whose handling of the DONE carrying the ATTN flag ends the cancel and leaves the
        connection idle. A new result set (its COLMETADATA) leaves the rest to pytds' own cancel.
        """
        link = self._link
        link.send_attention()
        skip = self._compiled.skip
        self._finished = True
        data, self._pending = self._pending, b""
        need_more = self._need_more or not data
        while link.in_cancel:
            if need_more:
                chunk = link.take()
                if not chunk:
                    if link.next_packet():
                        continue
                    if data:
                        self._pending = data
                        self._fail_cut_row()
                    link.next_message()  # the acknowledgement may come as a message of its own
                    continue
                data = data + chunk if data else chunk
            pos, stop = skip(data, 0)
            if stop == INCOMPLETE:
                data, need_more = data[pos:], True
                if len(data) > self._limit:
                    self._pending = data
                    self._fail_cut_row()
                continue
            link.give_back(data[pos:])
            data, need_more = b"", True
            if link.process_token() == COLMETADATA_TOKEN:
                link.cancel_with_driver()
                return


def scanned_decode_available(layout: Layout) -> bool:
    """Whether the compiled scanner is built and has a cell for every column of ``layout``
    (read raw, the tuple builder making the objects), of which there is at least one."""
    return scan.covers(layout, scan.OBJECT_KINDS)


_compiled_cache: dict[tuple[Layout, frozenset[Kind]], CompiledLayout] = {}
# Layouts kept compiled per process: an API serves a handful of procedures, so this bounds
# memory without ever recompiling the usual ones.
MAX_CACHED_LAYOUTS: Final = 64


def compile_for(layout: Layout, *, raw_kinds: frozenset[Kind]) -> CompiledLayout:
    """The compiled decoder for ``layout`` (cached: compiling costs ~1 ms per column)."""
    key = (layout, raw_kinds)
    compiled = _compiled_cache.get(key)
    if compiled is None:
        compiled = compile_layout(layout, raw_kinds=raw_kinds)
        if len(_compiled_cache) >= MAX_CACHED_LAYOUTS:
            _compiled_cache.pop(next(iter(_compiled_cache)))
        _compiled_cache[key] = compiled
    return compiled


__all__ = ["FastRows", "UnsupportedLayout", "compile_for", "scanned_decode_available"]
