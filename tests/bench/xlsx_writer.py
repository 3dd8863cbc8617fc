"""Benchmark: xlsx.stream_xlsx against XlsxWriter (constant_memory) and openpyxl (write_only).

    python -m tests.bench.xlsx_writer                      # 10k, 100k, 1M rows; levels 1 3 6
    python -m tests.bench.xlsx_writer --rows 100000 --levels 1 6 --baseline-max-rows 100000
    python -m tests.bench.xlsx_writer --rows 100000 --levels 1 --baseline-max-rows 0 --repeat 3

Every writer runs in a fresh subprocess so its peak RSS (ru_maxrss) is its own. Each worker
first times the row generator alone, then the writer consuming a fresh generator and writing a
file; "writer s" is the difference, i.e. the writer's own cost with row generation subtracted.
"writer rows/s (CPU)" uses process CPU time instead of wall time, which is steadier on a shared
machine. XlsxWriter and openpyxl are slow (minutes at 1M), so by default they only run up to
--baseline-max-rows. Ratios compare writer time at the same row count, wall clock and CPU.
Prints a Markdown table (and the level comparison) for docs/benchmarks.md.
"""

import argparse
import datetime as dt
import decimal
import importlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from typing import Any

HEADER = [
    "id",
    "quantity",
    "account",
    "amount",
    "customer",
    "city",
    "order_date",
    "created_at",
    "active",
    "ratio",
]


def make_rows(n: int) -> Iterator[tuple[object, ...]]:
    """The 10 typed columns pytds would return: int, int, bigint (some beyond 2**53),
    decimal(18,4), varchar, nvarchar, date, datetime2, bit, float (some NULL)."""
    first_day = dt.date(2001, 1, 1).toordinal()
    start = dt.datetime(2020, 1, 1, 8, 0, 0)
    second = dt.timedelta(seconds=1)
    cities = [f"{name} {k}" for k in range(10) for name in ("Zürich", "Málaga", "Łódź", "東京")]
    for i in range(n):
        yield (
            i,
            (i * 7919) % 100_003 - 50_000,
            2**53 + i if i % 8 == 0 else i * 1_000_003,
            decimal.Decimal((i * 7_654_321) % 10**14).scaleb(-4),
            f"Customer {i:07d}",
            cities[i % len(cities)],
            dt.date.fromordinal(first_day + i % 9_000),
            start + second * (i * 61),
            i % 3 == 0,
            None if i % 10 == 7 else i * 0.37 + 0.001,
        )


def _write_ours(path: str, n: int, level: int) -> None:
    import xlsx

    with open(path, "wb") as f:
        for chunk in xlsx.stream_xlsx(HEADER, make_rows(n), compress_level=level):
            f.write(chunk)


def _write_xlsxwriter(path: str, n: int, level: int) -> None:
    import xlsxwriter

    wb = xlsxwriter.Workbook(
        path,
        {
            "constant_memory": True,
            "default_date_format": "yyyy-mm-dd hh:mm:ss",
            "strings_to_numbers": False,
            "strings_to_formulas": False,
            "strings_to_urls": False,
        },
    )
    ws = wb.add_worksheet("Report")
    ws.write_row(0, 0, HEADER)
    for r, row in enumerate(make_rows(n), start=1):
        ws.write_row(r, 0, row)
    wb.close()


def _write_openpyxl(path: str, n: int, level: int) -> None:
    import openpyxl

    wb = openpyxl.Workbook(write_only=True)
    ws = wb.create_sheet("Report")
    ws.append(HEADER)
    for row in make_rows(n):
        ws.append(row)
    wb.save(path)


WRITERS = {"xlsx": _write_ours, "xlsxwriter": _write_xlsxwriter, "openpyxl": _write_openpyxl}
# Imported before the clock starts: import time is not writing time (openpyxl's is ~0.2 s).
MODULES = {"xlsx": "xlsx", "xlsxwriter": "xlsxwriter", "openpyxl": "openpyxl"}


