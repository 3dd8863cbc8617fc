"""Where the export's time goes, without HTTP: ``python -m tests.bench.fetch_and_write``.

In one process and one thread, against a dev server in its own process, the same rows are
(a) fetched with pytds and dropped, (b) fetched and written by ``xlsx.stream_xlsx`` with the
API's column specs (an export in its worker, minus the export channel and HTTP), and (c) the
fetched rows, held in memory, written alone. (b)/(a) is the floor of the export API's ratio
to a plain fetch (goal: 1.25, docs/design.md); the API's measured ratio minus this floor is what
our server code, the event loop and HTTP add. CPU seconds of this process, best of --repeat.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import xlsx
from scripts.stack import start_devdb
from server import report
from server.config import DEFAULT_FETCH_BATCH_ROWS, DEFAULT_PACKET_SIZE, DEFAULT_PROCEDURE
from tests.devclient import dev_connect


def fetched(cursor: Any, rows: int) -> Iterator[tuple[object, ...]]:
    cursor.callproc(DEFAULT_PROCEDURE, (rows,))
    while batch := cursor.fetchmany(DEFAULT_FETCH_BATCH_ROWS):
        yield from batch
    while cursor.nextset():
        pass


def best_cpu(action: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.process_time()
        action()
        times.append(time.process_time() - started)
    return min(times)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.fetch_and_write")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)

    db = start_devdb(0)  # the port the process bound, read back (no probe-then-bind race)
    try:
        conn = dev_connect(db.port, blocksize=DEFAULT_PACKET_SIZE)
        cursor = conn.cursor()
        cursor.callproc(DEFAULT_PROCEDURE, (1,))
        header, specs = report.layout(cursor.description)
        cursor.fetchall()
        while cursor.nextset():
            pass

        def fetch_only() -> None:
            for _ in fetched(cursor, args.rows):
                pass

        def fetch_and_write() -> None:
            for _ in xlsx.stream_xlsx(header, fetched(cursor, args.rows), columns=specs):
                pass

        held = list(fetched(cursor, args.rows))

        def write_only() -> None:
            for _ in xlsx.stream_xlsx(header, held, columns=specs):
                pass

        plain = best_cpu(fetch_only, args.repeat)
        both = best_cpu(fetch_and_write, args.repeat)
        alone = best_cpu(write_only, args.repeat)
        conn.close()
    finally:
        db.stop()
    print(f"| {args.rows:,} rows, CPU s | fetch | fetch + write | write alone | ratio |")
    print("|---|---:|---:|---:|---:|")
    print(
        f"| best of {args.repeat} | {plain:.2f} | {both:.2f} | {alone:.2f} | {both / plain:.2f} |"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
