"""``dbo.spSalesOrders``: the sales report's definition (sql.sales_data) and the dev server's
procedure, through pytds over TCP, on the wire, and through FreeTDS.

A client gets exactly :func:`sales_data.orders` and :func:`sales_data.summary` for every range
and region; a range the T-SQL refuses is its THROW 50000; the reply has the shape of a real
procedure with SET NOCOUNT OFF (the INSERT's count and a PRINT before the first result set).
"""

from __future__ import annotations

import datetime
import decimal
from collections.abc import Iterator
from typing import Any

import pytds
import pytest

from sql import sales_data as sd
from sql.devserver import DEV_DATABASE, DEV_PASSWORD, DEV_USER, DevServer, columns, run_in_thread
from sql.devserver import sales as wire
from tests.devclient import AFTER_ATTENTION
from tests.test_sql import tdsclient
from tests.test_sql.test_other_clients import run_tsql

PROC = "dbo.spSalesOrders"
D = datetime.date
LEAP_DAY = D(2024, 2, 29)
LONGEST = (sd.MIN_DATE, sd.MIN_DATE + datetime.timedelta(days=sd.MAX_DAYS - 1))


def absent_region(day: datetime.date) -> str:
    """The region that has no orders on ``day`` (sales_data's module docstring)."""
    return sd.REGIONS[(sd.REGION_DAY_STEP * (day - sd.EPOCH).days + 4) % len(sd.REGIONS)]


# -- the definition ---------------------------------------------------------------------------


def test_columns_and_their_types() -> None:
    assert sd.ORDER_COLUMNS == (
        ("OrderId", "INT"), ("OrderDate", "DATE"), ("Region", "NVARCHAR(20)"),
        ("Customer", "NVARCHAR(40)"), ("Quantity", "INT"), ("UnitPrice", "DECIMAL(10,2)"),
        ("Amount", "DECIMAL(12,2)"),
    )  # fmt: skip
    assert sd.SUMMARY_COLUMNS == (
        ("Region", "NVARCHAR(20)"), ("Orders", "INT"), ("Quantity", "BIGINT"),
        ("Amount", "DECIMAL(18,2)"),
    )  # fmt: skip


def test_order_values_are_typed_and_in_range() -> None:
    last = len(sd.order_numbers(sd.MIN_DATE, sd.MAX_DATE)) - 1
    for n in [*range(4000), *range(last - 400, last + 1)]:
        order_id, day, region, customer, quantity, price, amount = sd.order_row(n)
        assert order_id == n + 1
        assert day == sd.EPOCH + datetime.timedelta(days=n // sd.ORDERS_PER_DAY)
        assert sd.MIN_DATE <= day <= sd.MAX_DATE
        assert region in sd.REGIONS
        assert customer.startswith("Customer ") and len(customer) == 12  # noqa: PT018
        assert 1 <= quantity <= sd.MAX_QUANTITY
        assert decimal.Decimal("0.99") <= price <= decimal.Decimal("999.99")
        assert amount == quantity * price
        assert price.as_tuple().exponent == amount.as_tuple().exponent == -2
    assert sd.order_row(last)[1] == sd.MAX_DATE
    assert len(list(sd.orders(*LONGEST))) == sd.MAX_DAYS * sd.ORDERS_PER_DAY


def test_every_day_one_region_has_no_orders() -> None:
    for offset in range(30):
        day = LEAP_DAY + datetime.timedelta(days=offset)
        regions = {r[2] for r in sd.orders(day, day)}
        assert regions == set(sd.REGIONS) - {absent_region(day)}


def test_summary_adds_up_the_orders() -> None:
    start, end = D(2023, 12, 28), D(2024, 1, 4)
    rows = list(sd.orders(start, end))
    summary = sd.summary(start, end)
    assert [s[0] for s in summary] == sorted({r[2] for r in rows})
    for region, count, quantity, amount in summary:
        mine = [r for r in rows if r[2] == region]
        assert (count, quantity, amount) == (
            len(mine), sum(r[4] for r in mine), sum(r[6] for r in mine)
        )  # fmt: skip
    assert sd.summary(start, end, "south") == [s for s in summary if s[0] == "South"]
    assert sd.summary(start, end, "Nowhere") == []


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (None, D(2024, 1, 1), sd.NULL_MESSAGE),
        (D(2024, 1, 1), None, sd.NULL_MESSAGE),
        (D(2024, 1, 2), D(2024, 1, 1), sd.ORDER_MESSAGE),
        (D(2019, 12, 31), D(2020, 1, 1), sd.BOUNDS_MESSAGE),
        (D(2039, 12, 31), D(2040, 1, 1), sd.BOUNDS_MESSAGE),
        (LONGEST[0], LONGEST[1] + datetime.timedelta(days=1), sd.LENGTH_MESSAGE),
    ],
)
def test_check_range_raises_the_procedures_messages(
    start: datetime.date | None, end: datetime.date | None, message: str
) -> None:
    with pytest.raises(ValueError, match="^" + message.replace(".", r"\.") + "$"):
        sd.check_range(start, end)


