"""Benchmark of the TDS dev server: ``python -m tests.bench.devserver [--sizes 100000,1000000]``.

The server runs in a process of its own (as in production use, it does not share the client's
GIL).  Two readers:

* raw: tests/test_sql/tdsclient.py logs in, sends the RPC and counts packets without decoding
  rows: the server's own speed;
* pytds: ``cursor.callproc`` + ``fetchmany`` over every row: what an export actually gets, with
  the client's CPU seconds (getrusage) and resident-memory growth.

Then how fast a cancel is answered: pytds reads a few rows of a 1M-row ``spGenerateData``
(packet size 32767) and calls ``cursor.cancel()`` on its own thread, which sends an ATTENTION
and reads (decoding) whatever is in flight until DONE(ATTN).  Measured at once after the rows,
and after the server has filled the socket and paused (the most in flight); the rows in flight
come from ``dbo.spDevServerStats``.

Prints Markdown tables (docs/benchmarks.md's dev server figures come from them).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import resource
import statistics
import time
from dataclasses import dataclass
from importlib.metadata import version
from multiprocessing.connection import Connection
from typing import Any

import psutil

from sql.devserver import DEV_DATABASE, DEV_PASSWORD, DEV_USER
from tests.devclient import dev_connect

DEFAULT_SIZES = (100_000, 1_000_000)
FETCH_BATCH = 5000  # rows per fetchmany: pytds reads one packet at a time either way
CANCEL_ROWS = 1_000_000  # the request a cancel interrupts
CANCEL_PACKET_SIZE = 32767
CANCEL_AFTER = 5  # rows read before cancel()
DEFAULT_CANCELS = 5
STILL = 0.2  # seconds rows_sent must not move to count as "the server paused"


def _serve(pipe: Connection) -> None:
    import asyncio

    from sql.devserver import DevServer

    async def main() -> None:
        async with DevServer(host="127.0.0.1", port=0) as server:
            pipe.send(server.port)
            await asyncio.get_running_loop().run_in_executor(None, pipe.recv)

    asyncio.run(main())


@dataclass
class Result:
    reader: str
    rows: int
    packet_size: int
    seconds: float
    payload_bytes: int
    client_cpu: float
    server_cpu: float
    client_rss_growth: int

    def row(self) -> str:
        # pytds hides the bytes it read; only the raw reader counts payload.
        mib = f"{self.payload_bytes / 2**20 / self.seconds:.1f}" if self.payload_bytes else "n/a"
        return (
            f"| {self.reader} | {self.rows:,} | {self.packet_size} | {self.seconds:.2f} "
            f"| {self.rows / self.seconds:,.0f} | {mib} "
            f"| {self.client_cpu:.2f} | {self.server_cpu:.2f} "
            f"| {self.client_rss_growth / 2**20:.1f} |"
        )


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _server_cpu(proc: psutil.Process) -> float:
    times = proc.cpu_times()
    return float(times.user + times.system)


def bench_raw(port: int, server: psutil.Process, rows: int, packet_size: int) -> Result:
    from tests.test_sql.tdsclient import RawClient, rpc_message

    with RawClient("127.0.0.1", port) as client:
        client.login(DEV_USER, DEV_PASSWORD, DEV_DATABASE, packet_size)
        rss, cpu, scpu = psutil.Process().memory_info().rss, _cpu(), _server_cpu(server)
        started = time.perf_counter()
        client.sock.sendall(rpc_message("dbo.spGenerateData", ("", rows), packet_size=packet_size))
        total, counted, _tail = client.count_rows()
        seconds = time.perf_counter() - started
        assert counted == rows, (counted, rows)
        return Result(
            "raw socket",
            rows,
            packet_size,
            seconds,
            total,
            _cpu() - cpu,
            _server_cpu(server) - scpu,
            psutil.Process().memory_info().rss - rss,
        )


def bench_pytds(port: int, server: psutil.Process, rows: int, packet_size: int) -> Result:
    conn = dev_connect(port, blocksize=packet_size)
    try:
        cur = conn.cursor()
        rss, cpu, scpu = psutil.Process().memory_info().rss, _cpu(), _server_cpu(server)
        started = time.perf_counter()
        cur.callproc("dbo.spGenerateData", (rows,))
        got = 0
        while batch := cur.fetchmany(FETCH_BATCH):
            got += len(batch)
        seconds = time.perf_counter() - started
        assert got == rows, (got, rows)
        while cur.nextset():
            pass
        return Result(
            "pytds fetchmany",
            rows,
            packet_size,
            seconds,
            0,
            _cpu() - cpu,
            _server_cpu(server) - scpu,
            psutil.Process().memory_info().rss - rss,
        )
    finally:
        conn.close()


def _counters(conn: Any) -> dict[str, int]:
    with conn.cursor() as cur:
        cur.callproc("dbo.spDevServerStats", ())
        names = [d[0] for d in cur.description]
        row = cur.fetchone()
        while cur.nextset():  # read to the end: closing early would send an attention
            pass
    return dict(zip(names, row, strict=True))


@dataclass
class CancelResult:
    when: str
    millis: list[float]
    in_flight: list[int]

    def row(self) -> str:
        return (
            f"| {self.when} | {len(self.millis)} | {statistics.median(self.millis):.0f} "
            f"| {max(self.millis):.0f} | {statistics.median(self.in_flight):,.0f} |"
        )


def _wait_until_paused(watch: Any) -> None:
    """Until the server's rows_sent stops moving: the socket is full, production waits."""
    previous = _counters(watch)["rows_sent"]
    while True:
        time.sleep(STILL)
        now = _counters(watch)["rows_sent"]
        if now == previous:
            return
        previous = now


