"""Benchmark of the TDS dev server: ``python -m tests.bench.devserver [--sizes 100000,1000000]``.

The server runs in a process of its own (as in production use, it does not share the client's
GIL).  Two readers:

* raw: tests/test_sql/tdsclient.py logs in, sends the RPC and counts packets without decoding
  rows: the server's own speed;
* pytds: ``cursor.callproc`` + ``fetchmany`` over every row: what an export actually gets, with
  the client's CPU seconds (getrusage) and resident-memory growth.

Prints a Markdown table (the README's dev server table).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import resource
import time
from dataclasses import dataclass
from importlib.metadata import version
from multiprocessing.connection import Connection

import psutil

from sql.devserver import DEV_DATABASE, DEV_PASSWORD, DEV_USER
from tests.devclient import dev_connect

DEFAULT_SIZES = (100_000, 1_000_000)
FETCH_BATCH = 5000  # rows per fetchmany: pytds reads one packet at a time either way


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.devserver", description=__doc__)
    parser.add_argument(
        "--sizes",
        default=",".join(str(s) for s in DEFAULT_SIZES),
        help="comma-separated row counts (default: %(default)s)",
    )
    parser.add_argument("--packet-sizes", default="4096,32767")
    parser.add_argument("--no-pytds", action="store_true", help="only the raw-socket reader")
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


if __name__ == "__main__":
    main()
