"""Pure parts: configuration from flags and environment, the report's layout, metrics text."""

from __future__ import annotations

import dataclasses
import datetime
import os

import pytest

import xlsx
from server.__main__ import OPTIONS, ConfigError, load_config
from server.app import ExportApi
from server.catalog import builtin_catalog
from server.config import (
    ApiConfig,
    DbSettings,
    settings_from_json,
    settings_to_json,
    worker_settings,
)
from server.metrics import Metrics, Outcome
from server.report import column_spec, download_filename, layout, sql_type
from sql.devserver import DevServer
from sql.report_data import COLUMNS
from tests.devclient import dev_connect
from tests.test_server.readers import HEADER

ENV = {"MSSQL_PASSWORD": "secret"}


def test_defaults_are_the_documented_ones() -> None:
    config = load_config([], ENV)
    assert config.port == 3001
    assert config.host == "127.0.0.1"
    assert (config.pool_min, config.pool_max) == (5, 50)
    assert config.default_row_count == 30_000
    assert config.max_row_count == 1_048_576
    assert config.first_row_timeout_s == 30.0
    assert config.client_write_timeout_s == 60.0
    assert config.memory_log_every_rows == 5_000
    assert config.db == DbSettings(password="secret")
    assert config == dataclasses.replace(ApiConfig(), db=DbSettings(password="secret"))


def test_environment_then_flags_win() -> None:
    env = {**ENV, "MSSQL_HOST": "db.internal", "MSSQL_PORT": "14330", "API_POOL_MAX": "8"}
    config = load_config(["--pool-max", "9", "--port", "0", "--log-level", "debug"], env)
    assert config.db.host == "db.internal"
    assert config.db.port == 14330
    assert config.pool_max == 9
    assert config.port == 0
    assert config.log_level == "DEBUG"


def test_every_option_names_a_real_field_and_a_unique_flag_and_variable() -> None:
    api_fields = {f.name for f in dataclasses.fields(ApiConfig)}
    db_fields = {f"db.{f.name}" for f in dataclasses.fields(DbSettings)}
    assert {o.field for o in OPTIONS} == (api_fields - {"db"}) | db_fields
    assert len({o.flag for o in OPTIONS}) == len(OPTIONS)
    assert len({o.env for o in OPTIONS}) == len(OPTIONS)


@pytest.mark.parametrize(
    ("argv", "env", "culprit"),
    [
        ([], {}, "MSSQL_PASSWORD"),
        (["--port", "70000"], ENV, "--port"),
        ([], {**ENV, "API_FIRST_ROW_TIMEOUT": "0"}, "API_FIRST_ROW_TIMEOUT"),
        ([], {**ENV, "API_POOL_MIN": "-1"}, "API_POOL_MIN"),
        (["--pool-min", "10", "--pool-max", "5"], ENV, "pool minimum"),
        (["--default-row-count", "10", "--max-row-count", "5"], ENV, "default row count"),
        ([], {**ENV, "LOG_LEVEL": "loud"}, "LOG_LEVEL"),
    ],
)
def test_bad_values_name_their_source(argv: list[str], env: dict[str, str], culprit: str) -> None:
    with pytest.raises(ConfigError, match=culprit):
        load_config(argv, env)


def test_password_never_in_repr() -> None:
    assert "secret" not in repr(load_config([], ENV))


def test_unknown_columns_keep_their_name_and_get_no_spec() -> None:
    assert layout([("SomethingNew", 0xF1, None, None, None, None, 1)]) == (
        ["SomethingNew"],
        [None],
    )


@pytest.mark.parametrize(
    ("column", "type_text"),
    [
        (("a", 0x38, None, 4, None, None, 1), "INT"),
        (("a", 0x26, None, 8, None, None, 1), "BIGINT"),
        (("a", 0x26, None, 2, None, None, 1), "SMALLINT"),
        (("a", 0x6A, None, 9, 18, 4, 1), "DECIMAL(18,4)"),
        (("a", 0x6C, None, 5, 9, 0, 1), "NUMERIC(9,0)"),
        (("a", 0x2A, None, 7, 3, None, 1), "DATETIME2(3)"),
        (("a", 0x6F, None, 8, None, None, 1), "DATETIME"),
        (("a", 0x6D, None, 4, None, None, 1), "REAL"),
        (("a", 0xE7, None, 100.0, None, None, 1), "NVARCHAR"),
        (("a", 0xF1, None, None, None, None, 1), None),
    ],
)
def test_sql_types_from_the_description_pytds_gives(
    column: tuple[object, ...], type_text: str | None
) -> None:
    assert sql_type(column) == type_text


