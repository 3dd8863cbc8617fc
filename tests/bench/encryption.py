"""What encrypting the connection to the database costs: ``python -m tests.bench.encryption``.

Two dev stacks in one run (dev database -> API -> BFF -> curl), one whose API connects in clear
(``--mssql-encrypt off``) and one encrypted and verified (``on``: TLS negotiated in PRELOGIN;
``strict``: TDS 8.0), each downloading the same report; downloads alternate between the stacks
(``--repeat`` rounds, best of each) so the machine's mood hits both alike. Target: encrypted at
least 0.8x the rows/s in clear.

Prints a Markdown table and the verdict.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from scripts.stack import Stack, running_stack
from tests.bench.e2e_bff import download

# What encryption may cost: a fifth of the speed at most (encrypted over plain rows/s).
TARGET_RATIO = 0.8
MODES = ("off", "on", "strict")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.encryption", description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows per download")
    parser.add_argument("--repeat", type=int, default=3, help="rounds (best of each)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    env = {"BFF_MAX_DOWNLOADS_PER_CLIENT": "0"}
    best: dict[str, float] = {}
    with (
        tempfile.TemporaryDirectory(prefix="bench-encryption-") as tmp,
        contextlib.ExitStack() as stacks,
    ):
        scratch = Path(tmp)
        started: dict[str, Stack] = {}
        for mode in MODES:
            api_env = {} if mode == "off" else {"MSSQL_ENCRYPT": mode}
            started[mode] = stacks.enter_context(
                running_stack(log_dir=scratch, bff_env=env, api_env=api_env, encrypt=mode != "off")
            )
        url = "{}/exports/report?rowCount={}"
        for stack in started.values():  # warm: connections, code paths
            download(url.format(stack.bff.url, 1000), scratch / "warm.xlsx")
        for _ in range(args.repeat):
            for mode, stack in started.items():
                seconds, _ttfb, _size = download(
                    url.format(stack.bff.url, args.rows), scratch / f"{mode}.xlsx"
                )
                best[mode] = min(best.get(mode, seconds), seconds)
    now = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    print(f"Measured {now}, load average {os.getloadavg()[0]:.1f}\n")
    print(f"{args.rows:,} rows through the BFF, best of {args.repeat}:\n")
    print("| API to database | seconds | rows/s | vs in clear |")
    print("|---|---:|---:|---:|")
    for mode in MODES:
        ratio = best["off"] / best[mode]
        print(f"| {mode} | {best[mode]:.2f} | {args.rows / best[mode]:,.0f} | {ratio:.2f}x |")
    worst = min(best["off"] / best[m] for m in MODES if m != "off")
    met = worst >= TARGET_RATIO
    print(f"\nEncrypted: {worst:.2f}x the rows/s in clear at worst (target >= {TARGET_RATIO}x)")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
