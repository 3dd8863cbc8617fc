"""Streaming XLSX writer: rows in, the bytes of one .xlsx out, as the rows arrive.

    stats = xlsx.WriteStats()
    for chunk in xlsx.stream_xlsx(["id", "name"], rows, sheet_name="Orders", stats=stats):
        send(chunk)  # ~64 KiB each; the first long before `rows` is exhausted

A pure generator: no files, sockets, threads or event loop. ``stream_workbook`` writes several
sheets, each from its own rows; a sheet past Excel's rows (or the XML size limit) continues
on a new one.

Modules, from the caller inwards:

- ``workbook``: ``stream_xlsx`` and ``stream_workbook``: limits, rollover, the zip, the chunks.
- ``spec``: the public data types: column specs, what an int stands for, the write statistics.
- ``errors``: the package's exceptions.
- ``sources``: rows that arrive as XML, written by a source with the writer's own encoders.
- ``sheet``: one worksheet's XML, streamed: head (views, widths, header row), rows, tail.
- ``parts``: the parts around the sheets: workbook, relationships, content types, properties.
- ``styles``: the minimal styles.xml: a bold header, date formats, per-column number formats.
- ``theme``: the DrawingML theme every workbook Excel creates carries.
- ``names``: column letters and sheet names as Excel accepts them.
- ``rows``: one `<row>` element per data row, through a generated encoder per row shape.
- ``cells``: the reference cell encoders: value type to one `<c>` element.
- ``meanings``: ints that stand for other values (``Column.ints``): their values and cell text.
- ``native``: rows of typed primitive cells to `<row>` XML, in compiled code (``_rowxml``).
- ``escape``: text as SpreadsheetML wants it: XML escapes, ``_xHHHH_``, the 32,767-unit limit.
- ``dates``: dates and times as Excel serial numbers (1900 date system).
- ``deflate``: the sheets' deflate: ISA-L's at level 1, zlib's otherwise.
- ``zipfix``: fix-ups of zipstream-ng's header records: timestamps, no needless Zip64.
- ``_rowxml``: the C extension behind ``native`` (optional: built where a compiler is).
"""

from xlsx.errors import UnsupportedValueError, XlsxError, XlsxValueError
from xlsx.sources import RowXmlSource
from xlsx.spec import Column, DayCount, IntMeaning, ScaledDecimal, TickCount, WriteStats
from xlsx.workbook import (
    DEFAULT_COMPRESS_LEVEL,
    DEFAULT_MAX_SHEET_XML_BYTES,
    EXCEL_MAX_ROWS,
    OUTPUT_CHUNK,
    Sheet,
    stream_workbook,
    stream_xlsx,
)

__all__ = [
    "DEFAULT_COMPRESS_LEVEL",
    "DEFAULT_MAX_SHEET_XML_BYTES",
    "EXCEL_MAX_ROWS",
    "OUTPUT_CHUNK",
    "Column",
    "DayCount",
    "IntMeaning",
    "RowXmlSource",
    "ScaledDecimal",
    "Sheet",
    "TickCount",
    "UnsupportedValueError",
    "WriteStats",
    "XlsxError",
    "XlsxValueError",
    "stream_workbook",
    "stream_xlsx",
]
