"""Rows straight from the wire to worksheet XML: the same `<row>` elements the writer makes
from the tuples pytds decodes, for the report and for seeded random layouts, over TCP."""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Iterator
from typing import Any

import pytest

import xlsx
import xlsx.native
from server import report
from server.rowsource import FastXmlSource, RowSource
from sql.devserver import DevServer, run_in_thread
from tdsrows import RAW_KINDS, scan
from tests.devclient import dev_connect
from tests.test_tdsrows.test_random import CHOICES, SEEDS, random_result

# Rows per sheet kept small so the rows cross sheets (numbering restarts at 2 on each).
ROWS_PER_SHEET = 97


@pytest.fixture(scope="module")
def server() -> Iterator[DevServer]:
    with run_in_thread(port=0) as srv:
        yield srv


def _sheets(data: bytes) -> list[bytes]:
    """Each sheet's rows (everything between <sheetData> and </sheetData>)."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = sorted(n for n in archive.namelist() if n.startswith("xl/worksheets/"))
        return [re.search(rb"<sheetData>(.*)</sheetData>", archive.read(n), re.S)[1] for n in names]  # type: ignore[index]


# The fast path's two ways of writing rows: compiled (the row scanner and the compiled cell
# writer) and the generated Python code; both must write the writer's own bytes.
WAYS = [pytest.param("compiled", marks=pytest.mark.compiled), "python"]


def _workbook(
    conn: Any, call: tuple[str, tuple[object, ...]], fast: str | None
) -> tuple[list[bytes], bool | None]:
    """(each sheet's rows, whether the compiled code wrote them: None when the scanner does
    not read every column of the layout)."""
    compiled: bool | None = False
    with conn.cursor() as cursor:
        cursor.callproc(*call)
        if fast:
            source = RowSource(cursor, fast=True, batch_rows=1000, label="test")
            assert source.fast is not None
            source.first()
            headers, specs = report.layout(cursor.description, source.int_meanings())
            rows: Any = FastXmlSource(source.fast, compiled=fast == "compiled")
        else:
            headers, specs = report.layout(cursor.description)
            rows = [tuple(r) for r in cursor.fetchall()]
        data = b"".join(
            xlsx.stream_xlsx(headers, rows, columns=specs, max_rows_per_sheet=ROWS_PER_SHEET)
        )
        if fast:
            compiled = rows.fast.compiled
            if scan.primitives(rows.fast.layout, rows.fast.raw_kinds) is None:
                assert not compiled
                compiled = None
        while cursor.nextset():
            pass
    return _sheets(data), compiled


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("packet_size", [512, 4096, 32767])
def test_the_report_rows_are_the_writer_s_rows(
    server: DevServer, packet_size: int, way: str
) -> None:
    conn = dev_connect(server.port, blocksize=packet_size)
    try:
        call = ("dbo.spGenerateData", (1500,))
        got, compiled = _workbook(conn, call, fast=way)
        assert compiled == (way == "compiled")
        assert got == _workbook(conn, call, fast=None)[0]
    finally:
        conn.close()


# Types the row scanner reads (decimals, money and dates of every kind as the export's ints): random
# layouts of only these are written by the compiled code, every row it declines by Python.
SCANNED_CHOICES = [
    choice
    for choice in CHOICES
    if not choice[0].startswith(("uniqueidentifier", "varbinary", "time("))
]


@pytest.mark.parametrize("way", WAYS)
@pytest.mark.parametrize("types", ["every type", "scanned types"])
@pytest.mark.parametrize("seed", SEEDS)
def test_random_layouts_are_the_writer_s_rows(
    server: DevServer, seed: int, types: str, way: str
) -> None:
    if types == "every type":
        result = random_result(seed)
    else:
        result = random_result(seed + 1000, SCANNED_CHOICES, " (scanned types)")
    conn = dev_connect(server.port, blocksize=result.packet_size)
    try:
        call = ("dbo.spColumns", (result.spec,))
        got, compiled = _workbook(conn, call, fast=way)
        assert got == _workbook(conn, call, fast=None)[0], result.where
        # Every layout the scanner reads is written by the compiled code when asked for.
        assert compiled in (None, way == "compiled")
        if types == "scanned types":
            assert compiled is not None, result.where
    finally:
        conn.close()


def test_raw_kinds_are_what_the_writer_is_told(server: DevServer) -> None:
    conn = dev_connect(server.port)
    try:
        with conn.cursor() as cursor:
            cursor.callproc("dbo.spGenerateData", (1,))
            source = RowSource(cursor, fast=True, batch_rows=1, label="test")
            meanings = source.int_meanings()
            assert source.fast is not None
            kinds = [c.kind for c in source.fast.layout.columns]
            source.first()
            source.settle()
    finally:
        conn.close()
    assert meanings is not None
    assert [m is not None for m in meanings] == [k in RAW_KINDS for k in kinds]
