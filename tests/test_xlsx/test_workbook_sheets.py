"""Several logical sheets in one workbook (xlsx.stream_workbook): each with its own header,
formats, widths, freeze and filter; pulled lazily; names kept unique; read back by openpyxl and
python-calamine."""

import datetime as dt
import decimal
import io
import re
import zipfile
from collections.abc import Iterator

import openpyxl
import pytest

import xlsx
from tests.test_xlsx.support import FIXED_TIME, read_calamine, read_openpyxl, sheet_xml


def workbook(sheets: list[xlsx.Sheet] | Iterator[xlsx.Sheet], **options: object) -> bytes:
    options.setdefault("modified_at", FIXED_TIME)
    return b"".join(xlsx.stream_workbook(sheets, **options))  # type: ignore[arg-type]


def test_each_sheet_has_its_own_header_rows_and_formats() -> None:
    orders = [(1, dt.date(2024, 1, 2), decimal.Decimal("12.50")), (2, dt.date(2024, 1, 3), None)]
    summary = [("East", 2, decimal.Decimal("12.50"))]
    data = workbook(
        [
            xlsx.Sheet(
                "Orders",
                ["Id", "Date", "Amount"],
                orders,
                [None, None, xlsx.Column(number_format="#,##0.00", width=14)],
            ),
            xlsx.Sheet("Summary", ["Region", "Orders", "Amount"], summary),
            xlsx.Sheet("Empty", ["Nothing"], []),
        ]
    )
    read = read_openpyxl(data)
    assert list(read) == ["Orders", "Summary", "Empty"]
    assert read["Orders"] == [
        ("Id", "Date", "Amount"),
        (1, dt.datetime(2024, 1, 2), 12.5),
        (2, dt.datetime(2024, 1, 3), None),
    ]
    assert read["Summary"] == [("Region", "Orders", "Amount"), ("East", 2, 12.5)]
    assert read["Empty"] == [("Nothing",)]
    assert read_calamine(data)["Summary"] == [["Region", "Orders", "Amount"], ["East", 2, 12.5]]
    book = openpyxl.load_workbook(io.BytesIO(data))
    orders_sheet, summary_sheet, empty = book.worksheets
    assert orders_sheet["C2"].number_format == "#,##0.00"
    assert summary_sheet["C2"].number_format == "General"  # formats are per sheet
    assert orders_sheet.column_dimensions["C"].width == 14
    for sheet, last in ((orders_sheet, "C3"), (summary_sheet, "C2"), (empty, "A1")):
        assert sheet.freeze_panes == "A2"
        assert sheet.auto_filter.ref == f"A1:{last}"
    # Only the first sheet is the selected tab.
    assert 'tabSelected="1"' in sheet_xml(data, 1)
    assert "tabSelected" not in sheet_xml(data, 2)


def test_the_next_sheet_is_taken_only_after_the_previous_rows_ran_out() -> None:
    events: list[str] = []

    def rows(name: str, count: int) -> Iterator[tuple[int]]:
        for n in range(count):
            events.append(f"{name} row {n}")
            yield (n,)
        events.append(f"{name} end")

    def sheets() -> Iterator[xlsx.Sheet]:
        events.append("first sheet")
        yield xlsx.Sheet("A", ["n"], rows("A", 2))
        events.append("second sheet")
        yield xlsx.Sheet("B", ["n"], rows("B", 1))

    data = workbook(sheets())
    assert events == [
        "first sheet",
        "A row 0",
        "A row 1",
        "A end",
        "second sheet",
        "B row 0",
        "B end",
    ]
    assert read_openpyxl(data) == {"A": [("n",), (0,), (1,)], "B": [("n",), (0,)]}


def test_a_name_already_taken_gets_the_next_free_number_and_rollover_stays_unique() -> None:
    data = workbook(
        [
            xlsx.Sheet("Report", ["n"], [(n,) for n in range(5)]),  # rolls over into Report (2)
            xlsx.Sheet("report", ["m"], [(1,)]),  # Excel ignores case: Report is taken
            xlsx.Sheet("Report (3)", ["k"], [(2,)]),
        ],
        max_rows_per_sheet=3,
    )
    names = list(read_openpyxl(data))
    assert names == ["Report", "Report (2)", "Report (3)", "report (4)", "Report (3) (2)"]
    assert len({n.casefold() for n in names}) == len(names)


def test_number_formats_of_all_sheets_count_against_the_workbook_limit() -> None:
    from xlsx.styles import MAX_COLUMN_FORMATS

    half = MAX_COLUMN_FORMATS // 2 + 1
    first = [xlsx.Column(number_format=f'0 "a{i}"') for i in range(half)]
    second = [xlsx.Column(number_format=f'0 "b{i}"') for i in range(half)]
    chunks = xlsx.stream_workbook(
        [
            xlsx.Sheet("A", ["x"] * half, [], first),
            xlsx.Sheet("B", ["x"] * half, [], second),
        ]
    )
    with pytest.raises(xlsx.XlsxValueError, match="distinct number formats"):
        b"".join(chunks)
    # The same formats again on another sheet are not new ones.
    assert workbook(
        [xlsx.Sheet("A", ["x"] * half, [], first), xlsx.Sheet("B", ["x"] * half, [], first)]
    )


def test_styles_hold_every_sheets_formats_once() -> None:
    data = workbook(
        [
            xlsx.Sheet("A", ["x"], [(1.5,)], [xlsx.Column(number_format="0.000")]),
            xlsx.Sheet(
                "B",
                ["y", "z"],
                [(2.5, 3)],
                [xlsx.Column(number_format="0.0"), xlsx.Column(number_format="0.000")],
            ),
        ]
    )
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        styles = z.read("xl/styles.xml").decode()
        names = re.findall(r'<sheet name="([^"]+)"', z.read("xl/workbook.xml").decode())
    assert styles.count('formatCode="0.000"') == 1
    assert styles.count('formatCode="0.0"') == 1
    assert names == ["A", "B"]
    book = openpyxl.load_workbook(io.BytesIO(data))
    assert book["B"]["A2"].number_format == "0.0"
    assert book["B"]["B2"].number_format == "0.000"
    assert book["A"]["A2"].number_format == "0.000"


def test_an_empty_workbook_and_a_bad_sheet_are_errors_that_end_the_output() -> None:
    with pytest.raises(xlsx.XlsxValueError, match="at least one sheet"):
        workbook([])
    chunks = xlsx.stream_workbook(
        [xlsx.Sheet("A", ["x"], [(1,)]), xlsx.Sheet("B:bad", ["y"], [(2,)])],
        modified_at=FIXED_TIME,
    )
    out = bytearray()

    def drain() -> None:
        for chunk in chunks:
            out.extend(chunk)

    with pytest.raises(xlsx.XlsxValueError, match="invalid sheet name"):
        drain()
    with pytest.raises(zipfile.BadZipFile):  # what was yielded is never a complete zip
        zipfile.ZipFile(io.BytesIO(bytes(out)))


def test_stream_xlsx_is_the_one_sheet_case_byte_for_byte() -> None:
    rows = [(n, f"text {n}") for n in range(100)]
    one = b"".join(xlsx.stream_xlsx(["n", "t"], rows, sheet_name="S", modified_at=FIXED_TIME))
    assert one == workbook([xlsx.Sheet("S", ["n", "t"], rows)])
