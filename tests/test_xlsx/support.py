"""Helpers shared by the xlsx tests: write a workbook, read it back with independent readers."""

import datetime as dt
import decimal
import enum
import io
import random
import uuid
import zipfile
from collections.abc import Iterable, Sequence
from typing import Any

import openpyxl
import python_calamine
from openpyxl.utils.escape import unescape

import xlsx

FIXED_TIME = dt.datetime(2024, 2, 29, 13, 37, 42)
UTC_PLUS_2 = dt.timezone(dt.timedelta(hours=2))


class Color(enum.IntEnum):
    RED = 7


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


def random_value(rnd: random.Random) -> object:
    """A value of any supported type, edge cases over-represented."""
    kind = rnd.randrange(14)
    if kind == 0:
        return None
    if kind == 1:
        return rnd.choice([True, False])
    if kind == 2:
        return rnd.choice([rnd.randrange(-(2**60), 2**60), rnd.randrange(-1000, 1000)])
    if kind == 3:
        return rnd.choice([rnd.uniform(-1e9, 1e9), float("nan"), float("inf"), 1e-300])
    if kind == 4:
        return decimal.Decimal(rnd.randrange(-(10**20), 10**20)).scaleb(-rnd.randrange(0, 8))
    if kind in (5, 6):
        alphabet = "ab _x0041<>&\t\n\r\x01é😀\ud800\ufffe "
        return "".join(rnd.choice(alphabet) for _ in range(rnd.randrange(0, 12)))
    if kind == 7:
        return dt.date(rnd.randrange(1890, 2100), rnd.randrange(1, 13), rnd.randrange(1, 29))
    if kind == 8:
        return dt.datetime(
            rnd.randrange(1899, 2100), 1, 1, microsecond=rnd.randrange(10**6)
        ) + dt.timedelta(seconds=rnd.randrange(10**8))
    if kind == 9:
        return dt.datetime(2020, 1, 1, 12, tzinfo=UTC_PLUS_2) + dt.timedelta(
            seconds=rnd.randrange(10**6)
        )
    if kind == 10:
        return dt.time(rnd.randrange(24), rnd.randrange(60), rnd.randrange(60), rnd.randrange(10))
    if kind == 11:
        return uuid.UUID(int=rnd.getrandbits(128))
    if kind == 12:
        return rnd.randbytes(rnd.randrange(0, 6))
    return Color.RED
