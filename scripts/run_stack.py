"""``make run``: dev database (1433), export API (3001), BFF and page (3000); Ctrl-C stops all."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Sequence

from scripts.stack import HOST, StackError, running_stack


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.run_stack", description=__doc__)
    # 0 means any free port; the Ready line shows the ports actually used (the tests read it).
    parser.add_argument("--db-port", type=int, default=1433, help="TDS dev database (1433)")
    parser.add_argument("--api-port", type=int, default=3001, help="export API (3001)")
    parser.add_argument("--bff-port", type=int, default=3000, help="BFF and page (3000)")
    args = parser.parse_args(argv)

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        with running_stack(
            db_port=args.db_port, api_port=args.api_port, bff_port=args.bff_port
        ) as stack:
            db_port = args.db_port if stack.devdb is None else stack.devdb.port
            print(
                "\nAPI to dev database: encrypted, verified against the stack's own CA "
                "(written at start-up; --mssql-encrypt on, as production runs).",
                flush=True,
            )
            print(
                f"\nReady: open {stack.bff.url}/ in a browser "
                f"(API {stack.api.url}, dev database {HOST}:{db_port}).\n"
                f"  curl -fo report.xlsx '{stack.bff.url}/exports/report?rowCount=100000'\n"
                f"  curl -fo sales.xlsx '{stack.bff.url}/exports/sales?from=2024-01-01"
                "&to=2024-12-31'\n"
                "Ctrl-C stops everything.\n",
                flush=True,
            )
            while not stop.wait(0.5):
                for service in stack.services():
                    if service.process.poll() is not None:
                        print(f"{service.name} exited ({service.process.returncode}); stopping")
                        return 1
            print("stopping BFF, API and dev database...", flush=True)
    except StackError as exc:
        print(f"could not start the stack: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
