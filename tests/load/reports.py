"""The reports the harness can load, as the export API's contract describes them (pure).

For each report id: which parameters it takes and how the harness checks them before a run
(a run of requests the API would refuse measures nothing), what a download must hold (from the
data's one definition in ``sql/``: :mod:`sql.report_data`, :mod:`sql.sales_data`), and which
requests it must refuse and with which code (``--bad-share``). These are the harness's own
statement of the contract, not read from the API's catalog: the harness checks the API.

One definition of a download's URL path: :func:`export_path`.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote

from sql import report_data, sales_data
from tests.load.errors import LoadError
from tests.load.expect import Expectation, SheetExpectation
from tests.load.plan import BadRequest

API_PREFIX = "/export"  # the API: GET /export/{id}
BFF_PREFIX = "/exports"  # the BFF: GET /exports/{id}

DEFAULT_REPORT = "report"
SALES = "sales"
ROW_COUNT = "rowCount"  # the default report's one parameter, which --rows sets
DEFAULT_ROWS = 30_000
FROM, TO, REGION = "from", "to", "region"

INVALID_ROW_COUNT = "INVALID_ROW_COUNT"  # the default report's own code for a bad rowCount
INVALID_PARAMETER = "INVALID_PARAMETER"
UNKNOWN_PARAMETER = "UNKNOWN_PARAMETER"

# rowCount values the API must refuse with 400 INVALID_ROW_COUNT (ASCII digits only, 1 to the
# maximum): letters, a sign, zero, an exponent, hex, a decimal, an empty value, a space, a
# non-ASCII digit (fullwidth 5). Sent percent-encoded.
BAD_ROW_COUNTS: tuple[str, ...] = ("abc", "-1", "0", "1e3", "0x10", "12.5", "", " 7", "\uff15")
_DAY = dt.timedelta(days=1)
# Dates the API must refuse (YYYY-MM-DD, a real day, within the report's dates): no such day,
# no such month, words, another notation, no zero padding, an empty value, fullwidth digits
# (which int() would read), the days just outside the data's range.
BAD_DATES: tuple[str, ...] = (
    "2024-02-30",
    "2023-13-01",
    "yesterday",
    "31.12.2024",
    "2024-1-5",
    "",
    "\uff12\uff10\uff12\uff14-01-01",
    (sales_data.MIN_DATE - _DAY).isoformat(),
    (sales_data.MAX_DATE + _DAY).isoformat(),
)
# Regions the API must refuse: not one, empty, another case (enum values are case-sensitive),
# two at once.
BAD_REGIONS: tuple[str, ...] = ("Atlantis", "", sales_data.REGIONS[1].lower(), "East,West")
# Names no report takes, sent with a value to provoke UNKNOWN_PARAMETER: another report's
# parameter, a name in the wrong case (names are case-sensitive), a made-up one.
UNKNOWN_NAMES: tuple[str, ...] = (ROW_COUNT, "From", "limit")
UNKNOWN_VALUE = "1"
# Sheet names, as the API's catalog names them.
REPORT_SHEET = "Report"
ORDERS_SHEET = "Orders"
SUMMARY_SHEET = "Summary by region"
_DATE_TEXT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")

Params = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class ReportQuery:
    """A report and the parameters each of its downloads sends, in order."""

    report: str
    params: Params

    @property
    def values(self) -> dict[str, str]:
        return dict(self.params)

    def query_string(self) -> str:
        return encode_query(self.params)

    def describe(self) -> str:
        """``"sales (from=2024-01-01, to=2024-01-31)"``: for the run's summary."""
        return f"{self.report} ({', '.join(f'{name}={value}' for name, value in self.params)})"