def worker(name: str, n: int, level: int) -> dict[str, Any]:
    """Runs in the subprocess: time generation alone, then the writer; report JSON."""
    importlib.import_module(MODULES[name])
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in make_rows(n):
        pass
    gen_s, gen_cpu = time.perf_counter() - t0, time.process_time() - c0
    fd, path = tempfile.mkstemp(suffix=".xlsx")
    os.close(fd)
    try:
        t0, c0 = time.perf_counter(), time.process_time()
        WRITERS[name](path, n, level)
        total_s, total_cpu = time.perf_counter() - t0, time.process_time() - c0
        size = os.path.getsize(path)
    finally:
        os.unlink(path)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    return {
        "gen_s": gen_s,
        "total_s": total_s,
        "writer_cpu_s": max(total_cpu - gen_cpu, 1e-9),
        "size": size,
        "rss_mb": rss_mb,
    }


def run(name: str, n: int, level: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "tests.bench.xlsx_writer", "--worker", name, str(n), str(level)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    result.update(writer=name, rows=n, level=level)
    result["writer_s"] = max(result["total_s"] - result["gen_s"], 1e-9)
    return result


def main() -> None:
    import xlsx

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--levels", type=int, nargs="+", default=[1, 3, 6])
    parser.add_argument(
        "--baseline-max-rows",
        type=int,
        default=100_000,
        help="run XlsxWriter and openpyxl only up to this many rows (they take minutes at 1M)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run each case this many times and keep the run with the least writer CPU time"
        " (the machine is shared: the least disturbed run is the writer's own cost)",
    )
    parser.add_argument(
        "--worker", nargs=3, metavar=("WRITER", "ROWS", "LEVEL"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    if args.worker:
        name, n, level = args.worker
        print(json.dumps(worker(name, int(n), int(level))))
        return

    default = xlsx.DEFAULT_COMPRESS_LEVEL
    levels = [default] + [lv for lv in args.levels if lv != default]
    results = []
    cases = []
    for n in args.rows:
        cases += [("xlsx", n, level) for level in levels]
        if n <= args.baseline_max_rows:
            cases += [(name, n, default) for name in ("xlsxwriter", "openpyxl")]
    for name, n, level in cases:
        runs = []
        for _ in range(max(args.repeat, 1)):
            runs.append(run(name, n, level))
            _progress(runs[-1])
        results.append(min(runs, key=lambda r: r["writer_cpu_s"]))

    print(
        f"\n{os.cpu_count()} CPUs, Python {sys.version.split()[0]}; default level {default};"
        f" best of {max(args.repeat, 1)} by writer CPU time\n"
    )
    print(
        "| writer | rows | level | row gen s | writer s | writer rows/s | writer rows/s (CPU) |"
        " total rows/s | size MB | peak RSS MB | vs XlsxWriter (wall / CPU) | vs openpyxl |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        base = {
            b["writer"]: (b["writer_s"], b["writer_cpu_s"])
            for b in results
            if b["rows"] == r["rows"] and b["writer"] in ("xlsxwriter", "openpyxl")
        }
        ratio = {
            k: f"{wall / r['writer_s']:.1f}x / {cpu / r['writer_cpu_s']:.1f}x"
            for k, (wall, cpu) in base.items()
        }
        print(
            f"| {r['writer']} | {r['rows']:,} | {r['level'] if r['writer'] == 'xlsx' else '-'} |"
            f" {r['gen_s']:.2f} | {r['writer_s']:.2f} | {r['rows'] / r['writer_s']:,.0f} |"
            f" {r['rows'] / r['writer_cpu_s']:,.0f} |"
            f" {r['rows'] / r['total_s']:,.0f} | {r['size'] / 1e6:.1f} | {r['rss_mb']:.1f} |"
            f" {ratio.get('xlsxwriter', '-')} | {ratio.get('openpyxl', '-')} |"
        )
    ours = [r for r in results if r["writer"] == "xlsx" and r["level"] == default]
    if len(ours) > 1:
        low, high = min(ours, key=lambda r: r["rows"]), max(ours, key=lambda r: r["rows"])
        print(
            f"\nPeak RSS at level {default}: {high['rss_mb']:.1f} MB at {high['rows']:,} rows vs"
            f" {low['rss_mb']:.1f} MB at {low['rows']:,} rows"
            f" ({high['rss_mb'] - low['rss_mb']:+.1f} MB)"
        )


def _progress(r: dict[str, Any]) -> None:
    print(
        f"  {r['writer']:<10} {r['rows']:>9,} rows level {r['level']}:"
        f" writer {r['writer_s']:.2f} s,"
        f" {r['size'] / 1e6:.1f} MB, {r['rss_mb']:.0f} MB RSS",
        file=sys.stderr,
        flush=True,
    )


if __name__ == "__main__":
    main()
