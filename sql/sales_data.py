"""The sales report, defined once: the orders and the summary of ``dbo.spSalesOrders``.

``sql/schema.sql`` computes the same values in T-SQL for a real SQL Server; the dev server
(``sql.devserver.sales``) encodes them on the wire; tests compare what a client fetched with
:func:`orders` and :func:`summary`.  Orders are numbered by a global 0-based ``n``: order ``n``
is placed on day ``EPOCH + n // ORDERS_PER_DAY``, so a date range is a contiguous range of ``n``
(:func:`order_numbers`) and every value is integer arithmetic on ``n`` (modulo, multiplication,
integer division, a pick from :data:`REGIONS`) that T-SQL says exactly the same way, BIGINT all
along (``n * 7919`` passes INT's range for the later years).

Each order's values are first computed as raw integers by :func:`raw_order` (the one place the
formulas live in Python); :func:`order_row` turns them into what pytds returns, the dev server's
encoder into wire bytes without Python objects per cell.

Regions: every day one region has no orders (the region index is ``(3 * day + k) % 5`` with
``k`` in 0..3 picked from ``n``, so region ``(3 * day + 4) % 5`` is missing that day), which
makes a summary without some region, and a region filter that finds nothing, easy to produce.
"""

from __future__ import annotations

import datetime
import decimal
from collections.abc import Iterator

EPOCH = datetime.date(2020, 1, 1)  # order 0's day
ORDERS_PER_DAY = 40
REGIONS: tuple[str, ...] = ("Central", "East", "North", "South", "West")  # sorted, as ORDER BY
# The dates a procedure call may ask for: twenty years, 2020 .. 2039.
MIN_DATE = datetime.date(2020, 1, 1)
MAX_DATE = datetime.date(2039, 12, 31)
# The longest range (From..To inclusive) one call returns: ten years and a few days, i.e.
# 146,400 orders: seconds of streaming, one Excel sheet, and no typo can ask for more.
MAX_DAYS = 3_660

# The formulas' constants (schema.sql spells out the same numbers).
REGION_PRIME, REGION_MODULUS = 7919, 9973  # a pseudo-random pick among the day's regions
REGIONS_A_DAY = len(REGIONS) - 1  # one region has no orders each day
REGION_DAY_STEP = 3  # which region a day leaves out moves by 3 (mod 5) from one day to the next
CUSTOMERS = 500  # Customer 001 .. Customer 500
CUSTOMER_STEP = 37  # coprime to CUSTOMERS: consecutive orders go to different customers
CUSTOMER_FORMAT = "Customer %03d"
MAX_QUANTITY = 20  # Quantity 1..20
QUANTITY_STEP = 13
PRICE_PRIME, PRICE_MODULUS = 7907, 99_901  # UnitPrice in cents: 0.99 .. 999.99
PRICE_MIN_CENTS = 99
PRICE_SCALE = 2  # UnitPrice, Amount: DECIMAL(p,2)

# (column name, SQL type) of each result set.
ORDER_COLUMNS: tuple[tuple[str, str], ...] = (
    ("OrderId", "INT"),
    ("OrderDate", "DATE"),
    ("Region", "NVARCHAR(20)"),
    ("Customer", "NVARCHAR(40)"),
    ("Quantity", "INT"),
    ("UnitPrice", "DECIMAL(10,2)"),
    ("Amount", "DECIMAL(12,2)"),
)
SUMMARY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("Region", "NVARCHAR(20)"),
    ("Orders", "INT"),
    ("Quantity", "BIGINT"),
    ("Amount", "DECIMAL(18,2)"),
)
# What pytds returns for a row of each.
OrderRow = tuple[int, datetime.date, str, str, int, decimal.Decimal, decimal.Decimal]
SummaryRow = tuple[str, int, int, decimal.Decimal]
REGION_LENGTH = 20  # @Region NVARCHAR(20), like the Region column

# What the procedure's THROW 50000 says (schema.sql has the same texts).
NULL_MESSAGE = "@From and @To must not be NULL."
ORDER_MESSAGE = "@From must not be after @To."
BOUNDS_MESSAGE = f"@From and @To must be between {MIN_DATE.isoformat()} and {MAX_DATE.isoformat()}."
LENGTH_MESSAGE = f"@From to @To must not span more than {MAX_DAYS} days."
# The procedure's PRINT after filling #Orders.
PRINT_FORMAT = "Sales orders: {count} orders from {start} to {end}."


