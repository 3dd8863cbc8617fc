"""Rows of a pytds cursor's result set, read packet by packet through generated code.

    rows = FastRows.open(cursor)          # after callproc/execute has read COLMETADATA
    while batch := rows.fetch():          # every complete row of the next packet(s)
        ...
    # then pytds goes on as usual (cursor.nextset(), return status, the next request)

The generated decoder (codegen.py) takes every ROW/NBCROW token of the bytes it is given; a
row cut by a packet boundary waits for the next packet. At the first token that is not a row
the unread bytes go back to pytds (:meth:`~tdsrows.pytds_link.Link.give_back`) and pytds
reads on (:meth:`~tdsrows.pytds_link.Link.fetch_one`): INFO, ERROR and DONE tokens are handled
by pytds exactly as without the fast path, and if a row follows them, the fast path resumes.

After an attention, :meth:`FastRows.drain_cancelled` walks the rows still in flight by their
lengths only, until pytds has read the server's DONE(ATTN).
"""

from __future__ import annotations

from typing import Any, Final

from tdsrows.codegen import INCOMPLETE, CompiledLayout, compile_layout
from tdsrows.errors import StreamError, UnsupportedLayout
from tdsrows.layout import Kind, Layout
from tdsrows.pytds_link import Link

COLMETADATA_TOKEN: Final = 0x81


class FastRows:
    """The fast path over one result set of one cursor (one thread, like the cursor)."""

    def __init__(self, link: Link, compiled: CompiledLayout) -> None:
        self._link = link
        self._compiled = compiled
        self._decode = compiled.decode
        # Unread bytes that do not end on a token boundary: waiting for the next packet. A row
        # never needs more than the layout's largest row, so more than that pending means the
        # bytes are not what the generated code expects; pytds then gets them.
        self._pending = b""
        self._limit = compiled.layout.max_row_bytes
        self._finished = False
        self._error: BaseException | None = None
        self.rows = 0

    @classmethod
    def open(cls, cursor: Any, *, raw_kinds: frozenset[Kind] = frozenset()) -> FastRows:
        """The fast path for ``cursor``'s current result set; :class:`UnsupportedLayout` if
        pytds must decode it (the exception says which column or setting). Columns of
        ``raw_kinds`` are decoded to ints (codegen.RAW_KINDS says which ints)."""
        link = Link(cursor)
        return cls(link, compile_for(link.layout(), raw_kinds=raw_kinds))

    @property
    def layout(self) -> Layout:
        return self._compiled.layout

    @property
    def finished(self) -> bool:
        return self._finished

    def fetch(self) -> list[tuple[Any, ...]]:
        """The next rows (every complete row the next packet holds); [] at the set's end.

        Errors pytds raises (an ERROR token after the rows, a lost connection) come after the
        rows decoded before them: once those were returned, the next call raises.
        """
        if self._error is not None:
            error, self._error = self._error, None
            raise error
        out: list[tuple[Any, ...]] = []
        link = self._link
        while not out and not self._finished:
            chunk = link.take()
            if not chunk:
                if not link.next_packet():
                    self._fail_cut_row()
                continue
            data = self._pending + chunk if self._pending else chunk
            pos, stop = self._decode(data, 0, out.append)
            if stop == INCOMPLETE:
                self._pending = data[pos:]
                if len(self._pending) > self._limit:
                    self._fail_cut_row()
            else:
                self._pending = b""
                link.give_back(data[pos:])
                self._to_driver(out)
        self.rows += len(out)
        return out

    def _fail_cut_row(self) -> None:
        """A row longer than its layout allows, or cut off by the end of the message."""
        self._finished = True
        raise StreamError(
            f"{len(self._pending)} bytes of a row that does not end as its columns say"
            " (or that the message cuts off)"
        )

    def _to_driver(self, out: list[tuple[Any, ...]]) -> None:
        """pytds reads on from the unread bytes: non-row tokens, then a row or the set's end."""
        link = self._link
        try:
            row = link.fetch_one()
        except Exception as exc:
            if not out:
                raise
            self._error = exc  # raised by the next fetch, after these rows
            self._finished = True
            return
        if row is None:
            self._finished = True
        else:
            out.append(row)

    def drain_cancelled(self) -> None:
        """After an attention (sent now if it was not), read until the server acknowledges it.

        Rows still in flight are skipped by their lengths; every other token goes to pytds,
        whose handling of the DONE carrying the ATTN flag ends the cancel and leaves the
        connection idle. A new result set (its COLMETADATA) hands the rest to pytds' own cancel.
        """
        link = self._link
        link.send_attention()
        skip = self._compiled.skip
        self._finished = True
        while link.in_cancel:
            chunk = link.take()
            if not chunk:
                if link.next_packet():
                    continue
                if self._pending:
                    self._fail_cut_row()
                link.next_message()  # the acknowledgement may come as a message of its own
                continue
            data = self._pending + chunk if self._pending else chunk
            pos, stop = skip(data, 0)
            if stop == INCOMPLETE:
                self._pending = data[pos:]
                if len(self._pending) > self._limit:
                    self._fail_cut_row()
                continue
            self._pending = b""
            link.give_back(data[pos:])
            if link.process_token() == COLMETADATA_TOKEN:
                link.cancel_with_driver()
                return


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


__all__ = ["FastRows", "UnsupportedLayout", "compile_for"]