@pytest.mark.parametrize(("start", "end"), [LONGEST, (sd.MAX_DATE, sd.MAX_DATE)])
def test_check_range_accepts_the_extremes(start: datetime.date, end: datetime.date) -> None:
    sd.check_range(start, end)


def test_the_fast_row_encoder_writes_what_the_generic_encoder_writes() -> None:
    """Every cell as sqltypes encodes the spColumns JSON value of it."""
    numbers = [*range(200), 60_800, 292_199]
    json_rows = [[_json(v) for v in sd.order_row(n)] for n in numbers]
    generic = columns.result(wire.ORDER_PARSED, json_rows, row_tokens="row")
    assert [wire.encode_order(n) for n in numbers] == list(generic.rows)


def _json(value: object) -> object:
    if isinstance(value, decimal.Decimal | datetime.date):
        return str(value)
    return value


# -- over TCP -------------------------------------------------------------------------------


def fetch_into(cur: Any, rows: list[tuple[Any, ...]]) -> None:
    while (row := cur.fetchone()) is not None:
        rows.append(tuple(row))


@pytest.fixture(scope="module")
def server() -> Iterator[DevServer]:
    with run_in_thread(host="127.0.0.1", port=0) as srv:
        yield srv


def call(conn: Any, *args: Any) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[str]]:
    """Both result sets of a callproc and the messages that came with them."""
    with conn.cursor() as cur:
        cur.callproc(PROC, args[0] if len(args) == 1 else args)
        assert [d[0] for d in cur.description] == [n for n, _ in sd.ORDER_COLUMNS]
        orders = [tuple(r) for r in cur.fetchall()]
        assert cur.nextset()
        assert [d[0] for d in cur.description] == [n for n, _ in sd.SUMMARY_COLUMNS]
        summary = [tuple(r) for r in cur.fetchall()]
        assert not cur.nextset()
        assert cur.return_value == 0
        messages = [m[1].text for m in cur.messages]
    return orders, summary, messages


@pytest.mark.parametrize(
    ("start", "end", "region"),
    [
        (sd.MIN_DATE, sd.MIN_DATE, None),  # From == To, the first day
        (LEAP_DAY, LEAP_DAY, None),
        (D(2024, 2, 27), D(2024, 3, 2), "North"),
        (D(2023, 12, 30), D(2024, 1, 3), "west"),  # the collation is case-insensitive
        (D(2039, 12, 25), sd.MAX_DATE, None),
        (D(2030, 6, 1), D(2030, 8, 31), "Central "),  # trailing spaces do not count
    ],
)
def test_callproc_gets_exactly_the_definitions_orders_and_summary(
    conn: Any, start: datetime.date, end: datetime.date, region: str | None
) -> None:
    args = (start, end) if region is None else (start, end, region)
    orders, summary, messages = call(conn, *args)
    assert orders == list(sd.orders(start, end, region))
    assert summary == sd.summary(start, end, region)
    assert orders
    assert messages == [sd.print_message(len(orders), start, end)]


def test_the_longest_range_streams_all_its_orders(conn: Any) -> None:
    orders, summary, _messages = call(conn, *LONGEST)
    assert len(orders) == sd.MAX_DAYS * sd.ORDERS_PER_DAY
    assert orders == list(sd.orders(*LONGEST))
    assert summary == sd.summary(*LONGEST)


def test_a_region_without_orders_gives_two_empty_result_sets(conn: Any) -> None:
    """Both descriptions still arrive; the summary leaves the region out when unfiltered."""
    region = absent_region(LEAP_DAY)
    orders, summary, messages = call(conn, LEAP_DAY, LEAP_DAY, region)
    assert (orders, summary) == ([], [])
    assert messages == [sd.print_message(0, LEAP_DAY, LEAP_DAY)]
    _orders, summary, _messages = call(conn, LEAP_DAY, LEAP_DAY)
    assert [s[0] for s in summary] == [r for r in sd.REGIONS if r != region]
    assert call(conn, LEAP_DAY, LEAP_DAY, "Nowhere")[:2] == ([], [])


