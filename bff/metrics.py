"""Counters for ``GET /metrics`` in the Prometheus text format (version 0.0.4).

Downloads are also counted per report (``bff_report_downloads_total{report=...}``). A label's
every value is a series kept forever, and anyone can ask for ``/exports/<any slug>``, so the
requested id alone would let a client grow the metrics without end. A report gets its series
only once the API answered a download of it with 2xx, that is once the id is in the API's
catalog (an unknown id gets the API's 404 and no series). A catalog is a handful of reports;
in case an API answers 2xx for ids without end anyway, at most :data:`MAX_REPORT_SERIES`
reports are kept apart and any later ones are counted together under :data:`OTHER_REPORTS`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence

from bff.balancer import DOWN, FAILURE_REASONS, UP, Target

# Every way a download through the BFF can end; each is always exported, zero included, so a
# dashboard query never has to guess whether a series exists yet.
OUTCOMES = (
    "completed",  # upstream body relayed to the end (any status)
    "client_disconnected",  # our client went away; upstream closed at once
    "client_stalled",  # our client accepted nothing for the write timeout; cut off
    "upstream_aborted",  # the API broke off mid-body; our response aborted the same way
    "proxy_error",  # API unreachable or refused: 502
    "proxy_timeout",  # API too slow to send headers: 504
    "unauthorized",  # 401
    "forbidden_origin",  # 403 from the CORS allowlist
    "rate_limited",  # 429 from the per-client limit
)

# The outcomes a download can have once it was sent to an API, counted per API.
UPSTREAM_OUTCOMES = (
    "completed",
    "client_disconnected",
    "client_stalled",
    "upstream_aborted",
    "proxy_error",  # the API broke the connection before answering
    "proxy_timeout",
)

# The outcomes a download can have once the API answered it (with 2xx: per-report counts).
ANSWERED_OUTCOMES = ("completed", "client_disconnected", "client_stalled", "upstream_aborted")
# Far more reports than a catalog holds (a handful, written by hand), few enough that the
# per-report series (one per outcome each) stay a small part of a scrape.
MAX_REPORT_SERIES = 100
# The label for reports beyond that: not a slug (``bff.routes.REPORT_ID``), so no real id.
OTHER_REPORTS = "_other"

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    def __init__(
        self, rss: Callable[[], int] | None = None, upstreams: Sequence[Target] = ()
    ) -> None:
        self.relays_active = 0
        self.bytes_relayed = 0
        self.outcomes: Counter[str] = Counter()
        self.upstream_statuses: Counter[str] = Counter()
        self.reports: dict[str, Counter[str]] = {}  # report id -> outcome -> count
        self._rss = rss
        self.upstreams = upstreams

    def outcome(self, name: str) -> None:
        assert name in OUTCOMES, name
        self.outcomes[name] += 1

    def report_outcome(self, report: str, outcome: str) -> None:
        """How a download the API answered with 2xx ended, counted for its report."""
        assert outcome in ANSWERED_OUTCOMES, outcome
        if report not in self.reports and len(self.reports) >= MAX_REPORT_SERIES:
            report = OTHER_REPORTS
        self.reports.setdefault(report, Counter())[outcome] += 1

    def upstream_status(self, status: int) -> None:
        self.upstream_statuses[f"{status // 100}xx"] += 1

    def render(self) -> str:
        lines = [
            "# HELP bff_relays_active Downloads currently being relayed from the API.",
            "# TYPE bff_relays_active gauge",
            f"bff_relays_active {self.relays_active}",
            "# HELP bff_bytes_relayed_total Body bytes relayed from the API to clients.",
            "# TYPE bff_bytes_relayed_total counter",
            f"bff_bytes_relayed_total {self.bytes_relayed}",
            "# HELP bff_downloads_total Downloads by how they ended.",
            "# TYPE bff_downloads_total counter",
        ]
        lines += [f'bff_downloads_total{{outcome="{o}"}} {self.outcomes[o]}' for o in OUTCOMES]
        lines += [
            "# HELP bff_upstream_responses_total API responses by status class.",
            "# TYPE bff_upstream_responses_total counter",
        ]
        lines += [
            f'bff_upstream_responses_total{{status_class="{c}"}} {self.upstream_statuses[c]}'
            for c in ("2xx", "3xx", "4xx", "5xx")
        ]
        lines += [
            "# HELP bff_report_downloads_total Downloads the API answered with 2xx, by report "
            "and how they ended.",
            "# TYPE bff_report_downloads_total counter",
        ]
        lines += [
            f'bff_report_downloads_total{{report="{label_value(report)}",outcome="{o}"}} {n[o]}'
            for report, n in self.reports.items()
            for o in ANSWERED_OUTCOMES
        ]
        lines += render_upstreams(self.upstreams)
        if self._rss is not None:
            lines += [
                "# HELP process_resident_memory_bytes Resident memory size in bytes.",
                "# TYPE process_resident_memory_bytes gauge",
                f"process_resident_memory_bytes {self._rss()}",
            ]
        return "\n".join(lines) + "\n"


def label_value(text: str) -> str:
    """A label value in the text format: backslash, double quote and line feed escaped."""
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _by(
    apis: Sequence[tuple[str, Target]],
    name: str,
    values: Sequence[str],
    counts: Callable[[Target], Counter[str]],
) -> list[tuple[str, int]]:
    """One sample per API and value of the label ``name``."""
    return [(f'{label},{name}="{v}"', counts(t)[v]) for label, t in apis for v in values]


def render_upstreams(targets: Sequence[Target]) -> list[str]:
    """Per-API series, labelled with the API's URL as configured; every series always
    exported, zero included."""
    apis = [(f'upstream="{label_value(t.url)}"', t) for t in targets]
    families: list[tuple[str, str, str, list[tuple[str, int]]]] = [
        (
            "bff_upstream_up",
            "gauge",
            "Whether the API can be reached (1) or is skipped as down (0).",
            [(label, int(t.state != DOWN)) for label, t in apis],
        ),
        (
            "bff_upstream_ready",
            "gauge",
            "Whether the API's last readiness check answered 200 (1) or not (0).",
            [(label, int(t.state == UP)) for label, t in apis],
        ),
        (
            "bff_upstream_active_downloads",
            "gauge",
            "Downloads running through this BFF, per API.",
            [(label, t.active) for label, t in apis],
        ),
        (
            "bff_upstream_downloads_total",
            "counter",
            "Downloads sent to each API, by how they ended.",
            _by(apis, "outcome", UPSTREAM_OUTCOMES, lambda t: t.downloads),
        ),
        (
            "bff_upstream_failures_total",
            "counter",
            "Failed connections to each API and failed readiness checks, by reason.",
            _by(apis, "reason", FAILURE_REASONS, lambda t: t.failures),
        ),
    ]
    lines: list[str] = []
    for name, kind, help_text, samples in families if apis else []:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        lines += [f"{name}{{{labels}}} {value}" for labels, value in samples]
    return lines
