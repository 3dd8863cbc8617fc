"""The Prometheus text exposition format (version 0.0.4) that both services' ``GET /metrics``
answer in.

Pure: each service counts what it counts, under its own lock or on its event loop, and hands
the values to :func:`counter`, :func:`gauge` and :func:`histogram`, which return a family's
lines (``# HELP``, ``# TYPE``, one line per sample); :func:`render` joins families into the
response body. A family is always written with its HELP and TYPE lines, even with no sample,
so a scrape names every metric the service has.

The official ``prometheus_client`` is not used (the tests use its parser, to read our output
independently). Its ``generate_latest`` writes every value as a float (``5.0``, ``le="1.0"``)
and adds a ``_created`` series to each counter and histogram, so the text both services serve
would change; its metrics register in one process-wide registry unless each is given its own,
and one name registered twice (a second service instance, as in the tests) is refused; its
increments take a lock each, as ours do, so the hot path (rows and bytes per chunk, in the
API's HTTP process) would gain nothing; and its multiprocess mode (memory-mapped files per
process in a shared directory) is not needed: the API's workers relay their counts to the HTTP
process, which alone serves /metrics.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

CONTENT_TYPE: Final = "text/plain; version=0.0.4; charset=utf-8"

# A label set, in the order its labels are written.
Labels = Mapping[str, str]
# A family's samples: a bare number is its one sample without labels.
Samples = float | Iterable[tuple[Labels, float]]

# The name that dashboards and the standard process collectors use for a process's RSS.
RESIDENT_MEMORY: Final = "process_resident_memory_bytes"
RESIDENT_MEMORY_HELP: Final = "Resident memory size in bytes."


def label_value(text: str) -> str:
    """A label value in the text format: backslash, double quote and line feed escaped."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _help_text(text: str) -> str:
    # HELP runs to the end of its line: a line feed would end it early; quotes need no escape.
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def number(value: float) -> str:
    """A sample value or bucket bound: integers without a fraction (counts stay exact past
    2**53), other floats as Python's shortest repr, infinities and NaN as Prometheus spells
    them."""
    if isinstance(value, int):  # bool too: True is written 1
        return str(int(value))
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer():
        return str(int(value))
    return repr(value)


def _sample_line(name: str, labels: Labels, value: float) -> str:
    if not labels:
        return f"{name} {number(value)}"
    pairs = ",".join(f'{key}="{label_value(text)}"' for key, text in labels.items())
    return f"{name}{{{pairs}}} {number(value)}"


def _head(name: str, kind: str, help_text: str) -> list[str]:
    return [f"# HELP {name} {_help_text(help_text)}", f"# TYPE {name} {kind}"]


def _family(name: str, kind: str, help_text: str, samples: Samples) -> list[str]:
    lines = _head(name, kind, help_text)
    if isinstance(samples, int | float):
        samples = [({}, samples)]
    lines += [_sample_line(name, labels, value) for labels, value in samples]
    return lines


def counter(name: str, help_text: str, samples: Samples) -> list[str]:
    """A counter family (by convention its name ends in ``_total``)."""
    return _family(name, "counter", help_text, samples)


def gauge(name: str, help_text: str, samples: Samples) -> list[str]:
    """A gauge family."""
    return _family(name, "gauge", help_text, samples)


def resident_memory(samples: Samples, help_text: str = RESIDENT_MEMORY_HELP) -> list[str]:
    """The ``process_resident_memory_bytes`` gauge; a service that has several processes
    labels them and says so in its own help text."""
    return gauge(RESIDENT_MEMORY, help_text, samples)


class Histogram:
    """Observations counted into fixed buckets, for :func:`histogram`.

    Not locked: its owner guards it as it guards its other counts. Each observation goes to
    one bucket (a binary search); the cumulative counts the format wants are summed when
    rendered, which is rare next to observing.
    """

    def __init__(self, bounds: Iterable[float]) -> None:
        self.bounds = tuple(sorted(bounds))
        if not all(math.isfinite(b) for b in self.bounds):
            # +Inf is always written as the last bucket; a second one would be a duplicate series.
            raise ValueError(f"histogram bounds must be finite: {self.bounds}")
        if len(set(self.bounds)) != len(self.bounds):
            raise ValueError(f"histogram bounds must differ: {self.bounds}")
        self._counts = [0] * (len(self.bounds) + 1)  # the last: above every bound
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        # A bucket counts values up to and including its bound ("le").
        self._counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def cumulative(self) -> list[int]:
        """The count of each bucket in the format's sense: values at or below its bound."""
        running, totals = 0, []
        for count in self._counts[:-1]:
            running += count
            totals.append(running)
        return totals


def histogram(name: str, help_text: str, observed: Histogram) -> list[str]:
    """A histogram family: cumulative ``_bucket`` samples, ``+Inf`` last (equal to
    ``_count``), then ``_sum`` and ``_count``."""
    buckets: list[tuple[Labels, float]] = [
        ({"le": number(bound)}, count)
        for bound, count in zip(observed.bounds, observed.cumulative(), strict=True)
    ]
    buckets.append(({"le": number(math.inf)}, observed.count))
    lines = _head(name, "histogram", help_text)
    lines += [_sample_line(f"{name}_bucket", labels, count) for labels, count in buckets]
    lines.append(_sample_line(f"{name}_sum", {}, observed.sum))
    lines.append(_sample_line(f"{name}_count", {}, observed.count))
    return lines


def render(*families: Sequence[str]) -> str:
    """The body of a /metrics answer: every family's lines, each ending in a line feed."""
    return "".join(f"{line}\n" for family in families for line in family)
