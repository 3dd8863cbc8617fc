"""The Prometheus text both services serve (``httpedge.prometheus``): the format's rules on their
own, and each service's whole /metrics read back by an independent parser, the official
client's."""

from __future__ import annotations

import asyncio
import math

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from httpedge.prometheus import (
    Histogram,
    counter,
    gauge,
    histogram,
    label_value,
    number,
    render,
    resident_memory,
)
from tests.polling import DEFAULT_WITHIN_S, INTERVAL_S
from tests.test_edge.conftest import StartService

# Every character the text format escapes in a label value, next to ones it leaves alone.
AWKWARD = 'C:\\reports\\"q1"\nline two, {x="y"} #'


def _parsed(*families: list[str]) -> dict[str, tuple[str, str, list[Sample]]]:
    """The families as the official parser reads them: name -> (type, help, samples)."""
    return {
        f.name: (f.type, f.documentation, f.samples)
        for f in text_string_to_metric_families(render(*families))
    }


def test_label_values_escape_backslash_quote_and_line_feed() -> None:
    lines = counter("things_total", "Things.", [({"path": AWKWARD, "kind": "plain"}, 3)])
    assert lines[2] == (
        'things_total{path="C:\\\\reports\\\\\\"q1\\"\\nline two, {x=\\"y\\"} #",kind="plain"} 3'
    )
    assert "\n" not in lines[2]  # one sample, one line
    (_, _, samples) = _parsed(lines)["things"]
    assert samples[0].labels == {"path": AWKWARD, "kind": "plain"}
    assert label_value("http://127.0.0.1:3001") == "http://127.0.0.1:3001"


def test_help_escapes_backslash_and_line_feed_but_not_quotes() -> None:
    help_text = 'Bytes under C:\\data,\nper "report".'
    lines = gauge("data_bytes", help_text, 1)
    assert lines[0] == '# HELP data_bytes Bytes under C:\\\\data,\\nper "report".'
    assert _parsed(lines)["data_bytes"][:2] == ("gauge", help_text)


def test_a_family_without_samples_is_named_and_typed() -> None:
    lines = counter("export_report_rows_total", "Rows per report.", [])
    assert lines == [
        "# HELP export_report_rows_total Rows per report.",
        "# TYPE export_report_rows_total counter",
    ]
    assert _parsed(lines)["export_report_rows"] == ("counter", "Rows per report.", [])


def test_a_bare_number_is_the_one_sample_without_labels() -> None:
    assert gauge("exports_active", "Exports.", 2)[2:] == ["exports_active 2"]
    assert gauge("exports_active", "Exports.", [({}, 2)])[2:] == ["exports_active 2"]


def test_histogram_buckets_are_cumulative_and_inf_is_the_count() -> None:
    observed = Histogram((10.0, 0.5, 1.0))  # any order: bounds are sorted
    for value in (0.1, 0.5, 0.7, 1.0, 3.0, 30.0, 600.0):  # 0.5 and 1.0: "le" includes the bound
        observed.observe(value)
    lines = histogram("export_duration_seconds", "Time per export.", observed)
    assert lines == [
        "# HELP export_duration_seconds Time per export.",
        "# TYPE export_duration_seconds histogram",
        'export_duration_seconds_bucket{le="0.5"} 2',
        'export_duration_seconds_bucket{le="1"} 4',
        'export_duration_seconds_bucket{le="10"} 5',
        'export_duration_seconds_bucket{le="+Inf"} 7',
        "export_duration_seconds_sum 635.3",
        "export_duration_seconds_count 7",
    ]
    kind, _, samples = _parsed(lines)["export_duration_seconds"]
    assert kind == "histogram"
    _assert_histogram(samples)


def test_an_empty_histogram_has_every_bucket_at_zero() -> None:
    lines = histogram("d_seconds", "D.", Histogram((1.0, 2.5)))
    assert lines[2:] == [
        'd_seconds_bucket{le="1"} 0',
        'd_seconds_bucket{le="2.5"} 0',
        'd_seconds_bucket{le="+Inf"} 0',
        "d_seconds_sum 0",
        "d_seconds_count 0",
    ]


