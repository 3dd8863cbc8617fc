"""Small public data types: the optional column spec and the live write statistics."""

from dataclasses import dataclass


@dataclass
class Column:
    """Optional per-column settings; None leaves the writer's default."""

    # Width in Excel's character units (0-255); default: from the header and the first row.
    width: float | None = None
    # Number format for numeric and date cells of the column (e.g. "#,##0.00", "dd/mm/yyyy hh:mm").
    # Datetimes and times are floored to the fraction of a second the format shows ("ss.000").
    number_format: str | None = None


@dataclass
class WriteStats:
    """Counters updated while the generator runs, so a caller can log progress and truncations."""

    rows: int = 0  # data rows handed to the compressor (header rows not counted)
    sheets: int = 0  # sheets started
    truncated_cells: int = 0  # texts cut to Excel's 32,767 UTF-16 units
    bytes_out: int = 0  # bytes of .xlsx yielded so far