def test_parameters_by_name_in_any_order_and_region_as_default(conn: Any) -> None:
    day = D(2025, 5, 5)
    by_name = call(conn, {"@To": day, "@Region": "East", "@From": day})
    assert by_name[0] == list(sd.orders(day, day, "East"))
    defaulted = call(conn, {"@From": day, "@To": day, "@Region": pytds.default})
    assert defaulted[0] == list(sd.orders(day, day))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((None, LEAP_DAY), sd.NULL_MESSAGE),
        ((LEAP_DAY, D(2024, 2, 28)), sd.ORDER_MESSAGE),
        ((D(2019, 12, 31), LEAP_DAY), sd.BOUNDS_MESSAGE),
        ((LEAP_DAY, D(2040, 1, 1)), sd.BOUNDS_MESSAGE),
        ((LONGEST[0], LONGEST[1] + datetime.timedelta(days=1)), sd.LENGTH_MESSAGE),
    ],
)
def test_a_refused_range_is_the_throw_of_the_tsql(
    conn: Any, args: tuple[Any, ...], message: str
) -> None:
    with conn.cursor() as cur, pytest.raises(pytds.OperationalError) as info:
        cur.callproc(PROC, args)
    assert info.value.msg_no == 50000
    assert info.value.text == message
    assert call(conn, LEAP_DAY, LEAP_DAY)[0] == list(sd.orders(LEAP_DAY, LEAP_DAY))


@pytest.mark.parametrize(
    ("statement", "number"),
    [
        ("EXEC dbo.spSalesOrders '2024-01-01'", 201),
        ("EXEC dbo.spSalesOrders @From = '2024-01-01', @Till = '2024-01-02'", 8145),
        ("EXEC dbo.spSalesOrders '2024-01-01', '2024-01-02', N'East', 4", 8144),
        ("EXEC dbo.spSalesOrders @From = '2024-01-01', '2024-01-02'", 119),
        ("EXEC dbo.spSalesOrders '2024-13-01', '2024-01-02'", 241),
        ("EXEC dbo.spSalesOrders 20240101, '2024-01-02'", 206),
    ],
)
def test_binding_and_conversion_errors_are_sql_servers(
    conn: Any, statement: str, number: int
) -> None:
    with conn.cursor() as cur, pytest.raises(pytds.Error) as info:
        cur.execute(statement)
    assert info.value.msg_no == number


def test_execute_stops_at_the_inserts_count_and_nextset_reaches_the_rows(conn: Any) -> None:
    """What docs/driver.md says of execute() with SET NOCOUNT OFF: the first "result" is the
    INSERT's row count; the orders are the next set."""
    with conn.cursor() as cur:
        cur.execute("EXEC dbo.spSalesOrders @From = '20240229', @To = '2024-03-01'")
        expected = list(sd.orders(LEAP_DAY, D(2024, 3, 1)))
        assert cur.description is None
        assert cur.rowcount == len(expected)
        assert cur.nextset()
        assert [tuple(r) for r in cur.fetchall()] == expected


def test_execute_with_parameters_goes_through_sp_executesql(conn: Any) -> None:
    with conn.cursor() as cur:
        cur.execute("EXEC dbo.spSalesOrders %s, %s, @Region = %s", (LEAP_DAY, LEAP_DAY, "East"))
        assert cur.rowcount == len(list(sd.orders(LEAP_DAY, LEAP_DAY, "East")))
        assert cur.nextset()
        assert [tuple(r) for r in cur.fetchall()] == list(sd.orders(LEAP_DAY, LEAP_DAY, "East"))
        assert cur.nextset()
        assert [tuple(r) for r in cur.fetchall()] == sd.summary(LEAP_DAY, LEAP_DAY, "East")


def test_a_mid_stream_error_arrives_after_the_rows_before_it(server: DevServer, conn: Any) -> None:
    server.faults.error_after_rows = 100
    got: list[tuple[Any, ...]] = []
    try:
        with conn.cursor() as cur:
            cur.callproc(PROC, (D(2024, 1, 1), D(2024, 1, 31)))
            with pytest.raises(pytds.OperationalError) as info:
                fetch_into(cur, got)
            assert info.value.msg_no == 8134
    finally:
        server.faults.error_after_rows = None
    assert got == list(sd.orders(D(2024, 1, 1), D(2024, 1, 31)))[:100]
    assert call(conn, LEAP_DAY, LEAP_DAY)[0] == list(sd.orders(LEAP_DAY, LEAP_DAY))


def test_cancel_mid_stream_then_reuse_the_connection(server: DevServer, conn: Any) -> None:
    attentions = server.stats.attentions
    with conn.cursor() as cur:
        cur.callproc(PROC, LONGEST)
        first = [tuple(cur.fetchone()) for _ in range(50)]
        cur.cancel()
    assert first == [sd.order_row(n) for n in range(50)]
    assert server.stats.attentions == attentions + 1
    assert server.stats.rows_sent - server.stats.rows_at_last_attention <= AFTER_ATTENTION
    assert call(conn, LEAP_DAY, LEAP_DAY)[0] == list(sd.orders(LEAP_DAY, LEAP_DAY))