@dataclass(frozen=True)
class ReportSpec:
    """What the harness knows of one report."""

    parameters: tuple[str, ...]  # every name it takes
    check: Callable[[Mapping[str, str]], None]  # LoadError for values the API would refuse
    expect: Callable[[Mapping[str, str]], Expectation]  # what a download must hold
    invalid_code: str  # the 400's code for an invalid value
    bad_values: Mapping[str, tuple[str, ...]]  # per parameter, values it must refuse
    # The .xlsx's size per data row at the default compression level, for the abort range's
    # default upper end until a completed download tells the real size.
    bytes_per_row: int
    unknown_names: tuple[str, ...] = ()  # names sent for UNKNOWN_PARAMETER (none: not tried)
    ordered: tuple[str, str] | None = None  # (first, second): first after second is invalid


def encode_query(params: Sequence[tuple[str, str]]) -> str:
    """``name=value&...``, each name and value percent-encoded exactly as given (bad ones too)."""
    return "&".join(f"{quote(name, safe='')}={quote(value, safe='')}" for name, value in params)


def export_path(target: str, report: str) -> str:
    """The download path of ``report``: the BFF's ``/exports/{id}`` (``target`` "bff") or the
    API's ``/export/{id}`` ("api")."""
    prefix = BFF_PREFIX if target == "bff" else API_PREFIX
    return f"{prefix}/{quote(report, safe='')}"


def resolve(report: str, params: Sequence[tuple[str, str]], rows: int | None) -> ReportQuery:
    """The query of a run from ``--report``, ``--param`` (in order) and ``--rows`` (None when
    not given), or :class:`LoadError` saying what is wrong. For the default report ``--rows``
    and ``--param rowCount`` are the same thing; another report takes its own parameters."""
    spec = spec_of(report)
    names = [name for name, _ in params]
    for name in names:
        if names.count(name) > 1:
            raise LoadError(f"--param {name} is given more than once")
    if report == DEFAULT_REPORT:
        if rows is not None and ROW_COUNT in names:
            raise LoadError(f"--rows and --param {ROW_COUNT} say the same: give one")
        if ROW_COUNT not in names:
            params = [(ROW_COUNT, str(DEFAULT_ROWS if rows is None else rows)), *params]
    elif rows is not None:
        raise LoadError(
            f"--rows is the {DEFAULT_REPORT!r} report's {ROW_COUNT}; "
            f"report {report!r} takes --param NAME=VALUE"
        )
    unknown = [name for name in names if name not in spec.parameters]
    if unknown:
        raise LoadError(
            f"report {report!r} takes {', '.join(spec.parameters)}; not {', '.join(unknown)}"
        )
    query = ReportQuery(report, tuple(params))
    spec.check(query.values)
    return query


def spec_of(report: str) -> ReportSpec:
    try:
        return REPORTS[report]
    except KeyError:
        raise LoadError(
            f"unknown report {report!r}; the harness knows {', '.join(REPORTS)}"
        ) from None


def expectation(query: ReportQuery) -> Expectation:
    return spec_of(query.report).expect(query.values)


def bytes_per_row(query: ReportQuery) -> int:
    return spec_of(query.report).bytes_per_row


def bad_requests(query: ReportQuery) -> tuple[BadRequest, ...]:
    """Every refused variant of ``query`` the harness sends: one parameter's value replaced by
    a bad one (its report's invalid code), an unknown name added (UNKNOWN_PARAMETER), and the
    ordered pair swapped when it differs (the invalid code too)."""
    spec = spec_of(query.report)
    params = list(query.params)
    out = []
    for i, (name, _) in enumerate(params):
        for bad in spec.bad_values.get(name, ()):
            changed = [*params[:i], (name, bad), *params[i + 1 :]]
            out.append(BadRequest(encode_query(changed), spec.invalid_code))
    for name in spec.unknown_names:
        out.append(BadRequest(encode_query([*params, (name, UNKNOWN_VALUE)]), UNKNOWN_PARAMETER))
    values = query.values
    if spec.ordered is not None:
        first, second = spec.ordered
        if first in values and second in values and values[first] != values[second]:
            swap = {first: values[second], second: values[first]}
            swapped = [(name, swap.get(name, value)) for name, value in params]
            out.append(BadRequest(encode_query(swapped), spec.invalid_code))
    return tuple(out)


