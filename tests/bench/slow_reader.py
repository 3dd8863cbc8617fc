"""What a slow download holds in kernel buffers: ``python -m tests.bench.slow_reader``.

Starts the whole stack as processes (TDS dev server, export API, BFF; scripts.stack), then
downloads a large report with a client that reads ``--rate`` KiB/s (64 by default, in 100 ms
steps) from a plain socket with the kernel's default buffers, as a browser on a slow link
does: once through the BFF, once from the API directly. After ``--seconds`` (20) it reports
how many bytes the API had written for the export (its ``export_bytes_total``), how many the
BFF had relayed and how many the client had read: the differences sit in buffers between
them, nearly all in the kernel's socket buffers. ``ss`` shows where: each TCP connection's
queues (bytes not yet read by the receiving process, or not yet acknowledged by the peer) and
the memory the kernel charges each socket for them (``skmem``), per end.

Everything else that holds bytes is bounded apart (an export channel holds ~4 chunks, the
processes' own buffers ~64 KiB each); this is the part no RSS shows.
"""

from __future__ import annotations

import argparse
import re
import socket
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from scripts.stack import Service, running_stack

KIB = 1024
MIB = 1024 * 1024
# The client's read step: small steps, so its rate is smooth, as a link's is.
STEP_S = 0.1
# A download far larger than what the reader takes in the measured time (~80 MB).
ROWS = 1_000_000
_SKMEM = re.compile(r"skmem:\((?P<fields>[^)]*)\)")


@dataclass
class Socket:
    """One end of a TCP connection as ``ss`` shows it."""

    local: str
    peer: str
    recv_q: int  # received, not yet read by the process
    send_q: int  # written by the process, not yet acknowledged by the peer
    rmem: int  # kernel memory charged for received data (skmem r)
    wmem: int  # ... for data to send (skmem t + w: queued and in flight)
    rcvbuf: int  # the socket's receive buffer limit (skmem rb)
    sndbuf: int  # its send buffer limit (skmem tb)


def sockets() -> list[Socket]:
    """Every established TCP socket on loopback, with its queues and memory."""
    out = subprocess.run(
        ["ss", "-tnmH", "state", "established"], capture_output=True, text=True, check=True
    ).stdout
    found: list[Socket] = []
    lines = out.splitlines()
    for i, line in enumerate(lines):
        parts = line.split()
        if len(parts) < 4 or ":" not in parts[2]:
            continue
        memory = _SKMEM.search(line) or (
            _SKMEM.search(lines[i + 1]) if i + 1 < len(lines) else None
        )
        fields: dict[str, int] = {}
        if memory:
            for item in memory["fields"].split(","):
                name = item.rstrip("0123456789")
                fields[name] = int(item[len(name) :])
        found.append(
            Socket(
                local=parts[2],
                peer=parts[3],
                recv_q=int(parts[0]),
                send_q=int(parts[1]),
                rmem=fields.get("r", 0),
                wmem=fields.get("t", 0) + fields.get("w", 0),
                rcvbuf=fields.get("rb", 0),
                sndbuf=fields.get("tb", 0),
            )
        )
    return found


def _port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def metric(service: Service, name: str) -> float:
    with urllib.request.urlopen(f"{service.url}/metrics", timeout=10) as response:
        text = response.read().decode()
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


@dataclass
class Result:
    path: str
    api_sent: float
    bff_relayed: float | None
    client_read: int
    ends: dict[str, Socket]


