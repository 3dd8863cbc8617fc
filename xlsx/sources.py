"""Rows that arrive as XML: sources that write their rows with the writer's own cell encoders.

A source that generates code specialised to its data (the export's decoder, which knows each
column's type before the first row) can build each `<row>` element in the same generated
function that reads the value, instead of handing over a tuple per row: no tuple, no type
dispatch per row. It gets the writer's :class:`~xlsx.rows.RowEncoder` (:meth:`bind`), whose
:meth:`~xlsx.rows.RowEncoder.row_code` gives the statements for a row of a given shape, and
the writer pulls `<row>` elements from it in batches (:meth:`fill`), numbering the rows and
keeping the sheet limits. Pass one to :func:`xlsx.stream_xlsx` in place of the rows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from xlsx.rows import RowEncoder


@runtime_checkable
class RowXmlSource(Protocol):
    def bind(self, encoder: RowEncoder) -> None:
        """Called once, before the first :meth:`fill`, with the workbook's row encoder."""

    def fill(self, out: list[str | bytes], last: int, limit: int, room: int) -> int:
        """Append `<row>` elements numbered ``last + 1``, ``last + 2``, ... to ``out``; return
        the number of the last one appended. Each item is text, or text already encoded as
        UTF-8 (:mod:`xlsx.native` writes bytes); an item may hold several rows.

        Stop after row ``limit``, and before a row whose XML would bring the characters
        appended (or bytes, for bytes items) beyond ``room`` (that row comes first in the next
        call). Return ``last``
        (nothing appended) when the rows have ended or when the next row alone needs more than
        ``room`` characters; :attr:`finished` tells which.
        """

    @property
    def finished(self) -> bool:
        """True once every row has been appended."""
