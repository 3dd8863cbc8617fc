"""The demo report's query: rowCount's parser alone (the catalog's int parameter with the
demo's bounds), then every bad form over real HTTP with the exact query bytes; any parameter
other than rowCount is refused."""

from __future__ import annotations

import aiohttp
import pytest
from yarl import URL

from server.catalog import builtin_catalog
from server.errors import InvalidParameter, UnknownParameter
from server.metrics import Outcome
from sql.devserver import DevServer
from tests.test_server.conftest import StartApi

MAX = 1_048_576
DEMO = builtin_catalog(default_row_count=30_000, max_row_count=MAX).reports["report"]


def parse_row_count(values: list[str]) -> int:
    """The @RowCount the demo report sends for these rowCount values."""
    call = DEMO.bind({"rowCount": values} if values else {})
    return int(dict((name, value) for name, _, value in call.arguments)["@RowCount"])


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([], 30_000),
        (["1"], 1),
        (["30000"], 30_000),
        (["1048576"], MAX),
        (["0000042"], 42),  # leading zeros are still base-10 digits
    ],
)
def test_accepted(values: list[str], expected: int) -> None:
    assert parse_row_count(values) == expected


BAD_VALUES = [
    "",
    "0",
    "000",
    "-1",
    "+5",
    " 5",
    "5 ",
    "1.0",
    "1e3",
    "0x10",
    "1_000",
    "1,000",
    "١٢",  # Arabic-Indic digits: str.isdigit() says yes
    "１２",  # full-width digits
    "²",  # superscript two
    "1048577",
    "9" * 5_000,  # beyond Python's int-from-str digit limit
    "abc",
]


@pytest.mark.parametrize("value", BAD_VALUES)
def test_rejected(value: str) -> None:
    with pytest.raises(InvalidParameter) as caught:
        parse_row_count([value])
    assert caught.value.status == 400
    assert caught.value.code == "INVALID_ROW_COUNT"


def test_repeated_parameter_is_rejected_even_when_both_agree() -> None:
    with pytest.raises(InvalidParameter, match="at most once"):
        parse_row_count(["10", "10"])


# Raw query strings as a client would send them (percent-encoding included).
BAD_QUERIES = [
    "rowCount=",
    "rowCount",
    "rowCount=0",
    "rowCount=-1",
    "rowCount=%2B5",  # "+5"
    "rowCount=+5",  # "+" in a query string decodes to a space
    "rowCount=%205",
    "rowCount=1.5",
    "rowCount=1e3",
    "rowCount=0x10",
    "rowCount=%D9%A1%D9%A2",  # Arabic-Indic "12"
    "rowCount=%EF%BC%91",  # full-width "1"
    "rowCount=1048577",
    "rowCount=" + "9" * 3_000,
    "rowCount=10&rowCount=10",
    "rowCount=10&rowCount=20",
    "rowCount=abc",
]


async def _refused(
    devserver: DevServer, start_api: StartApi, http: aiohttp.ClientSession, query: str
) -> dict[str, str]:
    """``GET /export/report?{query}`` (bytes as given): a 400 JSON error, no database work,
    counted as invalid. Returns the error object."""
    api = await start_api()
    target = URL(f"http://127.0.0.1:{api.port}/export/report?{query}", encoded=True)
    async with http.get(target) as response:
        assert response.status == 400
        assert response.headers["Content-Type"].startswith("application/json")
        body = await response.json()
    assert devserver.stats.connections_total == 0, "no database work for a bad request"
    assert api.metrics.requests(Outcome.INVALID) == 1
    return dict(body["error"])


@pytest.mark.parametrize("query", BAD_QUERIES)
async def test_bad_row_count_over_http_is_400_json(
    devserver: DevServer, start_api: StartApi, http: aiohttp.ClientSession, query: str
) -> None:
    error = await _refused(devserver, start_api, http, query)
    assert error["code"] == "INVALID_ROW_COUNT"
    assert "1,048,576" in error["message"] or "once" in error["message"]


# Parameters that are not rowCount: misspelt, bracketed, extra, or with an empty name.
UNKNOWN_QUERIES = [
    "rowcount=5",
    "ROWCOUNT=5",
    "rowCount%5B%5D=5",  # rowCount[]=5
    "rowCount[]=5",
    "rows=5",
    "rowCount=5&format=csv",
    "zzprobe=1",
    "=5",
]


@pytest.mark.parametrize("query", UNKNOWN_QUERIES)
async def test_an_unknown_parameter_is_400_naming_the_accepted_ones(
    devserver: DevServer, start_api: StartApi, http: aiohttp.ClientSession, query: str
) -> None:
    error = await _refused(devserver, start_api, http, query)
    assert error["code"] == "UNKNOWN_PARAMETER"
    assert "accepted parameters are: rowCount" in error["message"]
    assert "zzprobe" not in error["message"]  # the client's name is not repeated back


def test_unknown_names_are_refused_before_the_row_count_is_read() -> None:
    DEMO.bind({"rowCount": ["5"]})
    DEMO.bind({})
    with pytest.raises(UnknownParameter) as caught:
        DEMO.bind({"rowCount": ["not a number"], "rowcount": ["5"]})
    assert (caught.value.status, caught.value.code) == (400, "UNKNOWN_PARAMETER")