def check_range(start: datetime.date | None, end: datetime.date | None) -> None:
    """The procedure's checks, in its order: ValueError with the text its THROW 50000 raises."""
    if start is None or end is None:
        raise ValueError(NULL_MESSAGE)
    if start > end:
        raise ValueError(ORDER_MESSAGE)
    if start < MIN_DATE or end > MAX_DATE:
        raise ValueError(BOUNDS_MESSAGE)
    if (end - start).days + 1 > MAX_DAYS:
        raise ValueError(LENGTH_MESSAGE)


def order_numbers(start: datetime.date, end: datetime.date) -> range:
    """The ``n`` of every order placed from ``start`` to ``end`` (inclusive)."""
    first = (start - EPOCH).days * ORDERS_PER_DAY
    return range(first, (end - EPOCH).days * ORDERS_PER_DAY + ORDERS_PER_DAY)


def raw_order(n: int) -> tuple[int, int, int, int, int]:
    """The raw integers of order ``n``: (day after EPOCH, region index, customer number,
    quantity, unit price in cents).  OrderId is ``n + 1``, Amount quantity x price."""
    day = n // ORDERS_PER_DAY
    pick = n * REGION_PRIME % REGION_MODULUS % REGIONS_A_DAY
    region = (REGION_DAY_STEP * day + pick) % len(REGIONS)
    customer = n * CUSTOMER_STEP % CUSTOMERS + 1
    quantity = (n * QUANTITY_STEP + day) % MAX_QUANTITY + 1
    cents = n * PRICE_PRIME % PRICE_MODULUS + PRICE_MIN_CENTS
    return day, region, customer, quantity, cents


def _money(cents: int) -> decimal.Decimal:
    return decimal.Decimal(cents).scaleb(-PRICE_SCALE)


def order_row(n: int) -> OrderRow:
    """The values pytds returns for order ``n`` (0-based): the columns of ORDER_COLUMNS."""
    if n < 0:
        raise ValueError(f"order numbers start at 0, got {n}")
    day, region, customer, quantity, cents = raw_order(n)
    return (
        n + 1,
        EPOCH + datetime.timedelta(days=day),
        REGIONS[region],
        CUSTOMER_FORMAT % customer,
        quantity,
        _money(cents),
        _money(quantity * cents),
    )


def region_matches(name: str, region: str | None) -> bool:
    """Whether a Region value passes the ``@Region`` filter as the T-SQL's ``Region = @Region``
    compares on the database's case-insensitive collation (trailing spaces do not count)."""
    return region is None or name.lower() == region.rstrip(" ").lower()


def region_indexes(region: str | None) -> frozenset[int]:
    """Indexes into REGIONS of the regions ``region`` lets through."""
    return frozenset(i for i, name in enumerate(REGIONS) if region_matches(name, region))


def matching_numbers(start: datetime.date, end: datetime.date, region: str | None) -> Iterator[int]:
    """The ``n`` of the orders the procedure returns, in OrderId order."""
    numbers = order_numbers(start, end)
    if region is None:
        yield from numbers
        return
    wanted = region_indexes(region)
    yield from (n for n in numbers if raw_order(n)[1] in wanted)


def orders(
    start: datetime.date, end: datetime.date, region: str | None = None
) -> Iterator[OrderRow]:
    """Result set 1: the orders from ``start`` to ``end``, only ``region``'s when given."""
    return (order_row(n) for n in matching_numbers(start, end, region))


def summary(
    start: datetime.date, end: datetime.date, region: str | None = None
) -> list[SummaryRow]:
    """Result set 2: (Region, Orders, Quantity, Amount) per region that has orders in the range,
    ordered by Region; empty when there are none."""
    totals: dict[int, list[int]] = {}
    for n in matching_numbers(start, end, region):
        _day, index, _customer, quantity, cents = raw_order(n)
        region_totals = totals.setdefault(index, [0, 0, 0])  # orders, quantity, cents
        region_totals[0] += 1
        region_totals[1] += quantity
        region_totals[2] += quantity * cents
    return [
        (REGIONS[i], count, quantity, _money(cents))
        for i, (count, quantity, cents) in sorted(totals.items())
    ]


def print_message(count: int, start: datetime.date, end: datetime.date) -> str:
    """The procedure's PRINT: how many orders it put in #Orders, for which dates."""
    return PRINT_FORMAT.format(count=count, start=start.isoformat(), end=end.isoformat())
