"""Streaming XLSX writer: rows in, the bytes of one .xlsx out, as the rows arrive.

A pure generator: no files, sockets, threads or event loop. See workbook.stream_xlsx.
"""

from xlsx.errors import UnsupportedValueError, XlsxError, XlsxValueError
from xlsx.spec import Column, WriteStats
from xlsx.workbook import (
    DEFAULT_COMPRESS_LEVEL,
    DEFAULT_MAX_SHEET_XML_BYTES,
    EXCEL_MAX_ROWS,
    OUTPUT_CHUNK,
    stream_xlsx,
)

__all__ = [
    "DEFAULT_COMPRESS_LEVEL",
    "DEFAULT_MAX_SHEET_XML_BYTES",
    "EXCEL_MAX_ROWS",
    "OUTPUT_CHUNK",
    "Column",
    "UnsupportedValueError",
    "WriteStats",
    "XlsxError",
    "XlsxValueError",
    "stream_xlsx",
]
