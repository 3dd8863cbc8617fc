"""What is watched while the load runs, each on its own thread so that the load generator's
event loop (busy reading and checking bodies) never delays a probe:

- :class:`HealthProbe`: ``GET /healthz`` of one service every 100 ms on a new connection (as a
  load balancer or an orchestrator probes), its latency and status;
- :class:`ProcessSampler`: RSS and CPU time of processes by pid (psutil);
- :class:`MetricsSampler`: gauges from a service's ``/metrics`` (active exports, pool use, and
  RSS for a process whose pid we do not know).
"""

from __future__ import annotations

import contextlib
import http.client
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import psutil

# The probe interval asked for: fine enough to see a stall of a few hundred milliseconds.
HEALTH_INTERVAL_S = 0.1
# A probe that has not answered in this long counts as failed (with this latency); a healthy
# /healthz answers in milliseconds, and an orchestrator's probe timeout is of this order.
HEALTH_TIMEOUT_S = 5.0
# RSS and CPU: the same tick as the probes, so the plot's curves line up.
PROCESS_INTERVAL_S = 0.1
# /metrics renders every counter: twice a second is enough for a gauge curve.
METRICS_INTERVAL_S = 0.5
METRICS_TIMEOUT_S = 5.0
# The module an API worker process runs (`python -m server.worker`).
WORKER_MODULE = "server.worker"

_METRIC_LINE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?)\s+(\S+)")


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text exposition -> ``{'name{labels}': value}`` (comments skipped)."""
    values: dict[str, float] = {}
    for line in text.splitlines():
        match = _METRIC_LINE.match(line)
        if match is None or line.startswith("#"):
            continue
        try:
            values[match.group(1)] = float(match.group(2))
        except ValueError:
            continue
    return values


def http_get(url: str, timeout_s: float) -> tuple[int, bytes]:
    """One GET on a new connection; (status, body). Raises OSError when it cannot connect."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(
        parts.hostname or "127.0.0.1", parts.port or 80, timeout=timeout_s
    )
    try:
        connection.request("GET", parts.path or "/", headers={"Connection": "close"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def read_metrics(base_url: str) -> dict[str, float]:
    status, body = http_get(base_url.rstrip("/") + "/metrics", METRICS_TIMEOUT_S)
    if status != 200:
        raise OSError(f"/metrics answered {status}")
    return parse_metrics(body.decode("utf-8", "replace"))


class Periodic:
    """Calls ``tick(t)`` every ``interval_s`` on a daemon thread until :meth:`stop`; ``t`` is
    seconds since ``zero`` (time.monotonic, the event loop's clock too). A tick that overruns
    delays the next one instead of piling up."""

    def __init__(self, name: str, interval_s: float, zero: float) -> None:
        self.interval_s = interval_s
        self.zero = zero
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def tick(self, t: float) -> None:
        raise NotImplementedError

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        due = time.monotonic()
        while not self._stop.is_set():
            self.tick(time.monotonic() - self.zero)
            due = max(due + self.interval_s, time.monotonic())
            self._stop.wait(max(0.0, due - time.monotonic()))


@dataclass
class Probe:
    t: float
    latency_s: float
    ok: bool


class HealthProbe(Periodic):
    def __init__(self, name: str, base_url: str, zero: float) -> None:
        super().__init__(f"health-{name}", HEALTH_INTERVAL_S, zero)
        self.name = name
        self.url = base_url.rstrip("/") + "/healthz"
        self.probes: list[Probe] = []

    def tick(self, t: float) -> None:
        start = time.perf_counter()
        try:
            status, _ = http_get(self.url, HEALTH_TIMEOUT_S)
            ok = status == 200
        except (OSError, http.client.HTTPException):
            ok = False
        self.probes.append(Probe(t, time.perf_counter() - start, ok))


@dataclass
class ProcessSeries:
    pid: int
    times: list[float] = field(default_factory=list)
    rss: list[int] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)  # cumulative user + system seconds
    threads_first: int | None = None
    threads_last: int | None = None


def api_workers(api_pid: int) -> dict[str, int]:
    """The API's worker processes (its children running ``server.worker``) as ``worker N`` by
    pid order: they do the exports' CPU work, so they are watched like the services."""
    try:
        children = psutil.Process(api_pid).children()
    except psutil.Error:
        return {}
    pids = []
    for child in children:
        with contextlib.suppress(psutil.Error):
            if WORKER_MODULE in child.cmdline():
                pids.append(child.pid)
    return {f"worker {index}": pid for index, pid in enumerate(sorted(pids))}


class ProcessSampler(Periodic):
    def __init__(self, pids: Mapping[str, int], zero: float) -> None:
        super().__init__("process-sampler", PROCESS_INTERVAL_S, zero)
        self._processes = {name: psutil.Process(pid) for name, pid in pids.items()}
        self.series = {name: ProcessSeries(pid) for name, pid in pids.items()}

    def tick(self, t: float) -> None:
        for name, process in self._processes.items():
            series = self.series[name]
            try:
                with process.oneshot():
                    rss = process.memory_info().rss
                    times = process.cpu_times()
                    threads = process.num_threads()
            except psutil.Error:
                continue  # exited: its series simply ends
            series.times.append(t)
            series.rss.append(rss)
            series.cpu_s.append(times.user + times.system)
            if series.threads_first is None:
                series.threads_first = threads
            series.threads_last = threads


class MetricsSampler(Periodic):
    """Selected gauges of one service's /metrics over time."""

    def __init__(self, name: str, base_url: str, names: tuple[str, ...], zero: float) -> None:
        super().__init__(f"metrics-{name}", METRICS_INTERVAL_S, zero)
        self.name = name
        self.base_url = base_url
        self.names = names
        self.times: list[float] = []
        self.values: dict[str, list[float]] = {n: [] for n in names}
        self.failures = 0

    def tick(self, t: float) -> None:
        try:
            metrics = read_metrics(self.base_url)
        except (OSError, http.client.HTTPException):
            self.failures += 1
            return
        self.times.append(t)
        for name in self.names:
            self.values[name].append(metrics.get(name, float("nan")))


def poll_until(
    condition: Callable[[], bool], *, timeout_s: float, interval_s: float = 0.05
) -> float | None:
    """Seconds until ``condition()`` held, or None if it did not within ``timeout_s``. A
    condition that raises OSError (service busy or gone) counts as not yet."""
    start = time.monotonic()
    while True:
        try:
            if condition():
                return time.monotonic() - start
        except (OSError, http.client.HTTPException):
            pass
        if time.monotonic() - start > timeout_s:
            return None
        time.sleep(interval_s)
