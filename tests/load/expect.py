"""What a download of a given report must hold, and the comparison with what it held (pure).

An :class:`Expectation` is a report's logical sheets in order ("Orders", "Summary by region"),
each with its data rows, its columns and, where known, the values of its first and last data
rows. The workbook may hold more sheets than that: a sheet past Excel's rows (or the API's
``max_rows_per_sheet``) rolls over to "<name> (2)", "<name> (3)"... so :func:`check_download`
first groups the workbook's sheets into the logical ones by their names, then checks each group:
rows summed over its parts, every part's header as wide as the report's columns, the first data
row (of its first part) and the last (of its last part) against the expected values.

The values are compared with the writer's documented typing rules (``xlsx/cells.py``): a cell
is a number, a boolean or text according to the value's type; a NULL is no cell at all.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
from collections.abc import Sequence
from dataclasses import dataclass

from tests.load.errors import InvalidDownload
from tests.load.sheets import Cell, Row
from tests.load.verify import SheetVerdict, Verdict
from xlsx.cells import MAX_EXACT_INT
from xlsx.dates import EPOCH, SECONDS_PER_DAY, date_serial, to_naive_utc
from xlsx.names import continuation_name

# A datetime is compared to within a second: the writer keeps a fraction of a second only when
# the column's number format shows one (the export's formats follow the SQL type's precision).
DATETIME_TOLERANCE_DAYS = 1.0 / SECONDS_PER_DAY
_TEXT = frozenset({"inlineStr", "str"})


@dataclass(frozen=True)
class SheetExpectation:
    """One logical sheet of a report's workbook."""

    name: str
    data_rows: int
    columns: int
    first_row: tuple[object, ...] | None = None  # values of data row 1 (None: not checked)
    last_row: tuple[object, ...] | None = None  # values of the last data row (None: not checked)


@dataclass(frozen=True)
class Expectation:
    sheets: tuple[SheetExpectation, ...]

    @property
    def data_rows(self) -> int:
        return sum(sheet.data_rows for sheet in self.sheets)

    def for_json(self) -> dict[str, int]:
        """Data rows by sheet name, as the report records them."""
        return {sheet.name: sheet.data_rows for sheet in self.sheets}

    def describe(self) -> str:
        """``"20,000 rows"``, or ``"1,234 rows (Orders 1,229, Summary by region 5)"``."""
        total = f"{self.data_rows:,} rows"
        if len(self.sheets) == 1:
            return total
        return f"{total} ({', '.join(f'{s.name} {s.data_rows:,}' for s in self.sheets)})"


def check_download(verdict: Verdict, expected: Expectation) -> None:
    """Raise :class:`InvalidDownload` saying how ``verdict`` differs from ``expected``."""
    groups = group_sheets(verdict.sheets, [sheet.name for sheet in expected.sheets])
    for parts, sheet in zip(groups, expected.sheets, strict=True):
        rows = sum(part.data_rows for part in parts)
        if rows != sheet.data_rows:
            where = "" if len(parts) == 1 else f" over {len(parts)} sheets"
            raise InvalidDownload(
                f"sheet {sheet.name!r}: {rows:,} data rows{where}, {sheet.data_rows:,} expected"
            )
        for part in parts:
            if part.columns != sheet.columns:
                raise InvalidDownload(
                    f"sheet {part.name!r}: {part.columns} header cells, {sheet.columns} columns "
                    "expected"
                )
        if sheet.data_rows:
            _check_row("first", parts[0].first_row, sheet.first_row, parts[0])
            _check_row("last", parts[-1].last_row, sheet.last_row, parts[-1])


def group_sheets(sheets: Sequence[SheetVerdict], names: Sequence[str]) -> list[list[SheetVerdict]]:
    """The workbook's sheets grouped by the logical sheet they belong to: each group starts with
    the sheet of that name and goes on with its rollover sheets, named as the writer names them
    (``xlsx.names.continuation_name``, which also avoids every name taken before)."""
    groups: list[list[SheetVerdict]] = []
    taken: set[str] = set()
    position = 0
    for name in names:
        if position >= len(sheets) or sheets[position].name != name:
            found = [sheet.name for sheet in sheets]
            raise InvalidDownload(f"sheets {found}: expected {name!r} as sheet {position + 1}")
        group = [sheets[position]]
        taken.add(name.casefold())
        position += 1
        while position < len(sheets):
            following = continuation_name(name, len(group) + 1, taken)
            if sheets[position].name != following:
                break
            group.append(sheets[position])
            taken.add(following.casefold())
            position += 1
        groups.append(group)
    if position < len(sheets):
        raise InvalidDownload(f"unexpected sheet {sheets[position].name!r} after {names[-1]!r}")
    return groups


def _check_row(
    which: str, row: Row | None, values: tuple[object, ...] | None, part: SheetVerdict
) -> None:
    if values is None:
        return
    if row is None:
        raise InvalidDownload(f"sheet {part.name!r}: its {which} data row could not be read")
    for column, value in enumerate(values):
        problem = cell_problem(value, row.cell(column))
        if problem:
            raise InvalidDownload(
                f"sheet {part.name!r} row {row.number} column {column + 1}: {problem}"
            )


def cell_problem(expected: object, cell: Cell | None) -> str | None:
    """What is wrong with ``cell`` as the writer's rendering of ``expected``; None when it
    matches (or when ``expected`` is of a type not compared here: time, UUID, bytes)."""
    got = "no cell" if cell is None else f"{cell.kind} {cell.text!r}"
    if expected is None:
        return None if cell is None else f"{got}, expected none (NULL)"
    if cell is None:
        return f"no cell, expected {expected!r}"
    if isinstance(expected, bool):
        ok = cell.kind == "b" and cell.text == str(int(expected))
    elif isinstance(expected, int | decimal.Decimal) and _digits_as_text(expected):
        digits = str(expected) if isinstance(expected, int) else format(expected, "f")
        ok = cell.kind in _TEXT and cell.text == digits
    elif isinstance(expected, int | decimal.Decimal | float):
        ok = _number(cell) == float(expected)  # exact: the writer writes the nearest double
    elif isinstance(expected, dt.datetime):
        serial = (to_naive_utc(expected) - EPOCH) / dt.timedelta(days=1)
        number = _number(cell)
        ok = number is not None and abs(number - serial) < DATETIME_TOLERANCE_DAYS
    elif isinstance(expected, dt.date):
        day = date_serial(expected)
        ok = _number(cell) == day if day is not None else cell.text == expected.isoformat()
    elif isinstance(expected, str):
        ok = cell.kind in _TEXT and cell.text == expected
    else:
        return None
    return None if ok else f"{got}, expected {expected!r}"


def _digits_as_text(value: int | decimal.Decimal) -> bool:
    """A whole number beyond what a double holds exactly is written as text of every digit."""
    if isinstance(value, int):
        return abs(value) > MAX_EXACT_INT
    exponent = value.as_tuple().exponent
    return isinstance(exponent, int) and exponent >= 0 and abs(value) > MAX_EXACT_INT


def _number(cell: Cell) -> float | None:
    """A number cell's value; None for any other cell."""
    if cell.kind != "n" or cell.text is None:
        return None
    try:
        value = float(cell.text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None
