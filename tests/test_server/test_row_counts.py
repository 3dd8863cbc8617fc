"""The rows an export writes are the rows the database says it sent: a stream that goes on
past the rows the report asked for is broken off at that number (and the query cancelled), and
a result set whose rows disagree with the count its DONE token gives is never a workbook. On
both row paths (the fast path, and pytds decoding every row)."""

from __future__ import annotations

import logging

import aiohttp
import pytest

from server.catalog import DEFAULT_ROW_LIMIT, builtin_catalog
from sql.devserver import DevServer
from tests.polling import apoll
from tests.test_server.conftest import StartApi, download, read_until_aborted, url, wait_idle
from tests.test_server.readers import is_valid_zip

# Either row path reads the same stream; the count checks hold on both.
ROW_PATHS = pytest.mark.parametrize("fast_rows", [True, False], ids=["fast-path", "pytds"])
# ~80 bytes of workbook a row before compression: a file of ~1,000 rows is far below this,
# one of the millions of rows an endless stream would have given is far above.
SMALL_FILE_BYTES = 1_000_000


def test_the_row_count_parameter_bounds_the_rows_of_the_call() -> None:
    catalog = builtin_catalog(default_row_count=30_000, max_row_count=1_048_576)
    demo = catalog.reports["report"]
    assert demo.bind({"rowCount": ["1000"]}).row_limit == 1000
    assert demo.bind({}).row_limit == 30_000  # the default rowCount
    sales = catalog.reports["sales"]  # no row count parameter: the report's own limit
    assert sales.bind({"from": ["2024-01-01"], "to": ["2024-12-31"]}).row_limit == DEFAULT_ROW_LIMIT


@ROW_PATHS
async def test_rows_past_the_count_asked_for_break_the_download_off(
    devserver: DevServer,
    start_api: StartApi,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
    fast_rows: bool,
) -> None:
    caplog.set_level(logging.INFO)
    devserver.faults.endless_rows = True
    api = await start_api(fast_rows=fast_rows)
    async with http.get(url(api, "/export/report?rowCount=1000")) as response:
        assert response.status == 200
        body, aborted = await read_until_aborted(response)
    assert aborted, "never a workbook of the rows that came"
    assert not is_valid_zip(body)
    assert len(body) < SMALL_FILE_BYTES, "broken off at the rows asked for, not much later"
    await apoll(
        lambda: "more than 1,000 rows, its row limit" in caplog.text, what="the row limit's log"
    )
    # The query is cancelled (an attention, acknowledged) and the connection kept.
    await apoll(lambda: devserver.stats.attentions_answered == 1, what="the attention")
    await wait_idle(api)
    devserver.faults.endless_rows = False
    assert is_valid_zip(await download(http, api, 1000))
    assert devserver.stats.connections_total == 1


@ROW_PATHS
async def test_a_result_set_that_ends_short_of_its_count_is_never_a_workbook(
    devserver: DevServer,
    start_api: StartApi,
    http: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
    fast_rows: bool,
) -> None:
    caplog.set_level(logging.INFO)
    devserver.faults.end_after_rows = 5_001  # its DONE still counts the 10,000 rows
    api = await start_api(fast_rows=fast_rows)
    async with http.get(url(api, "/export/report?rowCount=10000")) as response:
        assert response.status == 200
        body, aborted = await read_until_aborted(response)
    assert aborted
    assert not is_valid_zip(body)
    await apoll(
        lambda: "5,001 rows read of a result set it counted as 10,000" in caplog.text,
        what="the count's log line",
    )
    await wait_idle(api)
    devserver.faults.end_after_rows = None
    assert is_valid_zip(await download(http, api, 10_000))