@pytest.mark.parametrize(
    ("sql_type", "number_format"),
    [
        ("INT", "0"),
        ("BIGINT", "0"),
        ("DECIMAL(18,4)", "0.0000"),
        ("numeric(10, 2)", "0.00"),
        ("DECIMAL(18,0)", "0"),
        ("DATETIME2(3)", "yyyy-mm-dd hh:mm:ss.000"),
        ("DATETIME2(7)", "yyyy-mm-dd hh:mm:ss.000"),
        ("DATETIME2(0)", None),
        ("DATETIME", "yyyy-mm-dd hh:mm:ss.000"),
        ("DATE", None),
        ("VARCHAR(100)", None),
        ("BIT", None),
        ("FLOAT", None),
        ("GEOGRAPHY", None),
    ],
)
def test_column_formats_follow_sql_types(sql_type: str, number_format: str | None) -> None:
    spec = column_spec(sql_type)
    assert isinstance(spec, xlsx.Column)
    assert spec.number_format == number_format


def test_filename_comes_from_the_clock() -> None:
    moment = datetime.datetime(2026, 2, 7, 14, 30, 22, tzinfo=datetime.UTC)
    assert download_filename("report", moment) == "report-2026-02-07-143022.xlsx"
    assert download_filename("sales", moment) == "sales-2026-02-07-143022.xlsx"


def test_histogram_buckets_are_cumulative_and_counts_add_up() -> None:
    metrics = Metrics(duration_buckets=(1.0, 10.0))
    for duration in (0.5, 5.0, 50.0):
        metrics.export_started()
        metrics.export_finished(Outcome.COMPLETED, duration)
    metrics.request_refused(Outcome.INVALID)
    text = metrics.render(pool_idle=2, pool_in_use=1, resident_memory_bytes=123)
    assert 'export_duration_seconds_bucket{le="1"} 1\n' in text
    assert 'export_duration_seconds_bucket{le="10"} 2\n' in text
    assert 'export_duration_seconds_bucket{le="+Inf"} 3\n' in text
    assert "export_duration_seconds_sum 55.5\n" in text
    assert 'export_requests_total{outcome="completed"} 3\n' in text
    assert 'export_requests_total{outcome="invalid"} 1\n' in text
    assert "exports_active 0\n" in text
    assert 'db_pool_connections{state="in_use"} 1\n' in text


def test_layout_follows_the_types_the_database_reports(devserver_thread: DevServer) -> None:
    """Over TCP: the description pytds builds from the dev server's COLMETADATA gives each
    column the spec of the SQL type the procedure declares (sql/schema.sql, report_data)."""
    conn = dev_connect(devserver_thread.port)
    try:
        cursor = conn.cursor()
        cursor.callproc("dbo.spGenerateData", (1,))
        demo = builtin_catalog().reports["report"].sheets[0]
        headers, specs = layout(cursor.description, None, demo.columns)
        cursor.fetchall()
    finally:
        conn.close()
    assert headers == list(HEADER)
    assert specs == [column_spec(column.sql_type) for column in COLUMNS]
    formats = {h: s.number_format for h, s in zip(headers, specs, strict=True) if s}
    assert formats["Decimal"] == "0.0000"
    assert formats["DateTime"] == "yyyy-mm-dd hh:mm:ss.000"
    assert formats["Big Integer"] == "0"


def test_workers_are_one_per_core_unless_set() -> None:
    assert load_config([], ENV).workers is None
    assert ExportApi(load_config([], ENV)).workers.count == len(os.sched_getaffinity(0))
    assert load_config(["--workers", "3"], ENV).workers == 3
    assert load_config([], {**ENV, "API_WORKERS": "0"}).workers == 0
    with pytest.raises(ConfigError, match="--workers"):
        load_config(["--workers", "-1"], ENV)


@pytest.mark.parametrize(
    ("pool_min", "count", "shares"),
    [(5, 2, [3, 2]), (1, 2, [1, 0]), (0, 3, [0, 0, 0]), (5, 1, [5]), (4, 0, [4])],
)
def test_the_workers_share_the_warm_connections_and_each_may_use_the_whole_limit(
    pool_min: int, count: int, shares: list[int]
) -> None:
    """Admission is decided once, for the service: each worker's pool may lend up to the whole
    limit, and the minimum kept warm is split between them (--workers 0: one worker)."""
    config = dataclasses.replace(load_config([], ENV), pool_min=pool_min, pool_max=9)
    settings = [worker_settings(config, index, count) for index in range(max(count, 1))]
    assert [s.pool_min for s in settings] == shares
    assert {s.pool_max for s in settings} == {9}
    assert [s.index for s in settings] == list(range(len(shares)))
    assert settings_from_json(settings_to_json(settings[-1])) == settings[-1]
    assert settings[0].db == config.db