def bench_cancel(port: int, repeat: int, paused: bool) -> CancelResult:
    """``repeat`` cancels; each one's time and the rows pytds decoded while cancelling."""
    millis: list[float] = []
    in_flight: list[int] = []
    with dev_connect(port, blocksize=CANCEL_PACKET_SIZE) as conn, dev_connect(port) as watch:
        for _ in range(repeat):
            before = _counters(watch)
            with conn.cursor() as cur:
                cur.callproc("dbo.spGenerateData", (CANCEL_ROWS,))
                for _ in range(CANCEL_AFTER):
                    cur.fetchone()
                if paused:
                    _wait_until_paused(watch)
                started = time.perf_counter()
                cur.cancel()
                millis.append((time.perf_counter() - started) * 1000)
            after = _counters(watch)
            assert after["attentions_answered"] - before["attentions_answered"] == 1
            in_flight.append(after["rows_sent"] - before["rows_sent"] - CANCEL_AFTER)
    return CancelResult("after the server paused" if paused else "at once", millis, in_flight)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.devserver", description=__doc__)
    parser.add_argument(
        "--sizes",
        default=",".join(str(s) for s in DEFAULT_SIZES),
        help="comma-separated row counts (default: %(default)s)",
    )
    parser.add_argument("--packet-sizes", default="4096,32767")
    parser.add_argument("--no-pytds", action="store_true", help="only the raw-socket reader")
    parser.add_argument(
        "--cancels",
        type=int,
        default=DEFAULT_CANCELS,
        help="pytds cancels to time in each way (0: none; default %(default)s)",
    )
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    packet_sizes = [int(s) for s in args.packet_sizes.split(",")]

    parent, child = multiprocessing.Pipe()
    proc = multiprocessing.get_context("spawn").Process(target=_serve, args=(child,), daemon=True)
    proc.start()
    try:
        port = parent.recv()
        assert proc.pid is not None
        server = psutil.Process(proc.pid)
        results = []
        for rows in sizes:
            for packet_size in packet_sizes:
                results.append(bench_raw(port, server, rows, packet_size))
            if not args.no_pytds:
                for packet_size in packet_sizes:
                    results.append(bench_pytds(port, server, rows, packet_size))
        cancels = (
            [bench_cancel(port, args.cancels, paused) for paused in (False, True)]
            if args.cancels
            else []
        )
    finally:
        parent.send("stop")
        proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()

    print(
        f"TDS dev server benchmark: {platform.python_implementation()} "
        f"{platform.python_version()}, {os.cpu_count()} CPUs, pytds {version('python-tds')}\n"
    )
    print(
        "| reader | rows | packet size | seconds | rows/s | MiB/s (payload) "
        "| client CPU s | server CPU s | client RSS growth MiB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for result in results:
        print(result.row())
    if args.cancels:
        print(
            f"\ncursor.cancel() of a {CANCEL_ROWS:,}-row spGenerateData after {CANCEL_AFTER} rows,"
            f" packet size {CANCEL_PACKET_SIZE}: attention sent to DONE(ATTN) read\n"
        )
        print("| cancel | cancels | median ms | max ms | rows decoded while cancelling |")
        print("|---|---:|---:|---:|---:|")
        for cancel in cancels:
            print(cancel.row())


if __name__ == "__main__":
    main()
