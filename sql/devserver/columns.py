"""``dbo.spColumns @Spec``: any column layout and any values on the wire, described in JSON.

The spec (``@Spec NVARCHAR(MAX)``) is one JSON object::

    {"columns": [{"name": "c1", "type": "decimal(38,10)", "nullable": true},
                 {"name": "c2", "type": "varchar(20)", "collation": "Cyrillic_General_CI_AS"}],
     "rows": [["12.5", "абв"], [null, ""]],
     "repeat": 1,
     "row_tokens": "auto",
     "plp_chunk": 8000,
     "plp_unknown_length": false}

Only ``columns`` and ``rows`` are required.  :func:`parse_spec` checks it whole and encodes every
row of ``rows`` once (so a spec error comes before any byte of the result); the result set is
``rows`` sent ``repeat`` times, encoded chunk by chunk from those bytes as the socket drains.
:func:`spec_json` writes a spec from Python (tests use it).  Types and values are
:mod:`sql.devserver.sqltypes`'; sql/README.md lists them.

The other procedures build their result sets with the same pieces: :func:`spec_result` (a spec
already read from JSON: spScript's result steps), :func:`parse_columns` and :func:`colmetadata`
(spSalesOrders' and spEcho's columns), :func:`result` (rows of JSON values: the sales summary).

``row_tokens`` picks the row token (MS-TDS 2.2.7.19 ROW, 2.2.7.15 NBCROW):

* ``"row"``: ROW always; a NULL is written inline as its type allows;
* ``"nbcrow"``: NBCROW always (a bitmap of the NULL columns, then the other values);
* ``"auto"``: NBCROW when the row's NULLs written inline would take more bytes than the NULL
  bitmap (one bit per column, rounded up to bytes), ROW otherwise, so every row is as short as
  it can be.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sql.devserver import rowsource, sqltypes, tokens
from sql.devserver.errors import SpecError

MAX_COLUMNS = 4096  # SQL Server's limit on the columns of a SELECT
MAX_NAME_LENGTH = 128  # sysname
# Rows of one result (rows x repeat): minutes of streaming at the server's speed, so a typo
# cannot start a stream that never ends.
MAX_RESULT_ROWS = 100_000_000
ROW_TOKENS = ("auto", "row", "nbcrow")

_SPEC_KEYS = frozenset(
    {"columns", "rows", "repeat", "row_tokens", "plp_chunk", "plp_unknown_length"}
)
_COLUMN_KEYS = frozenset({"name", "type", "nullable", "collation"})


@dataclass(frozen=True, slots=True)
class Column:
    """One column of a spec."""

    name: str
    type: str
    nullable: bool = True
    collation: str | None = None

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"name": self.name, "type": self.type, "nullable": self.nullable}
        if self.collation is not None:
            out["collation"] = self.collation
        return out


def spec_json(
    columns: Sequence[Column],
    rows: Sequence[Sequence[object]],
    *,
    repeat: int = 1,
    row_tokens: str = "auto",
    plp_chunk: int = sqltypes.DEFAULT_PLP_CHUNK,
    plp_unknown_length: bool = False,
) -> str:
    """The JSON text of a spec (ASCII: lone surrogates travel as ``\\ud800`` escapes)."""
    return json.dumps(
        {
            "columns": [c.to_json() for c in columns],
            "rows": [list(r) for r in rows],
            "repeat": repeat,
            "row_tokens": row_tokens,
            "plp_chunk": plp_chunk,
            "plp_unknown_length": plp_unknown_length,
        }
    )


@dataclass(frozen=True, slots=True)
class ColumnsResult:
    """A parsed spec: COLMETADATA and the encoded rows, a :class:`~rowsource.RowSource`."""

    colmetadata: bytes
    rows: tuple[bytes, ...]  # the tokens of each row of the spec's "rows"
    repeat: int

    @property
    def count(self) -> int:
        return len(self.rows) * self.repeat

    def encode(self, first: int, limit: int) -> tuple[int, bytes]:
        rows = self.rows
        period = len(rows)
        index = first % period
        out: list[bytes] = []
        size = encoded = 0
        while encoded < limit and size < rowsource.CHUNK_BYTES:
            row = rows[index]
            out.append(row)
            size += len(row)
            encoded += 1
            index = index + 1 if index + 1 < period else 0
        return encoded, b"".join(out)


@dataclass(frozen=True, slots=True)
class ParsedColumn:
    """A column checked and ready to encode: its type, its framing and its inline NULL."""

    column: Column
    type: sqltypes.SqlType
    framing: sqltypes.Framing
    inline_null: bytes | None


def parse_spec(text: str) -> ColumnsResult:
    """The result set a spec's JSON text describes; :class:`SpecError` naming where the spec is
    wrong."""
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"@Spec is not JSON: {exc}") from None
    return spec_result(spec)


def spec_result(spec: object, where: str = "@Spec") -> ColumnsResult:
    """The result set a spec, already read from JSON, describes (``where`` names the spec in
    errors: the parameter, or a script's step)."""
    if not isinstance(spec, dict):
        raise SpecError(f"{where} is a JSON object with columns and rows")
    _no_other_keys(spec, _SPEC_KEYS, where)
    columns = parse_columns(spec.get("columns"))
    rows = spec.get("rows")
    if not isinstance(rows, list):
        raise SpecError('"rows" is a list of rows (lists of values)')
    repeat = _integer(spec, "repeat", 1, 0, MAX_RESULT_ROWS)
    if len(rows) * repeat > MAX_RESULT_ROWS:
        raise SpecError(f"rows x repeat is more than {MAX_RESULT_ROWS:,} rows")
    row_tokens = spec.get("row_tokens", "auto")
    if row_tokens not in ROW_TOKENS:
        raise SpecError(f'"row_tokens" is one of {", ".join(ROW_TOKENS)}, not {row_tokens!r}')
    plp = sqltypes.PlpOptions(
        chunk=_integer(spec, "plp_chunk", sqltypes.DEFAULT_PLP_CHUNK, 1, sqltypes.MAX_LOB_BYTES),
        unknown_length=_boolean(spec, "plp_unknown_length", False),
    )
    return result(columns, rows, repeat=repeat, row_tokens=row_tokens, plp=plp)


def result(
    columns: Sequence[ParsedColumn],
    rows: Sequence[object],
    *,
    repeat: int = 1,
    row_tokens: str = "auto",
    plp: sqltypes.PlpOptions = sqltypes.DEFAULT_PLP,
) -> ColumnsResult:
    """A result set of ``rows`` (lists of JSON values, as in a spec) sent ``repeat`` times."""
    encoded = tuple(
        _row(number, values, columns, row_tokens, plp)
        for number, values in enumerate(rows, start=1)
    )
    return ColumnsResult(colmetadata(columns), encoded, repeat)


def _no_other_keys(obj: Mapping[str, object], known: frozenset[str], where: str) -> None:
    unknown = sorted(set(obj) - known)
    if unknown:
        raise SpecError(f"{where} has unknown keys {unknown} (known: {sorted(known)})")


def _integer(spec: Mapping[str, object], key: str, default: int, low: int, high: int) -> int:
    value = spec.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SpecError(f'"{key}" is an integer from {low} to {high:,}, not {value!r}')
    return value


def _boolean(spec: Mapping[str, object], key: str, default: bool) -> bool:
    value = spec.get(key, default)
    if not isinstance(value, bool):
        raise SpecError(f'"{key}" is true or false, not {value!r}')
    return value


def parse_columns(raw: object) -> tuple[ParsedColumn, ...]:
    """A spec's ``"columns"`` (a JSON list of column objects), checked."""
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_COLUMNS:
        raise SpecError(f'"columns" is a list of 1 to {MAX_COLUMNS} columns')
    out = []
    for number, item in enumerate(raw, start=1):
        where = f"column {number}"
        if not isinstance(item, dict):
            raise SpecError(f'{where} is an object with "name" and "type"')
        _no_other_keys(item, _COLUMN_KEYS, where)
        name, declared = item.get("name"), item.get("type")
        nullable, collation = item.get("nullable", True), item.get("collation")
        if not isinstance(name, str) or len(name) > MAX_NAME_LENGTH:
            raise SpecError(f'{where}: "name" is a string of at most {MAX_NAME_LENGTH} characters')
        where = f"column {number} ({name!r})"
        if not isinstance(declared, str):
            raise SpecError(f'{where}: "type" is a type declaration such as "int"')
        if not isinstance(nullable, bool):
            raise SpecError(f'{where}: "nullable" is true or false')
        if collation is not None and not isinstance(collation, str):
            raise SpecError(f'{where}: "collation" is a collation name')
        try:
            typ = sqltypes.parse_type(declared, collation)
        except SpecError as exc:
            raise SpecError(f"{where}: {exc}") from None
        column = Column(name, typ.declaration, nullable, collation)
        framing = typ.framing(nullable)
        out.append(ParsedColumn(column, typ, framing, sqltypes.null_cell(framing)))
    return tuple(out)


def colmetadata(columns: Sequence[ParsedColumn]) -> bytes:
    """COLMETADATA (MS-TDS 2.2.7.4): UserType 0, flags (fNullable), TYPE_INFO, name."""
    out = bytearray((tokens.COLMETADATA,)) + len(columns).to_bytes(2, "little")
    for c in columns:
        flags = 0x0001 if c.column.nullable else 0x0000
        out += bytes(4) + flags.to_bytes(2, "little")
        out += c.type.type_info(c.column.nullable) + tokens.b_varchar(c.column.name)
    return bytes(out)


def _row(
    number: int,
    values: object,
    columns: Sequence[ParsedColumn],
    row_tokens: str,
    plp: sqltypes.PlpOptions,
) -> bytes:
    """One row's ROW or NBCROW token."""
    if not isinstance(values, list) or len(values) != len(columns):
        raise SpecError(f"row {number} is a list of {len(columns)} values")
    cells: list[bytes] = []
    bitmap = bytearray((len(columns) + 7) // 8)
    inline_nulls = 0
    for i, (c, value) in enumerate(zip(columns, values, strict=True)):
        if value is None:
            if not c.column.nullable or c.inline_null is None:
                raise SpecError(
                    f"row {number}, column {c.column.name!r}: NULL in a NOT NULL column"
                )
            bitmap[i // 8] |= 1 << (i % 8)
            inline_nulls += len(c.inline_null)
            cells.append(c.inline_null)
            continue
        try:
            cells.append(sqltypes.cell(c.type, c.column.nullable, value, plp))
        except SpecError as exc:
            raise SpecError(
                f"row {number}, column {c.column.name!r} ({c.column.type}): {exc}"
            ) from None
    nbc = row_tokens == "nbcrow" or (row_tokens == "auto" and inline_nulls > len(bitmap))
    if not nbc:
        return bytes((tokens.ROW,)) + b"".join(cells)
    present = [cell for i, cell in enumerate(cells) if not bitmap[i // 8] & (1 << (i % 8))]
    return bytes((tokens.NBCROW,)) + bytes(bitmap) + b"".join(present)
