"""Runs every benchmark in turn: `python -m tests.bench` (what `make bench` does).

Each script measures its own baselines in the same run and prints a Markdown table; run them
one at a time on a quiet machine (two cores: anything else running shows up in the figures).
Pass a name to run one: `python -m tests.bench xlsx_writer`.
"""

from __future__ import annotations

import subprocess
import sys

BENCHMARKS = (
    "xlsx_writer",
    "devserver",
    "fetch_and_write",
    "export_api",
    "e2e_bff",
    "slow_reader",
    "row_path",
    "compiled_rows",
    "workers",
    "encryption",
)


def main(argv: list[str]) -> int:
    chosen = argv or list(BENCHMARKS)
    unknown = sorted(set(chosen) - set(BENCHMARKS))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
        return 2
    failed = 0
    for name in chosen:
        print(f"\n## {name}\n", flush=True)
        # A process of its own per benchmark, so one's memory does not inflate the next's RSS.
        command = [sys.executable, "-m", f"tests.bench.{name}"]
        failed |= subprocess.run(command, check=False).returncode
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