# -- the default report: dbo.spGenerateData, rowCount rows ----------------------------------------


def _check_row_count(values: Mapping[str, str]) -> None:
    text = values[ROW_COUNT]
    if not (text.isascii() and text.isdigit() and int(text) >= 1):
        raise LoadError(f"{ROW_COUNT} must be a whole number of at least 1, got {text!r}")


def _report_expectation(values: Mapping[str, str]) -> Expectation:
    rows = int(values[ROW_COUNT])
    sheet = SheetExpectation(
        REPORT_SHEET,
        rows,
        len(report_data.COLUMNS),
        first_row=report_data.row_values(1),
        last_row=report_data.row_values(rows),
    )
    return Expectation((sheet,))


# -- sales: dbo.spSalesOrders, the orders of a date range and a summary per region ----------------


def _date(name: str, text: str) -> dt.date:
    try:
        if _DATE_TEXT.fullmatch(text):
            return dt.date.fromisoformat(text)
    except ValueError:
        pass
    raise LoadError(f"{name} must be a date YYYY-MM-DD, got {text!r}")


def _sales_arguments(values: Mapping[str, str]) -> tuple[dt.date, dt.date, str | None]:
    """(start, end, region) of a sales query, or LoadError for what the API would refuse."""
    for name in (FROM, TO):
        if name not in values:
            raise LoadError(f"report {SALES!r} needs --param {name}=YYYY-MM-DD")
    start, end = _date(FROM, values[FROM]), _date(TO, values[TO])
    region = values.get(REGION)
    if region is not None and region not in sales_data.REGIONS:
        raise LoadError(f"{REGION} must be one of {', '.join(sales_data.REGIONS)}, got {region!r}")
    try:
        sales_data.check_range(start, end)
    except ValueError as exc:
        raise LoadError(f"report {SALES!r}: {exc}") from None
    return start, end, region


def _check_sales(values: Mapping[str, str]) -> None:
    _sales_arguments(values)


def _sales_expectation(values: Mapping[str, str]) -> Expectation:
    """Both sheets from sql.sales_data: the orders counted (one pass: at most ~146k orders),
    the first and last of each sheet's rows kept for the value spot checks."""
    start, end, region = _sales_arguments(values)
    count = 0
    first = last = None
    for order in sales_data.orders(start, end, region):
        count += 1
        if first is None:
            first = order
        last = order
    summary = sales_data.summary(start, end, region)
    orders = SheetExpectation(
        ORDERS_SHEET, count, len(sales_data.ORDER_COLUMNS), first_row=first, last_row=last
    )
    by_region = SheetExpectation(
        SUMMARY_SHEET,
        len(summary),
        len(sales_data.SUMMARY_COLUMNS),
        first_row=summary[0] if summary else None,
        last_row=summary[-1] if summary else None,
    )
    return Expectation((orders, by_region))


REPORTS: Mapping[str, ReportSpec] = {
    DEFAULT_REPORT: ReportSpec(
        parameters=(ROW_COUNT,),
        check=_check_row_count,
        expect=_report_expectation,
        invalid_code=INVALID_ROW_COUNT,
        bad_values={ROW_COUNT: BAD_ROW_COUNTS},
        # The writer benchmark: 86.6 MB for 1M rows; ~77 bytes per row measured for this report.
        bytes_per_row=77,
    ),
    SALES: ReportSpec(
        parameters=(FROM, TO, REGION),
        check=_check_sales,
        expect=_sales_expectation,
        invalid_code=INVALID_PARAMETER,
        bad_values={FROM: BAD_DATES, TO: BAD_DATES, REGION: BAD_REGIONS},
        unknown_names=UNKNOWN_NAMES,
        ordered=(FROM, TO),
        # Measured with the writer: 725 KB for the 14,640 orders of 2024 (and the summary).
        bytes_per_row=50,
    ),
}
