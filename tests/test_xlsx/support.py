"""Helpers shared by the xlsx tests: write a workbook, read it back with independent readers."""

import datetime as dt
import io
import zipfile
from collections.abc import Iterable, Sequence
from typing import Any

import openpyxl
import python_calamine
from openpyxl.utils.escape import unescape

import xlsx

FIXED_TIME = dt.datetime(2024, 2, 29, 13, 37, 42)


def write(header: Sequence[str], rows: Iterable[Sequence[object]], **options: Any) -> bytes:
    options.setdefault("modified_at", FIXED_TIME)
    return b"".join(xlsx.stream_xlsx(header, rows, **options))


def read_openpyxl(data: bytes) -> dict[str, list[tuple[object, ...]]]:
    """Every sheet's rows as openpyxl reads them, `_xHHHH_` escapes decoded as Excel does.

    openpyxl leaves Excel's escapes in inline strings as they are, so they are decoded here.
    """
    wb = openpyxl.load_workbook(io.BytesIO(data))
    return {
        ws.title: [
            tuple(unescape(v) if isinstance(v, str) else v for v in row) for row in ws.values
        ]
        for ws in wb.worksheets
    }


def read_calamine(data: bytes) -> dict[str, list[list[object]]]:
    wb = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(data))
    return {
        name: wb.get_sheet_by_name(name).to_python(skip_empty_area=False) for name in wb.sheet_names
    }


def sheet_xml(data: bytes, index: int = 1) -> str:
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        return z.read(f"xl/worksheets/sheet{index}.xml").decode()
