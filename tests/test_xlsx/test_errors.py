"""Named errors for values and arguments the writer cannot honour."""

import datetime as dt

import pytest

import xlsx
from tests.test_xlsx.support import write


def test_unsupported_type_is_a_named_error() -> None:
    rows = [(1, "ok"), (2, "ok"), (3, 4 + 5j)]
    with pytest.raises(xlsx.UnsupportedValueError) as info:
        write(["n", "v"], rows)
    message = str(info.value)
    assert "complex" in message
    assert "row 4" in message  # the header is row 1
    assert "column B" in message
    assert isinstance(info.value, TypeError)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, xlsx.XlsxError)


@pytest.mark.parametrize(
    "name",
    [
        "",
        "   ",
        "a" * 32,
        "a/b",
        "a\\b",
        "a[1]",
        "x:y",
        "why?",
        "star*",
        "'quoted",
        "end'",
        "History",
        "tab\there",
    ],
)
def test_invalid_sheet_names_are_refused_up_front(name: str) -> None:
    with pytest.raises(xlsx.XlsxValueError, match="invalid sheet name"):
        xlsx.stream_xlsx(["a"], [], sheet_name=name)


@pytest.mark.parametrize("name", ["a" * 31, "Ünïcödé 2024-01", "R&D (EU) <all>", "it's"])
def test_valid_sheet_names(name: str) -> None:
    assert write(["a"], [[1]], sheet_name=name)


@pytest.mark.parametrize(
    "options",
    [
        {"compress_level": 10},
        {"compress_level": -1},
        {"compress_level": True},
        {"max_rows_per_sheet": 1},
        {"max_rows_per_sheet": xlsx.EXCEL_MAX_ROWS + 1},
        {"max_sheet_xml_bytes": 0},
        {"max_sheet_xml_bytes": xlsx.DEFAULT_MAX_SHEET_XML_BYTES + 1},
        {"modified_at": dt.datetime(1979, 12, 31)},
        {"columns": [None, None, None]},
        {"columns": [xlsx.Column(width=256)]},
        {"columns": [xlsx.Column(number_format="")]},
    ],
)
def test_bad_options_are_refused_up_front(options: dict[str, object]) -> None:
    with pytest.raises(xlsx.XlsxValueError):
        xlsx.stream_xlsx(["a", "b"], [], **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("header", [[], ["a", 2], ["x"] * 16_385])
def test_bad_headers_are_refused(header: list[object]) -> None:
    with pytest.raises(xlsx.XlsxValueError):
        xlsx.stream_xlsx(header, [])  # type: ignore[arg-type]


def test_row_wider_than_header_is_an_error() -> None:
    with pytest.raises(xlsx.XlsxValueError, match="row 3 has 3 values but the header has 2"):
        write(["a", "b"], [(1, 2), (1, 2, 3)])