@pytest.mark.parametrize("bounds", [(1.0, math.inf), (1.0, 1.0), (math.nan,)])
def test_histogram_bounds_are_finite_and_distinct(bounds: tuple[float, ...]) -> None:
    with pytest.raises(ValueError, match="histogram bounds"):
        Histogram(bounds)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0"),
        (2**60 + 1, "1152921504606846977"),  # a count stays exact past float precision
        (True, "1"),
        (2.0, "2"),
        (0.25, "0.25"),
        (1e-05, "1e-05"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
        (math.nan, "NaN"),
    ],
)
def test_numbers_are_written_as_prometheus_reads_them(value: float, text: str) -> None:
    assert number(value) == text


def test_resident_memory_has_one_name_and_a_help_of_each_service() -> None:
    assert resident_memory(5)[:2] == [
        "# HELP process_resident_memory_bytes Resident memory size in bytes.",
        "# TYPE process_resident_memory_bytes gauge",
    ]
    lines = resident_memory([({}, 5), ({"worker": "0"}, 7)], "Per process.")
    assert lines[0] == "# HELP process_resident_memory_bytes Per process."
    assert lines[2:] == [
        "process_resident_memory_bytes 5",
        'process_resident_memory_bytes{worker="0"} 7',
    ]


def test_render_ends_every_line() -> None:
    assert render(gauge("a", "A.", 1), []) == "# HELP a A.\n# TYPE a gauge\na 1\n"
    assert render() == ""


async def test_each_service_metrics_parse_as_prometheus_text(
    start_service: StartService,
) -> None:
    """The whole of /metrics, after a download (histogram and per-report series filled), read
    by the official parser: every sample line is a sample of a family with HELP and TYPE."""
    service = await start_service()
    base = f"http://127.0.0.1:{service.port}"
    if service.name == "api":
        download, counted = "/export/report?rowCount=10", "\nexport_duration_seconds_count 1\n"
    else:
        download = "/exports/report?rowCount=10"
        counted = 'bff_report_downloads_total{report="report",outcome="completed"} 1\n'
    async with aiohttp.ClientSession() as client:
        async with client.get(base + download) as response:
            assert response.status == 200
            await response.read()
        text = await _scrape_until(client, base, counted)
    families = list(text_string_to_metric_families(text))
    names = [f.name for f in families]
    assert len(names) == len(set(names)), "one family per name"
    sample_lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert sum(len(f.samples) for f in families) == len(sample_lines)
    assert text.count("# HELP ") == text.count("# TYPE ") == len(families)
    assert {f.type for f in families} <= {"counter", "gauge", "histogram"}
    assert all(f.documentation for f in families)
    by_name = {f.name: f for f in families}
    if service.name == "api":
        _assert_histogram(by_name["export_duration_seconds"].samples)
        rows = by_name["export_report_rows"].samples
        assert [(s.labels, s.value) for s in rows] == [({"report": "report"}, 10)]
        assert by_name["http_connections_open"].samples[0].value >= 1
    else:
        (up,) = by_name["bff_upstream_up"].samples
        assert up.labels["upstream"].startswith("http://127.0.0.1:")
        assert by_name["bff_connections_open"].samples[0].value >= 1


async def _scrape_until(client: aiohttp.ClientSession, base: str, counted: str) -> str:
    """/metrics once it shows ``counted``: a download is counted as it ends, which may be just
    after its client has read the last byte."""
    for _ in range(int(DEFAULT_WITHIN_S / INTERVAL_S)):
        async with client.get(base + "/metrics") as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
            text = await response.text()
        if counted in text:
            return text
        await asyncio.sleep(INTERVAL_S)
    pytest.fail(f"/metrics never showed {counted!r}")


def _assert_histogram(samples: list[Sample]) -> None:
    buckets = [s for s in samples if s.name.endswith("_bucket")]
    counts = [s.value for s in buckets]
    assert counts == sorted(counts), "buckets are cumulative"
    assert buckets[-1].labels["le"] == "+Inf"
    (count,) = [s.value for s in samples if s.name.endswith("_count")]
    assert buckets[-1].value == count
