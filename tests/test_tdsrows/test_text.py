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
from server import report
from server.rowsource import RAW_KINDS, FastXmlSource, RowSource
from sql.devserver import DevServer, run_in_thread
from tests.devclient import dev_connect
from tests.test_tdsrows.test_random import SEEDS, random_result

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


def _workbook(conn: Any, call: tuple[str, tuple[object, ...]], fast: bool) -> list[bytes]:
    with conn.cursor() as cursor:
        cursor.callproc(*call)
        if fast:
            source = RowSource(cursor, fast=True, batch_rows=1000, label="test")
            assert source.fast is not None
            source.first()
            headers, specs = report.layout(cursor.description, source.int_meanings())
            rows: Any = FastXmlSource(source.fast)
        else:
            headers, specs = report.layout(cursor.description)
            rows = [tuple(r) for r in cursor.fetchall()]
        data = b"".join(
            xlsx.stream_xlsx(headers, rows, columns=specs, max_rows_per_sheet=ROWS_PER_SHEET)
        )
        while cursor.nextset():
            pass
    return _sheets(data)


@pytest.mark.parametrize("packet_size", [512, 4096, 32767])
def test_the_report_rows_are_the_writer_s_rows(server: DevServer, packet_size: int) -> None:
    conn = dev_connect(server.port, blocksize=packet_size)
    try:
        call = ("dbo.spGenerateData", (1500,))
        assert _workbook(conn, call, fast=True) == _workbook(conn, call, fast=False)
    finally:
        conn.close()


@pytest.mark.parametrize("seed", SEEDS)
def test_random_layouts_are_the_writer_s_rows(server: DevServer, seed: int) -> None:
    result = random_result(seed)
    conn = dev_connect(server.port, blocksize=result.packet_size)
    try:
        call = ("dbo.spColumns", (result.spec,))
        got = _workbook(conn, call, fast=True)
        assert got == _workbook(conn, call, fast=False), result.where
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
