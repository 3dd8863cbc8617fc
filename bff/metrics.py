"""The BFF's Prometheus metrics for ``GET /metrics``: what is counted, under which names and
help; ``httpedge.prometheus`` writes them in the text format.

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
from httpedge.prometheus import CONTENT_TYPE as CONTENT_TYPE  # what bff.app answers with
from httpedge.prometheus import Labels, counter, gauge, render, resident_memory

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
# bff_upstream_responses_total's ``status_class``; each always exported, zero included.
STATUS_CLASSES = ("2xx", "3xx", "4xx", "5xx")


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
        families = [
            gauge(
                "bff_relays_active",
                "Downloads currently being relayed from the API.",
                self.relays_active,
            ),
            counter(
                "bff_bytes_relayed_total",
                "Body bytes relayed from the API to clients.",
                self.bytes_relayed,
            ),
            counter(
                "bff_downloads_total",
                "Downloads by how they ended.",
                [({"outcome": o}, self.outcomes[o]) for o in OUTCOMES],
            ),
            counter(
                "bff_upstream_responses_total",
                "API responses by status class.",
                [({"status_class": c}, self.upstream_statuses[c]) for c in STATUS_CLASSES],
            ),
            counter(
                "bff_report_downloads_total",
                "Downloads the API answered with 2xx, by report and how they ended.",
                [
                    ({"report": report, "outcome": o}, n[o])
                    for report, n in self.reports.items()
                    for o in ANSWERED_OUTCOMES
                ],
            ),
            *render_upstreams(self.upstreams),
        ]
        if self._rss is not None:
            families.append(resident_memory(self._rss()))
        return render(*families)


def _api(target: Target) -> Labels:
    """The label of per-API series: the API's URL as configured."""
    return {"upstream": target.url}


def _by(
    apis: Sequence[Target],
    name: str,
    values: Sequence[str],
    counts: Callable[[Target], Counter[str]],
) -> list[tuple[Labels, float]]:
    """One sample per API and value of the label ``name``."""
    return [({**_api(t), name: v}, counts(t)[v]) for t in apis for v in values]


def render_upstreams(targets: Sequence[Target]) -> list[list[str]]:
    """Per-API families; every series always exported, zero included. None without APIs to
    label."""
    if not targets:
        return []
    return [
        gauge(
            "bff_upstream_up",
            "Whether the API can be reached (1) or is skipped as down (0).",
            [(_api(t), int(t.state != DOWN)) for t in targets],
        ),
        gauge(
            "bff_upstream_ready",
            "Whether the API's last readiness check answered 200 (1) or not (0).",
            [(_api(t), int(t.state == UP)) for t in targets],
        ),
        gauge(
            "bff_upstream_active_downloads",
            "Downloads running through this BFF, per API.",
            [(_api(t), t.active) for t in targets],
        ),
        counter(
            "bff_upstream_downloads_total",
            "Downloads sent to each API, by how they ended.",
            _by(targets, "outcome", UPSTREAM_OUTCOMES, lambda t: t.downloads),
        ),
        counter(
            "bff_upstream_failures_total",
            "Failed connections to each API and failed readiness checks, by reason.",
            _by(targets, "reason", FAILURE_REASONS, lambda t: t.failures),
        ),
    ]
