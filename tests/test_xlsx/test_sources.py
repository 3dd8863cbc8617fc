"""Row sources that write their own `<row>` XML (xlsx.sources.RowXmlSource).

A source here writes each row with the writer's own row code, compiled per shape from
``RowEncoder.row_code`` (what a generated decoder does): the workbook must be exactly the one
written from the same rows given as tuples, across sheet limits, and a source that stops in
the middle must never look like one that ended.
"""

from __future__ import annotations

import datetime as dt
import decimal
import io
import random
import re
import zipfile
from collections.abc import Callable, Sequence
from typing import Any

import pytest

import xlsx
from tests.test_xlsx.support import random_value, write
from xlsx.rows import RowEncoder


class CompiledSource:
    """Rows written with code compiled from RowEncoder.row_code, one function per shape."""

    def __init__(self, rows: Sequence[Sequence[object]]) -> None:
        self._rows = list(rows)
        self._next = 0
        self._encoder: RowEncoder | None = None
        self._compiled: dict[tuple[type, ...], Callable[..., str]] = {}

    def bind(self, encoder: RowEncoder) -> None:
        self._encoder = encoder

    @property
    def finished(self) -> bool:
        return self._next >= len(self._rows)

    def _function(self, row: Sequence[object]) -> Callable[..., str]:
        assert self._encoder is not None
        shape = tuple(map(type, row)) + (type(None),) * (self._encoder.width - len(row))
        fn = self._compiled.get(shape)
        if fn is None:
            names = [f"value{i}" for i in range(len(shape))]
            body = self._encoder.row_code(shape, names)
            source = "\n".join(
                [
                    f"def row({', '.join(names)}, rs):",
                    *("    " + line for line in body),
                    "    return xml",
                ]
            )
            namespace = self._encoder.namespace()
            exec(source, namespace)
            fn = self._compiled[shape] = namespace["row"]
        return fn

    def fill(self, out: list[str], last: int, limit: int, room: int) -> int:
        r = last
        while r < limit and self._next < len(self._rows):
            row = list(self._rows[self._next])
            assert self._encoder is not None
            values = row + [None] * (self._encoder.width - len(row))
            xml = self._function(row)(*values, str(r + 1))
            if len(xml) > room:
                break
            room -= len(xml)
            out.append(xml)
            self._next += 1
            r += 1
        return r


HEADER = ["n", "text", "amount", "day", "when"]
WIDTHS = [xlsx.Column(width=10) for _ in HEADER]  # widths fixed: a source shows no first row


def sample(count: int) -> list[tuple[object, ...]]:
    return [
        (
            n,
            f"row {n}" if n % 7 else None,
            decimal.Decimal(n) / 8,
            dt.date(2024, 1, 1) + dt.timedelta(days=n),
            dt.datetime(2024, 1, 1, 12) + dt.timedelta(seconds=n * 7.5),
        )
        for n in range(count)
    ]


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"max_rows_per_sheet": 7},
        {"max_sheet_xml_bytes": 4_000},
    ],
    ids=["one sheet", "row limit", "byte limit"],
)
def test_a_source_writes_the_workbook_the_tuples_write(options: dict[str, Any]) -> None:
    rows = sample(40)
    expected = write(HEADER, rows, columns=WIDTHS, **options)
    got = write(HEADER, CompiledSource(rows), columns=WIDTHS, **options)
    if "max_sheet_xml_bytes" in options:
        # A source cannot take a row back: near the byte limit its sheets end a little early.
        assert _all_rows(got) == _all_rows(expected)

        def sheets(data: bytes) -> int:
            return sum(name.startswith("xl/worksheets/") for name in _parts(data))

        assert sheets(got) >= sheets(expected) > 1
    else:
        assert _parts(got) == _parts(expected)


def test_random_rows_through_a_source() -> None:
    rnd = random.Random(11)
    width = 6
    rows = [[random_value(rnd) for _ in range(rnd.randrange(0, width + 1))] for _ in range(500)]
    header = [f"c{i}" for i in range(width)]
    columns = [xlsx.Column(width=12) for _ in header]
    got = write(header, CompiledSource(rows), columns=columns)
    assert _parts(got) == _parts(write(header, rows, columns=columns))


def test_an_empty_source_still_writes_the_header() -> None:
    got = write(HEADER, CompiledSource([]), columns=WIDTHS)
    assert _parts(got) == _parts(write(HEADER, [], columns=WIDTHS))


def test_a_row_too_large_for_an_empty_sheet_is_an_error() -> None:
    with pytest.raises(xlsx.XlsxValueError, match="alone needs more XML"):
        write(
            HEADER, CompiledSource([(1, "x" * 5_000, None, None, None)]), max_sheet_xml_bytes=2_000
        )


def test_an_exception_from_the_source_ends_the_output_without_a_zip_end() -> None:
    class Failing(CompiledSource):
        def fill(self, out: list[str], last: int, limit: int, room: int) -> int:
            if last > 10:
                raise RuntimeError("the database went away")
            return super().fill(out, last, min(limit, last + 5), room)

    chunks: list[bytes] = []
    stream = xlsx.stream_xlsx(HEADER, Failing(sample(100)), columns=WIDTHS)
    with pytest.raises(RuntimeError, match="went away"):
        chunks.extend(stream)
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(io.BytesIO(b"".join(chunks)))


def _parts(data: bytes) -> dict[str, bytes]:
    """Every part of the package, inflated: the same content may deflate to other bytes when
    it reaches the compressor in other pieces."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _all_rows(data: bytes) -> list[bytes]:
    """Every data row's cells, sheet after sheet, without the row and cell numbers."""
    out = []
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for name in sorted(n for n in archive.namelist() if n.startswith("xl/worksheets/")):
            xml = archive.read(name)
            for row in re.findall(rb'<row r="(\d+)">(.*?)</row>', xml):
                if row[0] != b"1":
                    out.append(re.sub(rb' r="[A-Z]+\d+"', b"", row[1]))
    return out
