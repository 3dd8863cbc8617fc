"""Export API benchmark: ``python -m tests.bench.export_api [--sizes 10000,100000,1000000]``.

End to end, each part in its own process: the TDS dev server (``python -m sql.devserver``), the
export API (``python -m server``) and curl reading the body. For each size it also times a
plain pytds fetch of the same rows from the same dev server (the driver's own ceiling, no
workbook, no HTTP) and reports:

- the export's rows/s, time to first byte (curl's ``time_starttransfer``), wall time and the
  API's CPU time (its HTTP process and its worker processes);
- the ratio export time / plain fetch time (target: at most 1.25), by wall clock and by CPU
  seconds (the API's processes vs the fetching process: steadier on a shared machine);
- the API's peak RSS (psutil, every process sampled every 50 ms while the download runs,
  their peaks summed) and its growth from the smallest to the largest size (target: 1M rows
  within +20 MB of 10k rows).

A fair comparison: both sides ask for the same TDS packet size (passed to the API explicitly),
the plain fetch iterates the cursor the usual way and keeps no row, and the API runs with its
production defaults otherwise (memory sampled every 5,000 rows, INFO log). Each size is measured
``--repeat`` times, plain fetch and export alternating, and the best of each is reported.

Prints a Markdown table and the two verdicts. The machine is shared and has two cores: the
dev server, the API and curl compete for them, so run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from scripts.stack import (
    Service,
    free_port,
    start_api,
    start_devdb,
)
from server.config import DEFAULT_PACKET_SIZE, DEFAULT_PROCEDURE
from tests.bench.e2e_bff import RssSampler, download
from tests.devclient import dev_connect

DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
# The API's own default, asked for explicitly on both sides (docs/driver.md: the packet size
# changes pytds' speed, so a mismatch would skew the ratio).
PACKET_SIZE = DEFAULT_PACKET_SIZE
# Best of three: enough to shed most of a shared machine's noise, short enough for 1M rows.
DEFAULT_REPEAT = 3
# The export API's goals (docs/design.md, Performance goals).
TARGET_RATIO = 1.25
TARGET_RSS_GROWTH_MIB = 20.0
MIB = 1024 * 1024


@dataclass
class Result:
    rows: int
    export_s: float
    ttfb_s: float
    size_bytes: int
    api_cpu_s: float
    api_peak_rss: int
    plain_s: float
    plain_cpu_s: float

    @property
    def ratio(self) -> float:
        return self.export_s / self.plain_s

    @property
    def cpu_ratio(self) -> float:
        """API CPU time / plain fetch CPU time: steadier than wall time on a busy machine."""
        return self.api_cpu_s / self.plain_cpu_s


def plain_fetch(db_port: int, rows: int) -> tuple[float, float]:
    """(seconds, CPU seconds) for pytds alone to fetch every row, keeping none."""
    conn = dev_connect(db_port, blocksize=PACKET_SIZE)
    try:
        cursor = conn.cursor()
        started = time.perf_counter()
        cpu_started = time.process_time()
        cursor.callproc(DEFAULT_PROCEDURE, {"@RowCount": rows})
        fetched = 0
        for _row in cursor:
            fetched += 1
        while cursor.nextset():
            pass
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
    finally:
        conn.close()
    if fetched != rows:
        raise SystemExit(f"plain fetch got {fetched:,} rows, expected {rows:,}")
    return elapsed, cpu


def export(api: Service, rows: int, target: Path) -> tuple[float, float, int, float, int]:
    """(seconds, seconds to first byte, bytes, API CPU seconds, API peak RSS) for one download.
    The API is its HTTP process and its worker processes: CPU and peak RSS of all of them."""
    with RssSampler([api]) as sampler:
        total, ttfb, size = download(f"{api.url}/export/report?rowCount={rows}", target)
    with zipfile.ZipFile(target) as archive:  # a complete file: its central directory is there
        if "xl/workbook.xml" not in archive.namelist():
            raise SystemExit("the download is not a workbook")
    target.unlink()
    cpu = sum(sampler.cpu.values())  # only the API's processes are sampled
    return total, ttfb, size, cpu, sum(sampler.peaks.values())


def measure(api: Service, db_port: int, rows: int, repeat: int, scratch: Path) -> Result:
    """Best of ``repeat`` alternating runs: the fastest export and fetch by wall clock, the
    lowest CPU of each, the highest peak RSS (memory is judged on its worst run)."""
    plains: list[tuple[float, float]] = []
    exports: list[tuple[float, float, int, float, int]] = []
    for _ in range(repeat):
        plains.append(plain_fetch(db_port, rows))
        exports.append(export(api, rows, scratch / "report.xlsx"))
    fastest = min(exports, key=lambda e: e[0])
    return Result(
        rows=rows,
        export_s=fastest[0],
        ttfb_s=fastest[1],
        size_bytes=fastest[2],
        api_cpu_s=min(e[3] for e in exports),
        api_peak_rss=max(e[4] for e in exports),
        plain_s=min(p[0] for p in plains),
        plain_cpu_s=min(p[1] for p in plains),
    )


def table(results: Sequence[Result]) -> str:
    lines = [
        "| rows | export (s) | rows/s | first byte (ms) | MiB "
        "| API peak RSS, all processes (MiB) | plain pytds (s) | plain rows/s | export / plain "
        "| API CPU, all processes (s) | plain CPU (s) | CPU ratio |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.rows:,} | {r.export_s:.2f} | {r.rows / r.export_s:,.0f} | "
            f"{r.ttfb_s * 1000:.0f} | {r.size_bytes / MIB:.1f} | {r.api_peak_rss / MIB:.1f} | "
            f"{r.plain_s:.2f} | {r.rows / r.plain_s:,.0f} | {r.ratio:.2f} | "
            f"{r.api_cpu_s:.2f} | {r.plain_cpu_s:.2f} | {r.cpu_ratio:.2f} |"
        )
    return "\n".join(lines)


def verdicts(results: Sequence[Result]) -> list[str]:
    lines = []
    for r in results:
        if r.rows >= 100_000:
            ok = "meets" if r.ratio <= TARGET_RATIO else "MISSES"
            lines.append(
                f"- {r.rows:,} rows: export / plain fetch = {r.ratio:.2f} wall, "
                f"{r.cpu_ratio:.2f} CPU ({ok} the target <= {TARGET_RATIO} on wall time)"
            )
    if len(results) >= 2:
        small, large = min(results, key=lambda r: r.rows), max(results, key=lambda r: r.rows)
        growth = (large.api_peak_rss - small.api_peak_rss) / MIB
        ok = "meets" if growth <= TARGET_RSS_GROWTH_MIB else "MISSES"
        lines.append(
            f"- API peak RSS at {large.rows:,} rows vs {small.rows:,}: {growth:+.1f} MiB "
            f"({ok} the target <= +{TARGET_RSS_GROWTH_MIB:g} MiB)"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.export_api", description=__doc__)
    parser.add_argument(
        "--sizes",
        default=",".join(str(s) for s in DEFAULT_SIZES),
        help="comma-separated row counts, run smallest first (default: %(default)s)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=DEFAULT_REPEAT,
        help="measurements per size; the best is reported (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    sizes = sorted(int(s) for s in args.sizes.split(","))
    with tempfile.TemporaryDirectory(prefix="bench-export-api-") as scratch_dir:
        scratch = Path(scratch_dir)
        devdb = start_devdb(free_port(), log_dir=scratch)
        api = None
        try:
            # Production defaults except the packet size, which the plain fetch must share.
            api = start_api(
                free_port(),
                db_port=devdb.port,
                env={"MSSQL_PACKET_SIZE": str(PACKET_SIZE)},
                log_dir=scratch,
            )
            export(api, 1_000, scratch / "warmup.xlsx")  # imports, first login, pool
            plain_fetch(devdb.port, 1_000)
            results = []
            for rows in sizes:
                print(f"{rows:,} rows ...", file=sys.stderr, flush=True)
                results.append(measure(api, devdb.port, rows, max(1, args.repeat), scratch))
        finally:
            if api is not None:
                api.stop()
            devdb.stop()
    print(
        f"Export API benchmark (python {sys.version.split()[0]}, "
        f"{psutil.cpu_count()} CPUs; dev server, API and curl in separate processes)\n"
    )
    print(table(results))
    print()
    print("\n".join(verdicts(results)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
