"""Large results continue on new sheets: per-sheet row limit and per-sheet XML byte limit."""

import io
import zipfile
from collections.abc import Mapping, Sequence

import pytest

import xlsx
from tests.test_xlsx.support import read_calamine, read_openpyxl, sheet_xml, write

HEADER = ["n", "label"]


def rows(n: int) -> list[tuple[int, str]]:
    return [(i, f"row {i}") for i in range(n)]


def data_rows(sheets: Mapping[str, Sequence[Sequence[object]]]) -> list[tuple[object, ...]]:
    out: list[tuple[object, ...]] = []
    for table in sheets.values():
        assert tuple(table[0]) == tuple(HEADER)  # every sheet repeats the header
        out.extend(tuple(row) for row in table[1:])
    return out


@pytest.mark.parametrize(
    ("n", "limit", "expected_sheets"),
    [(0, 10, 1), (9, 10, 1), (10, 10, 2), (18, 10, 2), (19, 10, 3), (25, 10, 3), (5, 2, 5)],
)
def test_row_limit_rollover_keeps_every_row_once_in_order(
    n: int, limit: int, expected_sheets: int
) -> None:
    stats = xlsx.WriteStats()
    data = write(HEADER, rows(n), max_rows_per_sheet=limit, stats=stats)
    sheets = read_openpyxl(data)
    names = ["Report"] + [f"Report ({i})" for i in range(2, expected_sheets + 1)]
    assert list(sheets) == names
    assert all(len(table) <= limit for table in sheets.values())
    assert data_rows(sheets) == [(i, f"row {i}") for i in range(n)]
    assert (stats.rows, stats.sheets) == (n, expected_sheets)
    calamine = read_calamine(data)
    assert [len(t) for t in calamine.values()] == [len(t) for t in sheets.values()]


def test_every_sheet_repeats_freeze_filter_and_widths() -> None:
    data = write(HEADER, rows(25), max_rows_per_sheet=10)
    first = sheet_xml(data, 1)
    for index, last in ((1, 10), (2, 10), (3, 8)):
        xml = sheet_xml(data, index)
        assert 'state="frozen"' in xml
        assert xml.endswith(f'<autoFilter ref="A1:B{last}"/></worksheet>')
        assert (
            xml[xml.index("<cols>") : xml.index("</cols>")]
            == first[first.index("<cols>") : first.index("</cols>")]
        )
    assert 'tabSelected="1"' in first
    assert 'tabSelected="1"' not in sheet_xml(data, 2)
    workbook = zipfile.ZipFile(io.BytesIO(data)).read("xl/workbook.xml").decode()
    assert 'localSheetId="2" hidden="1">\'Report (3)\'!$A$1:$B$8<' in workbook


def test_xml_byte_limit_rollover() -> None:
    limit = 3_000
    stats = xlsx.WriteStats()
    data = write(HEADER, rows(400), max_sheet_xml_bytes=limit, stats=stats)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        sizes = [i.file_size for i in z.infolist() if i.filename.startswith("xl/worksheets/")]
    assert len(sizes) == stats.sheets > 5
    assert all(size <= limit for size in sizes)
    assert max(sizes) > limit - 100  # sheets are filled, not cut early
    sheets = read_openpyxl(data)
    assert data_rows(sheets) == [(i, f"row {i}") for i in range(400)]


def test_byte_limit_with_large_rows_and_multibyte_text() -> None:
    big = [(i, "Ä😀" * (50 + i % 300)) for i in range(300)]
    data = write(HEADER, big, max_sheet_xml_bytes=8_000)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        sizes = [i.file_size for i in z.infolist() if i.filename.startswith("xl/worksheets/")]
    assert all(size <= 8_000 for size in sizes)
    assert data_rows(read_calamine(data)) == [(float(i), s) for i, s in big]


def test_a_row_that_fits_no_sheet_is_an_error() -> None:
    with pytest.raises(xlsx.XlsxValueError, match="row 2 alone needs"):
        write(HEADER, [(1, "x" * 5_000)], max_sheet_xml_bytes=3_000)


def test_long_sheet_names_stay_within_31_characters() -> None:
    base = "A" * 31
    data = write(HEADER, rows(5), sheet_name=base, max_rows_per_sheet=3)
    assert list(read_openpyxl(data)) == [base, "A" * 27 + " (2)", "A" * 27 + " (3)"]


@pytest.mark.parametrize(
    ("base", "expected"),
    [
        # Cut to 27 + " (2)" the base would name sheet 2 like itself (Excel ignores case).
        ("x" * 27 + " (2)", ["x" * 27 + " (2)", "x" * 26 + " (2)", "x" * 27 + " (3)"]),
        ("X" * 27 + " (3)", ["X" * 27 + " (3)", "X" * 27 + " (2)", "X" * 26 + " (3)"]),
        # Emoji count two units each and are never split.
        ("😀" * 15 + "a", ["😀" * 15 + "a", "😀" * 13 + " (2)", "😀" * 13 + " (3)"]),
        ("Report (2)", ["Report (2)", "Report (2) (2)", "Report (2) (3)"]),
    ],
)
def test_continuation_names_are_unique_and_fit(base: str, expected: list[str]) -> None:
    data = write(HEADER, rows(5), sheet_name=base, max_rows_per_sheet=3)
    assert list(read_openpyxl(data)) == expected


@pytest.mark.slow
def test_excel_row_limit_rollover_at_full_size() -> None:
    n = xlsx.EXCEL_MAX_ROWS + 10  # header included, so 11 rows spill over
    data = write(["n"], ((i,) for i in range(n)))
    sheets = read_calamine(data)
    assert list(sheets) == ["Report", "Report (2)"]
    first, second = sheets["Report"], sheets["Report (2)"]
    assert len(first) == xlsx.EXCEL_MAX_ROWS
    assert first[1] == [0.0]
    assert first[-1] == [float(xlsx.EXCEL_MAX_ROWS - 2)]
    assert second == [["n"]] + [[float(i)] for i in range(xlsx.EXCEL_MAX_ROWS - 1, n)]
