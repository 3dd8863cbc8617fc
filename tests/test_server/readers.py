"""Read a downloaded workbook back with two independent readers and compare with the database.

openpyxl and python-calamine each return cells in their own types; ``expected_*`` turn what
pytds returned (:func:`sql.report_data.row_values`) into what that reader must show.
"""

from __future__ import annotations

import datetime
import decimal
import io
import zipfile
from collections.abc import Iterator

import openpyxl
import python_calamine

from sql.report_data import row_values

MAX_EXACT_INT = 2**53 - 1  # beyond this the writer stores integers as text (every digit kept)

HEADER = (
    "ID",
    "Integer",
    "Big Integer",
    "Decimal",
    "Varchar",
    "NVarchar",
    "Date",
    "DateTime",
    "Bit",
    "Float",
)


def _expected(value: object, *, empty: object, calamine: bool) -> object:
    if value is None:
        return empty
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if abs(value) > MAX_EXACT_INT:
            return str(value)
        return float(value) if calamine else value
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, datetime.datetime):
        return value
    if isinstance(value, datetime.date):
        return value if calamine else datetime.datetime.combine(value, datetime.time())
    return value


def expected_openpyxl(n: int) -> tuple[object, ...]:
    return tuple(_expected(v, empty=None, calamine=False) for v in row_values(n))


def expected_calamine(n: int) -> tuple[object, ...]:
    return tuple(_expected(v, empty="", calamine=True) for v in row_values(n))


def openpyxl_sheets(body: bytes) -> list[tuple[str, list[tuple[object, ...]]]]:
    """(sheet name, rows) per sheet; rows padded to the header's width (read-only mode trims)."""
    workbook = openpyxl.load_workbook(io.BytesIO(body), read_only=True)
    try:
        sheets = []
        for sheet in workbook.worksheets:
            rows = [
                tuple(row) + (None,) * (len(HEADER) - len(row))
                for row in sheet.iter_rows(values_only=True)
            ]
            sheets.append((sheet.title, rows))
        return sheets
    finally:
        workbook.close()


def calamine_sheets(body: bytes) -> list[tuple[str, list[tuple[object, ...]]]]:
    workbook = python_calamine.CalamineWorkbook.from_filelike(io.BytesIO(body))
    sheets = []
    for name in workbook.sheet_names:
        rows = workbook.get_sheet_by_name(name).to_python(skip_empty_area=False)
        sheets.append((name, [tuple(row) + ("",) * (len(HEADER) - len(row)) for row in rows]))
    return sheets


def data_rows(sheets: list[tuple[str, list[tuple[object, ...]]]]) -> Iterator[tuple[object, ...]]:
    """Every sheet's rows after its header (asserting each sheet starts with the header)."""
    for name, rows in sheets:
        assert rows, f"sheet {name!r} is empty"
        assert rows[0] == HEADER, f"sheet {name!r} header: {rows[0]!r}"
        yield from rows[1:]


def is_valid_zip(body: bytes) -> bool:
    try:
        with zipfile.ZipFile(io.BytesIO(body)) as archive:
            return archive.testzip() is None
    except zipfile.BadZipFile:
        return False
