"""``--plot``: the run over time in one PNG (matplotlib, the optional ``load`` extra)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tests.load.errors import LoadError
from tests.load.report import MB, MIB, windowed_rate

# Throughput is the bytes received per window of this many seconds: the 100 ms samples are too
# fine to read (one 64 KiB read more or less swings them by 0.6 MB/s).
THROUGHPUT_WINDOW_S = 1.0


def draw(report: Mapping[str, Any], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise LoadError("--plot needs matplotlib: pip install -e '.[load]'") from None
    live = report["timeline"]
    fig, axes = plt.subplots(4, 1, figsize=(10, 11), sharex=True)
    t, mbps = windowed_rate(live["t"], [b / MB for b in live["bytes"]], THROUGHPUT_WINDOW_S)
    axes[0].plot(t, mbps, label="received MB/s")
    t_rows, rows = windowed_rate(live["t"], live["rows_verified"], THROUGHPUT_WINDOW_S)
    ax_rows = axes[0].twinx()
    ax_rows.plot(t_rows, rows, color="tab:orange", label="verified rows/s")
    axes[0].set_ylabel("MB/s")
    ax_rows.set_ylabel("rows/s (verified at completion)")
    axes[0].set_title("throughput")

    axes[1].plot(live["t"], live["downloading"], label="downloads in progress (clients)")
    api = report["gauges"].get("api")
    if api:
        axes[1].plot(api["t"], api["exports_active"], label="exports_active (API)")
        axes[1].plot(
            api["t"], api['db_pool_connections{state="in_use"}'], label="pool in use (API)"
        )
    axes[1].set_ylabel("count")
    axes[1].legend(loc="upper right")
    axes[1].set_title("active downloads")

    for name, probes in report["health_probes"].items():
        axes[2].plot([p[0] for p in probes], [p[1] * 1000 for p in probes], ".", ms=2, label=name)
    axes[2].set_yscale("log")
    axes[2].set_ylabel("ms")
    axes[2].legend(loc="upper right")
    axes[2].set_title("/healthz latency")

    for name, series in report["process_series"].items():
        axes[3].plot(series["t"], [r / MIB for r in series["rss"]], label=name)
    axes[3].set_ylabel("MiB")
    axes[3].set_xlabel("seconds since the start of the load")
    axes[3].legend(loc="upper right")
    axes[3].set_title("resident memory")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
