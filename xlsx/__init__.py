"""Streaming XLSX writer: rows in, the bytes of one .xlsx out, as the rows arrive.

    stats = xlsx.WriteStats()
    for chunk in xlsx.stream_xlsx(["id", "name"], rows, sheet_name="Orders", stats=stats):
        send(chunk)  # ~64 KiB each; the first long before `rows` is exhausted

A pure generator: no files, sockets, threads or event loop. Typing rules per value type are in
cells.py and dates.py; limits, rollover and the zip layout in workbook.py.
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