def slow_download(
    url_host: str, port: int, path: str, rate_kib: int, seconds: float
) -> tuple[socket.socket, int]:
    """Start a download and read it at ``rate_kib`` KiB/s for ``seconds``; (socket, bytes)."""
    sock = socket.create_connection((url_host, port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
    per_step = int(rate_kib * KIB * STEP_S)
    read = 0
    started = time.monotonic()
    step = 0
    while time.monotonic() - started < seconds:
        want = per_step
        while want > 0:
            chunk = sock.recv(want)
            if not chunk:
                return sock, read
            read += len(chunk)
            want -= len(chunk)
        step += 1
        pause = started + step * STEP_S - time.monotonic()
        if pause > 0:
            time.sleep(pause)
    return sock, read


def measure(
    name: str,
    api: Service,
    bff: Service,
    db_port: int | None,
    through_bff: bool,
    rate_kib: int,
    seconds: float,
) -> Result:
    api_before = metric(api, "export_bytes_total")
    bff_before = metric(bff, "bff_bytes_relayed_total")
    target = bff if through_bff else api
    path = f"/exports/report?rowCount={ROWS}" if through_bff else f"/export/report?rowCount={ROWS}"
    sock, read = slow_download("127.0.0.1", target.port, path, rate_kib, seconds)
    try:
        api_sent = metric(api, "export_bytes_total") - api_before
        relayed = metric(bff, "bff_bytes_relayed_total") - bff_before if through_bff else None
        client_port = sock.getsockname()[1]
        ends: dict[str, Socket] = {}
        for s in sockets():
            if _port(s.local) == client_port:
                ends["client (receives)"] = s
            elif _port(s.peer) == client_port:
                ends[f"{target.name} to client (sends)"] = s
        if through_bff:
            # The BFF's connection to the API that carries this download: the busiest one.
            towards_api = [s for s in sockets() if _port(s.peer) == api.port]
            if towards_api:
                upstream = max(towards_api, key=lambda s: s.recv_q)
                ends["BFF from API (receives)"] = upstream
                for s in sockets():
                    if s.local == upstream.peer and s.peer == upstream.local:
                        ends["API to BFF (sends)"] = s
        if db_port is not None:
            # The export's database connection: the busiest of the workers' connections.
            towards_db = [s for s in sockets() if _port(s.peer) == db_port]
            if towards_db:
                worker_end = max(towards_db, key=lambda s: s.recv_q)
                ends["worker from database (receives)"] = worker_end
                for s in sockets():
                    if s.local == worker_end.peer and s.peer == worker_end.local:
                        ends["database to worker (sends)"] = s
    finally:
        sock.close()
    return Result(name, api_sent, relayed, read, ends)


def report(results: Sequence[Result], rate_kib: int, seconds: float) -> str:
    lines = [
        f"A {rate_kib} KiB/s reader after {seconds:g} s; {time.strftime('%Y-%m-%d %H:%M')}",
        "",
        "| path | API wrote | BFF relayed | client read | API wrote - client read |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in results:
        relayed = "-" if r.bff_relayed is None else f"{r.bff_relayed / MIB:.2f} MiB"
        lines.append(
            f"| {r.path} | {r.api_sent / MIB:.2f} MiB | {relayed} | {r.client_read / MIB:.2f} MiB"
            f" | **{(r.api_sent - r.client_read) / MIB:.2f} MiB** |"
        )
    lines += [
        "",
        "| path | socket end | Recv-Q | Send-Q | kernel memory (skmem r / t+w) | buffer limits"
        " (rb / tb) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for r in results:
        for end, s in r.ends.items():
            lines.append(
                f"| {r.path} | {end} | {s.recv_q / KIB:,.0f} KiB | {s.send_q / KIB:,.0f} KiB | "
                f"{s.rmem / KIB:,.0f} / {s.wmem / KIB:,.0f} KiB | "
                f"{s.rcvbuf / KIB:,.0f} / {s.sndbuf / KIB:,.0f} KiB |"
            )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.slow_reader", description=__doc__)
    parser.add_argument("--rate", type=int, default=64, help="the reader's KiB/s (64)")
    parser.add_argument("--seconds", type=float, default=20.0, help="how long it reads (20)")
    parser.add_argument(
        "--api-env", action="append", default=[], help="NAME=VALUE for the API (repeatable)"
    )
    parser.add_argument(
        "--bff-env", action="append", default=[], help="NAME=VALUE for the BFF (repeatable)"
    )
    args = parser.parse_args(argv)
    api_env: Mapping[str, str] = dict(item.split("=", 1) for item in args.api_env)
    bff_env: Mapping[str, str] = dict(item.split("=", 1) for item in args.bff_env)
    with tempfile.TemporaryDirectory(prefix="bench-slow-reader-") as tmp:
        logs = Path(tmp)
        with running_stack(log_dir=logs, api_env=api_env, bff_env=bff_env) as stack:
            db_port = None if stack.devdb is None else stack.devdb.port
            results = [
                measure(
                    "through the BFF", stack.api, stack.bff, db_port, True, args.rate, args.seconds
                ),
                measure(
                    "API directly", stack.api, stack.bff, db_port, False, args.rate, args.seconds
                ),
            ]
    print(report(results, args.rate, args.seconds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
