"""End-to-end benchmark through the BFF: ``python -m tests.bench.e2e_bff [--sizes 100000,1000000]``.

Starts the whole stack as processes (TDS dev server, export API, BFF; scripts.stack), then for
each size downloads the same report with the real curl binary directly from the API and
through the BFF, alternating which goes first. Reports rows/s, time to first byte and the peak
RSS of the API and of the BFF while each download ran, the BFF's throughput against going
direct (target: it costs at most 10 %), and whether the BFF's peak RSS grows with the size
(target: flat). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scripts.stack import Service, running_stack
from tests.load.monitor import api_workers

# How often RSS is read while a download runs: often enough to catch a peak that lasts a
# fraction of a second, rare enough not to cost the measured processes anything noticeable.
SAMPLE_INTERVAL_S = 0.05
MIB = 1024 * 1024


class RssSampler:
    """Peak resident memory of some processes, sampled on a background thread."""

    def __init__(self, services: Sequence[Service]) -> None:
        import psutil

        self._processes: dict[str, Any] = {}
        for service in services:
            process = psutil.Process(service.pid)
            self._processes[service.name] = process
            # The API's worker processes (the exports run there): "api worker 0", ...
            for name, pid in api_workers(service.pid).items():
                self._processes[f"{service.name} {name}"] = psutil.Process(pid)
        self.peaks = {name: 0 for name in self._processes}
        self.cpu = {name: 0.0 for name in self._processes}  # CPU seconds used meanwhile
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        for name, process in self._processes.items():
            self.peaks[name] = max(self.peaks[name], process.memory_info().rss)

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL_S):
            self._sample()

    def _cpu(self) -> dict[str, float]:
        out = {}
        for name, process in self._processes.items():
            times = process.cpu_times()
            out[name] = float(times.user + times.system)
        return out

    def __enter__(self) -> RssSampler:
        self._cpu_start = self._cpu()
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        end = self._cpu()
        self.cpu = {name: end[name] - self._cpu_start[name] for name in end}


@dataclass
class Run:
    path: str
    rows: int
    seconds: float
    ttfb: float
    size: int
    api_peak: int
    bff_peak: int
    api_cpu: float
    bff_cpu: float

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds


def download(url: str, target: Path) -> tuple[float, float, int]:
    """(total seconds, seconds to first byte, bytes) as curl measured them."""
    done = subprocess.run(
        [
            "curl",
            "-sSf",
            "-o",
            str(target),
            "-w",
            "%{time_total} %{time_starttransfer} %{size_download}",
            url,
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"curl failed ({done.returncode}) for {url}: {done.stderr}")
    total, ttfb, size = done.stdout.split()
    return float(total), float(ttfb), int(size)


def measure(path: str, url: str, rows: int, api: Service, bff: Service, scratch: Path) -> Run:
    with RssSampler([api, bff]) as rss:
        seconds, ttfb, size = download(url, scratch / f"{path}-{rows}.xlsx")
    (scratch / f"{path}-{rows}.xlsx").unlink()
    peaks, cpu = rss.peaks, rss.cpu
    return Run(path, rows, seconds, ttfb, size, peaks["api"], peaks["bff"], cpu["api"], cpu["bff"])


def table(runs: list[Run]) -> str:
    lines = [
        "| path | rows | seconds | rows/s | first byte (ms) | MiB | API peak RSS (MiB) "
        "| BFF peak RSS (MiB) | API CPU (s) | BFF CPU (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        lines.append(
            f"| {r.path} | {r.rows:,} | {r.seconds:.2f} | {r.rows_per_s:,.0f} | "
            f"{r.ttfb * 1000:.0f} | {r.size / MIB:.1f} | {r.api_peak / MIB:.1f} | "
            f"{r.bff_peak / MIB:.1f} | {r.api_cpu:.2f} | {r.bff_cpu:.2f} |"
        )
    return "\n".join(lines)


def summary(runs: list[Run], sizes: Sequence[int]) -> str:
    lines = ["", "| rows | BFF throughput vs direct | BFF cost | target |", "|---:|---:|---:|---|"]
    for rows in sizes:
        direct = [r for r in runs if r.rows == rows and r.path == "direct"]
        via = [r for r in runs if r.rows == rows and r.path == "bff"]
        best_direct = max(r.rows_per_s for r in direct)
        best_via = max(r.rows_per_s for r in via)
        ratio = best_via / best_direct
        verdict = "ok" if ratio >= 0.90 else "MISSED"
        lines.append(
            f"| {rows:,} | {ratio:.3f} | {(1 - ratio) * 100:.1f} % | <= 10 % ({verdict}) |"
        )
    small, large = min(sizes), max(sizes)
    bff_small = max(r.bff_peak for r in runs if r.rows == small)
    bff_large = max(r.bff_peak for r in runs if r.rows == large)
    growth = (bff_large - bff_small) / MIB
    lines.append("")
    lines.append(
        f"BFF peak RSS: {bff_small / MIB:.1f} MiB at {small:,} rows, {bff_large / MIB:.1f} MiB at "
        f"{large:,} rows (growth {growth:+.1f} MiB; flat = within a few MiB)."
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.e2e_bff", description=__doc__)
    parser.add_argument("--sizes", default="100000,1000000", help="comma-separated row counts")
    parser.add_argument("--repeat", type=int, default=1, help="runs per size and path")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]

    with tempfile.TemporaryDirectory(prefix="bench-e2e-bff-") as tmp:
        scratch = Path(tmp)
        logs = scratch / "logs"
        logs.mkdir()
        with running_stack(log_dir=logs) as stack:
            api, bff = stack.api, stack.bff
            # Warm-up: pool connections, imports, first-request paths.
            download(f"{bff.url}/exports/report?rowCount=1000", scratch / "warm.xlsx")
            runs: list[Run] = []
            for rows in sizes:
                for i in range(args.repeat):
                    order = ["direct", "bff"] if i % 2 == 0 else ["bff", "direct"]
                    for path in order:
                        url = (
                            f"{api.url}/export/report?rowCount={rows}"
                            if path == "direct"
                            else f"{bff.url}/exports/report?rowCount={rows}"
                        )
                        run = measure(path, url, rows, api, bff, scratch)
                        runs.append(run)
                        print(
                            f"{path:>6} {rows:>9,} rows: {run.seconds:6.2f} s "
                            f"{run.rows_per_s:9,.0f} rows/s",
                            file=sys.stderr,
                            flush=True,
                        )
    print(f"\nEnd to end, dev server -> API -> (BFF ->) curl; {time.strftime('%Y-%m-%d %H:%M')}\n")
    print(table(runs))
    print(summary(runs, sizes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