# -- on the wire ------------------------------------------------------------------------------

DONE_MORE_COUNT = 0x11
CMD_SELECT, CMD_INSERT, CMD_EXECUTE = 0xC1, 0xC3, 0xE0


def test_the_reply_has_the_shape_of_a_set_nocount_off_procedure(server: DevServer) -> None:
    """DONEINPROC (the INSERT's count), INFO (the PRINT), the orders and their DONEINPROC, the
    summary and its DONEINPROC, RETURNSTATUS 0, DONEPROC; read by the raw client."""
    found = raw_tokens(server, "EXEC dbo.spSalesOrders '2024-02-29', '2024-02-29', N'North'")
    count = len(list(sd.orders(LEAP_DAY, LEAP_DAY, "North")))
    kinds = [t[0] for t in found]
    assert kinds == [
        "DONEINPROC", "INFO", "COLMETADATA", *["ROW"] * count, "DONEINPROC",
        "COLMETADATA", "ROW", "DONEINPROC", "RETURNSTATUS", "DONEPROC",
    ]  # fmt: skip
    assert found[0] == ("DONEINPROC", DONE_MORE_COUNT, CMD_INSERT, count)
    text = sd.print_message(count, LEAP_DAY, LEAP_DAY)
    assert found[1] == ("INFO", 0, 0, text, "spSalesOrders")
    assert found[2] == ("COLMETADATA", tuple(n for n, _ in sd.ORDER_COLUMNS))
    assert found[3 + count] == ("DONEINPROC", DONE_MORE_COUNT, CMD_SELECT, count)
    assert found[-5] == ("COLMETADATA", tuple(n for n, _ in sd.SUMMARY_COLUMNS))
    assert found[-3:] == [
        ("DONEINPROC", DONE_MORE_COUNT, CMD_SELECT, 1),
        ("RETURNSTATUS", 0),
        ("DONEPROC", 0x00, CMD_EXECUTE, 0),
    ]
    first_order = found[3]
    assert first_order[1][0] == (60_806).to_bytes(4, "little")  # OrderId as INT4
    assert sd.order_row(60_805)[0] == 60_806


def raw_tokens(server: DevServer, statement: str) -> list[tuple[object, ...]]:
    with tdsclient.RawClient("127.0.0.1", server.port) as client:
        client.login(DEV_USER, DEV_PASSWORD, DEV_DATABASE)
        client.sock.sendall(tdsclient.batch_message(statement))
        return tdsclient.reply_tokens(client.read_reply().payload)


def test_a_mid_stream_error_ends_the_procedure_without_the_summary(server: DevServer) -> None:
    """ERROR, DONEINPROC (ERROR), RETURNSTATUS, DONEPROC (ERROR, final): the rest of the
    procedure (the orders' DONEINPROC, the summary) is not sent."""
    server.faults.error_after_rows = 5
    try:
        found = raw_tokens(server, "EXEC dbo.spSalesOrders '2024-02-29', '2024-02-29'")
    finally:
        server.faults.error_after_rows = None
    assert [t[0] for t in found] == [
        "DONEINPROC", "INFO", "COLMETADATA", *["ROW"] * 5,
        "ERROR", "DONEINPROC", "RETURNSTATUS", "DONEPROC",
    ]  # fmt: skip
    assert found[-3:] == [
        ("DONEINPROC", 0x13, CMD_SELECT, 5),
        ("RETURNSTATUS", -6),
        ("DONEPROC", 0x02, CMD_EXECUTE, 0),
    ]


def test_freetds_tsql_reads_both_result_sets(server: DevServer) -> None:
    out = run_tsql(
        server,
        "EXEC dbo.spSalesOrders @From = '2024-02-29', @To = '2024-02-29', @Region = N'north'\n"
        "go\nEXEC dbo.spSalesOrders '2024-03-01', '2024-02-29'\ngo\nexit\n",
    )
    lines = [line.split("\t") for line in out.splitlines() if "\t" in line]
    orders = list(sd.orders(LEAP_DAY, LEAP_DAY, "north"))
    assert lines[0] == [n for n, _ in sd.ORDER_COLUMNS]
    for cells, order in zip(lines[1 : 1 + len(orders)], orders, strict=True):
        assert [cells[0], *cells[2:]] == [str(order[0]), *map(str, order[2:])]
    summary = sd.summary(LEAP_DAY, LEAP_DAY, "north")
    assert lines[1 + len(orders)] == [n for n, _ in sd.SUMMARY_COLUMNS]
    assert lines[2 + len(orders) : 2 + len(orders) + len(summary)] == [
        list(map(str, s)) for s in summary
    ]
    assert sd.print_message(len(orders), LEAP_DAY, LEAP_DAY) in out
    assert "Msg 50000" in out
    assert sd.ORDER_MESSAGE in out
