"""LibreOffice as an independent reader of a workbook: every sheet converted to CSV, headless."""

from __future__ import annotations

import csv
import subprocess
import tempfile
from pathlib import Path

# Comma-separated, double-quoted, UTF-8 (76), the first line as is; the last field (-1) writes
# every sheet to a file of its own, named <file>-<sheet>.csv (LibreOffice 7.2 and later).
_CSV_FILTER = "csv:Text - txt - csv (StarCalc):44,34,76,1,,0,false,true,false,false,false,-1"
# Starting LibreOffice takes a few seconds on an idle machine; a loaded one may take far longer.
CONVERT_TIMEOUT_S = 180


def libreoffice_sheets(data: bytes) -> dict[str, list[list[str]]]:
    """Each sheet's rows as LibreOffice reads them (cells as it writes them to CSV), by name."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        book = folder / "book.xlsx"
        book.write_bytes(data)
        done = subprocess.run(
            [
                "soffice",
                "--headless",
                f"-env:UserInstallation={(folder / 'profile').as_uri()}",  # no shared profile
                "--convert-to",
                _CSV_FILTER,
                "--outdir",
                str(folder / "out"),
                str(book),
            ],
            capture_output=True,
            timeout=CONVERT_TIMEOUT_S,
            check=False,
        )
        assert done.returncode == 0, done.stderr.decode(errors="replace")
        sheets = {}
        for path in sorted((folder / "out").glob("book-*.csv")):
            with path.open(newline="", encoding="utf-8") as file:
                sheets[path.stem.removeprefix("book-")] = list(csv.reader(file))
        assert sheets, done.stdout.decode(errors="replace")
        return sheets
