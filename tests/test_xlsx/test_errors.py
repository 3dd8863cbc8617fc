"""Named errors for values and arguments the writer cannot honour."""

import datetime as dt

import pytest

import xlsx
from tests.test_xlsx.support import read_openpyxl, write
from xlsx.styles import MAX_COLUMN_FORMATS


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
        "hIsToRy",
        "tab\there",
        "😀" * 16,  # 32 UTF-16 units: Excel counts an emoji as 2
        "a" * 30 + "😀",
        "lone \ud800",
    ],
)
def test_invalid_sheet_names_are_refused_up_front(name: str) -> None:
    with pytest.raises(xlsx.XlsxValueError, match="invalid sheet name"):
        xlsx.stream_xlsx(["a"], [], sheet_name=name)


@pytest.mark.parametrize(
    "name", ["a" * 31, "😀" * 15 + "a", "Ünïcödé 2024-01", "R&D (EU) <all>", "it's", "History 2"]
)
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
        {"columns": [xlsx.Column(number_format="0" * 256)]},
        {"columns": [xlsx.Column(number_format="0.00\n")]},
        {"columns": [xlsx.Column(number_format="0\ud800")]},
    ],
)
def test_bad_options_are_refused_up_front(options: dict[str, object]) -> None:
    with pytest.raises(xlsx.XlsxValueError):
        xlsx.stream_xlsx(["a", "b"], [], **options)  # type: ignore[arg-type]


def test_too_many_distinct_number_formats_are_refused() -> None:
    columns = [xlsx.Column(number_format=f'0 "{i}"') for i in range(MAX_COLUMN_FORMATS + 1)]
    header = ["x"] * len(columns)
    with pytest.raises(xlsx.XlsxValueError, match="distinct number formats"):
        xlsx.stream_xlsx(header, [], columns=columns)
    # Repeating a format, or a default one, does not count again.
    columns[-1] = xlsx.Column(number_format="yyyy-mm-dd")
    assert write([*header, "y"], [], columns=[*columns, columns[0]])


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ([], "at least one column"),
        (["a", 2], r"header\[1\] must be a str, not int"),
        (["a", None], r"header\[1\] must be a str, not NoneType"),
        (["x"] * 16_385, "16385 columns; Excel allows at most 16384"),
    ],
)
def test_bad_headers_are_refused(header: list[object], message: str) -> None:
    with pytest.raises(xlsx.XlsxValueError, match=message):
        xlsx.stream_xlsx(header, [])  # type: ignore[arg-type]


def test_row_wider_than_header_is_an_error() -> None:
    with pytest.raises(xlsx.XlsxValueError, match="row 3 has 3 values but the header has 2"):
        write(["a", "b"], [(1, 2), (1, 2, 3)])


def test_rows_narrower_than_the_header_leave_the_rest_empty() -> None:
    data = write(["a", "b", "c"], [(1,), (), (1, 2, 3), (None, "x")])
    assert read_openpyxl(data)["Report"] == [
        ("a", "b", "c"),
        (1, None, None),
        (None, None, None),
        (1, 2, 3),
        (None, "x", None),
    ]
