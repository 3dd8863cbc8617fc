"""The row code alone, in one process, on the report's wire bytes: ``python -m
tests.bench.compiled_rows [--rows 200000]``.

ns per row of the report's 10-column layout, on the bytes the TDS dev server sends for it
(no socket, no server: what each layer costs by itself, best of ``--repeat``):

- **to XML**, what an export does with a row: the generated Python code (decoder and row code
  in one) against the compiled scanner and the compiled XML writer, a 64 KiB batch at a time;
- **cells**: the compiled scanner alone, 1,024 rows a call and 50 (a 4 KiB packet);
- **tuples**, what ``FastRows.fetch()`` gives: the generated decoder against the scanner with
  the C tuple builder, a 32 KiB packet at a time.

The row_path benchmark measures the same code over TCP against pytds; this one shows where a
row's time goes inside it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import time
from collections.abc import Callable, Sequence
from typing import Any

import xlsx
from server.rowsource import XlsxRowText
from sql.devserver.resultset import ReportEncoder
from tdsrows import scan
from tdsrows.codegen import compile_layout
from tdsrows.genfill import CompiledText
from tdsrows.layout import Column, Framing, Kind, Layout
from tdsrows.scan import RowScanner
from tdsrows.scandecode import ScannedDecode
from tdsrows.scanfill import ScannedFill
from tdsrows.stops import FULL, INCOMPLETE
from tdsrows.values import RAW_KINDS
from xlsx.cells import CellEncoder
from xlsx.rows import RowEncoder
from xlsx.spec import WriteStats

DONE = b"\xfd" + bytes(12)  # a DONE token after the rows (MS-TDS 2.2.7.6)
# A TDS packet at the largest size SQL Server negotiates (32,767 bytes, MS-TDS 2.2.6.4), near
# enough: what one fetch() decodes at a time.
PACKET_BYTES = 32_768
# What the writer asks of a row source per call (xlsx.sheet.BATCH_CHARS).
BATCH_CHARS = 64 * 1024
_BYTE, _USHORT = Framing.BYTE_LEN, Framing.USHORT_LEN
# dbo.spGenerateData's columns as pytds describes them (sql/report_data.py).
REPORT_LAYOUT = Layout.of(
    [
        Column("Id", Kind.INT, _BYTE, 4),
        Column("ColInt", Kind.INT, _BYTE, 4),
        Column("ColBigInt", Kind.INT, _BYTE, 8),
        Column("ColDecimal", Kind.DECIMAL, _BYTE, 9, scale=4),
        Column("ColVarchar", Kind.TEXT, _USHORT, 100, codec="cp1252"),
        Column("ColNVarchar", Kind.NTEXT, _USHORT, 200),
        Column("ColDate", Kind.DATE, _BYTE, 3),
        Column("ColDateTime", Kind.DATETIME2, _BYTE, 7, scale=3),
        Column("ColBit", Kind.BIT, _BYTE, 1),
        Column("ColFloat", Kind.FLOAT, _BYTE, 8),
    ]
)
_TDS_DAY_ZERO = dt.date(1, 1, 1)


def _best_of(repeat: int, run: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - began)
    return best


def _report_text() -> XlsxRowText:
    """The export's row text for the report (its meanings: decimals, days and ticks as ints;
    milliseconds shown in the datetime column, as server/report.py formats it)."""
    meanings: list[xlsx.IntMeaning | None] = [None] * len(REPORT_LAYOUT.columns)
    meanings[3] = xlsx.ScaledDecimal(4)
    meanings[6] = xlsx.DayCount(_TDS_DAY_ZERO)
    meanings[7] = xlsx.TickCount(1000, _TDS_DAY_ZERO)
    decimals = [3 if i == 7 else 0 for i in range(len(meanings))]
    letters = [chr(ord("A") + i) for i in range(len(meanings))]
    styles = [0] * len(meanings)
    return XlsxRowText(RowEncoder(CellEncoder(letters, styles, WriteStats(), decimals, meanings)))


def timings(count: int, repeat: int) -> list[tuple[str, float]]:
    data = ReportEncoder().encode_rows(1, count) + DONE
    text = _report_text()
    python_fill = CompiledText(REPORT_LAYOUT, text, raw_kinds=RAW_KINDS).fill
    tables = [None] * len(REPORT_LAYOUT.columns)
    compiled_text = text.compiled(RowScanner(REPORT_LAYOUT, RAW_KINDS).primitives, tables)
    assert compiled_text is not None, "the compiled row code is not built"
    compiled_fill = ScannedFill(
        RowScanner(REPORT_LAYOUT, RAW_KINDS), compiled_text, python_fill
    ).fill
    objects = compile_layout(REPORT_LAYOUT)
    compiled_tuples = ScannedDecode(objects)

    def xml(fill: Callable[..., tuple[int, int, int, int]]) -> Callable[[], None]:
        def run() -> None:
            pos, stop, r = 0, FULL, 0
            while stop == FULL:
                out: list[Any] = []
                pos, stop, r, _ = fill(data, pos, out, r, count, BATCH_CHARS)
                if r == count:
                    break
            assert r == count

        return run

    def cells(batch: int) -> Callable[[], None]:
        scanner = RowScanner(REPORT_LAYOUT, RAW_KINDS, batch_rows=batch)

        def run() -> None:
            pos, stop, total = 0, FULL, 0
            while stop == FULL:
                pos, stop, n = scanner.scan(data, pos, batch)
                total += n
            assert total == count

        return run

    def tuples(decode: Callable[[bytes, int, list[Any]], tuple[int, int]]) -> Callable[[], None]:
        def run() -> None:
            pos, stop, total = 0, INCOMPLETE, 0
            while stop == INCOMPLETE:
                rows: list[tuple[Any, ...]] = []
                used, stop = decode(data[pos : pos + PACKET_BYTES], 0, rows)
                pos += used
                total += len(rows)
            assert total == count

        return run

    def generated(chunk: bytes, pos: int, out: list[Any]) -> tuple[int, int]:
        return objects.decode(chunk, pos, out.append)

    return [
        ("to XML, generated Python code", _best_of(repeat, xml(python_fill))),
        ("to XML, compiled (scanner + XML writer)", _best_of(repeat, xml(compiled_fill))),
        (f"cells, scanner, {scan.BATCH_ROWS} rows a call", _best_of(repeat, cells(1024))),
        ("cells, scanner, 50 rows a call", _best_of(repeat, cells(50))),
        ("tuples, generated decoder", _best_of(repeat, tuples(generated))),
        (
            "tuples, compiled (scanner + tuple builder)",
            _best_of(repeat, tuples(compiled_tuples.decode_into)),
        ),
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.bench.compiled_rows", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--rows", type=int, default=200_000, help="report rows per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per path (best kept)")
    args = parser.parse_args(argv)
    results = timings(args.rows, args.repeat)
    print(f"\nThe row code alone, {args.rows:,} report rows, one process, best of {args.repeat}:\n")
    print("| path | ns per row | vs generated |")
    print("|---|---:|---:|")
    # Each compiled path against the generated code doing the same job (cells have none).
    base = {"to XML": results[0][1], "tuples": results[4][1]}
    for label, seconds in results:
        kind = label.split(",")[0]
        ratio = f"{base[kind] / seconds:.1f}x" if kind in base else "-"
        print(f"| {label} | {seconds / args.rows * 1e9:,.0f} | {ratio} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
