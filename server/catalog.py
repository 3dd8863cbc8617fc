"""The report catalog: which procedures may be exported, with which typed parameters, into
which sheets. Pure: TOML text or data in, a checked :class:`Catalog` out; a query string in, a
:class:`ReportCall` (or the 400 it deserves) out.

A catalog is a TOML file (docs/catalog.md describes every key)::

    [[reports]]
    id = "sales"                       # the URL's /export/{id}: a lower-case slug
    title = "Sales orders"
    procedure = "dbo.spSalesOrders"    # schema-qualified; sent as the RPC's procedure name
    sheets = [{ name = "Orders" }, { name = "Summary by region" }]

    [[reports.parameters]]
    name = "from"                      # the query-string name; bound as @from unless sql_name
    type = "date"
    required = true

Everything is checked when the file is read: an unknown key, a wrong type, a duplicate id or
parameter name, a default outside its bounds, a procedure name that is not an identifier all
raise :class:`CatalogError` naming the file, the report, the key and the reason; nothing of a
bad file is used. The built-in catalog (:func:`builtin_catalog`) is ``sql/catalog.toml``, the
demo reports, whose ``report`` is the one ``--procedure``, ``--default-row-count`` and
``--max-row-count`` configure.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib.resources
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import xlsx
from server import params
from server.config import ApiConfig
from server.errors import InvalidParameter, MissingParameter, UnknownParameter
from server.params import InvalidValue, ParamType, Value
from xlsx import names, styles
from xlsx.escape import truncate_utf16

# URL path segment of a report: lower-case letters, digits and hyphens, as a person types them.
REPORT_ID: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,62}")
# The BFF serves /exports/ticket and /exports/status/... beside /exports/{id}.
RESERVED_IDS: Final = frozenset({"ticket", "status"})
# A query-string name: starts with a letter, then letters, digits, underscores.
PARAMETER_NAME: Final = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
# One part of a procedure name: a regular identifier, or a delimited one without brackets
# inside (sysname: up to 128 characters). Procedures are named schema.procedure.
_REGULAR_PART = r"[A-Za-z_][A-Za-z0-9_@$#]{0,127}"
_DELIMITED_PART = r"\[[^\[\]\x00-\x1f]{1,128}\]"
PROCEDURE_NAME: Final = re.compile(
    rf"(?:{_REGULAR_PART}|{_DELIMITED_PART})\.(?:{_REGULAR_PART}|{_DELIMITED_PART})"
)
# A procedure's parameter as SQL Server names it.
SQL_PARAMETER_NAME: Final = re.compile(r"@[A-Za-z_][A-Za-z0-9_@$#]{0,127}")
# The start of the download's file name (then -YYYY-MM-DD-HHMMSS.xlsx): safe in every file
# system and in a Content-Disposition header without quoting rules.
FILENAME_PREFIX: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
# The code of an invalid value's 400 when a parameter names its own (for the demo report's
# INVALID_ROW_COUNT, which its clients already handle).
ERROR_CODE: Final = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
# Rows an export may write across all its sheets unless the report says otherwise: about ten
# full Excel sheets, minutes of streaming; a report that returns more is more likely a missing
# filter than a workbook a person opens.
DEFAULT_ROW_LIMIT: Final = 10 * xlsx.EXCEL_MAX_ROWS
MAX_ROW_LIMIT: Final = 100 * xlsx.EXCEL_MAX_ROWS
# A report has at most as many parameters as a page shows, and a procedure at most 2,100.
MAX_PARAMETERS: Final = 64
# Column widths in Excel's character units, as the writer accepts them.
MAX_COLUMN_WIDTH: Final = 255.0
ALL_RESULT_SETS, FIRST_RESULT_SET = "all", "first"
# The demo report whose rowCount the command-line options configure.
DEMO_REPORT_ID: Final = "report"
DEMO_ROW_COUNT: Final = "rowCount"
BUILTIN_SOURCE: Final = "sql/catalog.toml"


class CatalogError(ValueError):
    """A catalog that cannot be used; ``str()`` names the file, report, key and reason."""


@dataclass(frozen=True)
class Parameter:
    """One query-string parameter of a report and the procedure parameter it is bound to."""

    name: str
    type: ParamType
    sql_name: str
    label: str
    help: str = ""
    required: bool = False
    default: Value | None = None
    minimum: Value | None = None
    maximum: Value | None = None
    error_code: str = InvalidParameter.code

    def rule(self) -> str:
        """What a valid value is, for messages: "from must be a date (YYYY-MM-DD) from ..."."""
        text = f"{self.name} must be {self.type.rule()}"
        low, high = (_shown(v) for v in (self.minimum, self.maximum))
        if low is not None and high is not None:
            return f"{text} from {low} to {high}"
        if low is not None:
            return f"{text} of at least {low}"
        if high is not None:
            return f"{text} of at most {high}"
        return text

    def parse(self, text: str) -> Value:
        """The value of ``text``, or the parameter's 400 (the message never repeats it)."""
        try:
            value = self.type.parse(text)
        except InvalidValue:
            raise self.invalid(self.rule()) from None
        if not _within(value, self.minimum, self.maximum):
            raise self.invalid(self.rule())
        return value

    def invalid(self, message: str) -> InvalidParameter:
        error = InvalidParameter(message)
        error.code = self.error_code
        return error

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "type": self.type.kind,
            "label": self.label,
            "help": self.help,
            "required": self.required,
        }
        if self.type.kind == "decimal":
            out["precision"], out["scale"] = self.type.precision, self.type.scale
        if self.type.kind == "datetime2":
            out["precision"] = self.type.precision
        if self.type.kind == "nvarchar":
            out["maxLength"] = self.type.length
        if self.type.kind == "enum":
            out["values"] = list(self.type.values)
        for key, value in (("default", self.default), ("min", self.minimum), ("max", self.maximum)):
            if value is not None:
                out[key] = self.type.to_json(value)
        return out


def _shown(value: Value | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return params.to_wire(value)


def _within(value: Value, low: Value | None, high: Value | None) -> bool:
    return (low is None or low <= value) and (high is None or value <= high)  # type: ignore[operator]


@dataclass(frozen=True)
class OrderRule:
    """Between two parameters of a report, when both have a value: ``order``, ``first`` must
    not be greater than ``second`` (a range's ends); ``span``, two dates ``first`` .. ``second``
    must not cover more than ``max_days`` days, both ends counted (a range a procedure refuses
    as too long, refused before any database work)."""

    first: str
    second: str
    message: str
    kind: str = "order"
    max_days: int = 0  # span only

    def broken_by(self, first: Value, second: Value) -> bool:
        if self.kind == "span":
            assert isinstance(first, dt.date)
            assert isinstance(second, dt.date)
            return (second - first).days + 1 > self.max_days
        return first > second  # type: ignore[operator]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind,
            "first": self.first,
            "second": self.second,
            "message": self.message,
        }
        if self.kind == "span":
            out["maxDays"] = self.max_days
        return out


@dataclass(frozen=True)
class ColumnOverride:
    """What the catalog says of one column of a sheet, over what the result's metadata gives."""

    label: str | None = None
    number_format: str | None = None
    width: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass(frozen=True)
class SheetSpec:
    """The sheet of one result set: its name and per-column overrides by database column name."""

    name: str | None = None
    columns: Mapping[str, ColumnOverride] = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "columns": {name: c.to_json() for name, c in self.columns.items()},
        }


@dataclass(frozen=True)
class ReportCall:
    """What a worker needs to run one export of a report: sent over the control channel, so
    a catalog reloaded meanwhile changes nothing of an export already admitted."""

    report: str
    procedure: str
    # (procedure parameter name, SQL declaration, value as params.to_wire text)
    arguments: tuple[tuple[str, str, str], ...]
    sheets: tuple[SheetSpec, ...]
    default_sheet: str  # the name of a result set's sheet the catalog does not name
    first_result_only: bool
    row_limit: int

    @property
    def names(self) -> frozenset[str]:
        """The procedure parameters this call sends."""
        return frozenset(name for name, _, _ in self.arguments)

    def sheet(self, index: int) -> SheetSpec:
        """The catalog's sheet for result set ``index`` (0-based), or the default one."""
        return self.sheets[index] if index < len(self.sheets) else SheetSpec()

    def sheet_name(self, index: int) -> str:
        return self.sheet(index).name or self.default_sheet

    def bound_values(self) -> dict[str, tuple[str, Value]]:
        """Each argument's procedure name -> (SQL declaration, Python value)."""
        return {name: (decl, params.from_wire(decl, text)) for name, decl, text in self.arguments}

    def to_json(self) -> dict[str, Any]:
        return {
            "report": self.report,
            "procedure": self.procedure,
            "arguments": [list(a) for a in self.arguments],
            "sheets": [s.to_json() for s in self.sheets],
            "default_sheet": self.default_sheet,
            "first_result_only": self.first_result_only,
            "row_limit": self.row_limit,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ReportCall:
        return cls(
            report=data["report"],
            procedure=data["procedure"],
            arguments=tuple((a[0], a[1], a[2]) for a in data["arguments"]),
            sheets=tuple(
                SheetSpec(
                    s["name"],
                    {n: ColumnOverride(**c) for n, c in s["columns"].items()},
                )
                for s in data["sheets"]
            ),
            default_sheet=data["default_sheet"],
            first_result_only=data["first_result_only"],
            row_limit=data["row_limit"],
        )


@dataclass(frozen=True)
class Report:
    id: str
    title: str
    description: str
    procedure: str
    parameters: tuple[Parameter, ...]
    rules: tuple[OrderRule, ...]
    sheets: tuple[SheetSpec, ...]
    filename: str
    row_limit: int
    first_result_only: bool
    # The parameter whose value is the number of rows the report returns (the page's progress
    # bar shows rows out of it), if one is.
    row_count_parameter: str | None = None

    def parameter(self, name: str) -> Parameter:
        return next(p for p in self.parameters if p.name == name)

    def bind(self, query: Mapping[str, Sequence[str]]) -> ReportCall:
        """The call a query string asks for, or the 400 it deserves: unknown names first (a
        misspelt name must not silently give a default), then each parameter in catalog
        order (given twice, invalid, missing), then the rules between parameters."""
        accepted = [p.name for p in self.parameters]
        if any(name not in accepted for name in query):
            if not accepted:
                raise UnknownParameter("unknown query parameter; this report takes no parameters")
            raise UnknownParameter(
                "unknown query parameter; the accepted parameters are: "
                + ", ".join(accepted)
                + " (names are case-sensitive)"
            )
        values: dict[str, Value] = {}
        for parameter in self.parameters:
            given = query.get(parameter.name, ())
            if len(given) > 1:
                raise parameter.invalid(f"{parameter.name} must be given at most once")
            if given:
                values[parameter.name] = parameter.parse(given[0])
            elif parameter.required:
                raise MissingParameter(f"{parameter.name} is required")
            elif parameter.default is not None:
                values[parameter.name] = parameter.default
        for rule in self.rules:
            first, second = values.get(rule.first), values.get(rule.second)
            if first is not None and second is not None and rule.broken_by(first, second):
                raise self.parameter(rule.second).invalid(rule.message)
        # A parameter with no value is not sent: the procedure's own default applies.
        arguments = tuple(
            (p.sql_name, p.type.declaration(), params.to_wire(values[p.name]))
            for p in self.parameters
            if p.name in values
        )
        # The rows the report says it returns bound this call's rows as the row limit does.
        counted = values.get(self.row_count_parameter or "")
        row_limit = self.row_limit
        if isinstance(counted, int) and not isinstance(counted, bool):
            row_limit = max(min(row_limit, counted), 0)
        return ReportCall(
            report=self.id,
            procedure=self.procedure,
            arguments=arguments,
            sheets=self.sheets,
            default_sheet=default_sheet_name(self.title),
            first_result_only=self.first_result_only,
            row_limit=row_limit,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "title": self.title,
            "description": self.description,
            "parameters": [p.to_json() for p in self.parameters],
            "rules": [r.to_json() for r in self.rules],
            "sheets": [s.name or default_sheet_name(self.title) for s in self.sheets],
            "resultSets": FIRST_RESULT_SET if self.first_result_only else ALL_RESULT_SETS,
            "rowLimit": self.row_limit,
            "rowCountParameter": self.row_count_parameter,
        }


def default_sheet_name(title: str) -> str:
    """A report's title as a sheet name: characters Excel refuses become spaces, cut to fit."""
    cleaned = re.sub(r"[\[\]:*?/\\\x00-\x1f]", " ", title).strip().strip("'").strip()
    name = (truncate_utf16(cleaned, names.MAX_SHEET_NAME) or cleaned).strip()
    try:
        return names.check_sheet_name(name)
    except xlsx.XlsxValueError:
        return "Report"


@dataclass(frozen=True)
class Catalog:
    reports: Mapping[str, Report]
    source: str  # the file it came from, or the built-in catalog's name

    def get(self, report_id: str) -> Report | None:
        return self.reports.get(report_id)

    def to_json(self) -> dict[str, Any]:
        return {"reports": [r.to_json() for r in self.reports.values()]}


# -- reading and checking ---------------------------------------------------------------------

_TOP_KEYS: Final = frozenset({"reports"})
_REPORT_KEYS: Final = frozenset(
    {
        "id",
        "title",
        "description",
        "procedure",
        "parameters",
        "rules",
        "sheets",
        "filename",
        "row_limit",
        "result_sets",
        "row_count_parameter",
    }
)
_PARAMETER_KEYS: Final = frozenset(
    {
        "name",
        "type",
        "sql_name",
        "label",
        "help",
        "required",
        "default",
        "min",
        "max",
        "max_length",
        "values",
        "error_code",
    }
)
_RULE_KEYS: Final = frozenset({"kind", "first", "second", "message", "max_days"})
RULE_KINDS: Final = ("order", "span")
# The longest span a rule may name: 10,000 years of days, past any DATE range.
MAX_SPAN_DAYS: Final = 3_652_059
_SHEET_KEYS: Final = frozenset({"name", "columns"})
_COLUMN_KEYS: Final = frozenset({"label", "number_format", "width"})


class _Fields:
    """One TOML table being read: typed getters whose errors say where the key is."""

    def __init__(self, data: object, where: str, allowed: frozenset[str]) -> None:
        if not isinstance(data, dict):
            raise CatalogError(f"{where}: must be a table")
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise CatalogError(
                f"{where}.{unknown[0]}: unknown key (known: {', '.join(sorted(allowed))})"
            )
        self.data: dict[str, object] = data
        self.where = where

    def error(self, key: str, reason: str) -> CatalogError:
        return CatalogError(f"{self.where}.{key}: {reason}")

    def has(self, key: str) -> bool:
        return key in self.data

    def text(
        self, key: str, default: str | None = None, pattern: re.Pattern[str] | None = None
    ) -> str:
        value = self.data.get(key, default)
        if value is None:
            raise self.error(key, "is required")
        if not isinstance(value, str):
            raise self.error(key, "must be a string")
        if pattern is not None and not pattern.fullmatch(value):
            raise self.error(key, f"must match {pattern.pattern}")
        return value

    def flag(self, key: str, default: bool) -> bool:
        value = self.data.get(key, default)
        if not isinstance(value, bool):
            raise self.error(key, "must be true or false")
        return value

    def whole(self, key: str, default: int, low: int, high: int) -> int:
        value = self.data.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.error(key, f"must be a whole number from {low:,} to {high:,}")
        return value

    def tables(self, key: str) -> list[object]:
        value = self.data.get(key, [])
        if not isinstance(value, list):
            raise self.error(key, "must be an array of tables")
        return value


def parse_catalog(data: Mapping[str, object], source: str) -> Catalog:
    """The catalog TOML ``data`` (as tomllib reads it) describes; ``source`` names it in errors."""
    top = _Fields(dict(data), source, _TOP_KEYS)
    reports: dict[str, Report] = {}
    entries = top.tables("reports")
    if not entries:
        raise CatalogError(f"{source}: reports: the catalog has no report")
    for index, entry in enumerate(entries):
        where = f"{source}: reports[{index}]"
        if isinstance(entry, dict) and isinstance(entry.get("id"), str):
            where = f"{source}: report {entry['id']!r}"
        report = _report(_Fields(entry, where, _REPORT_KEYS))
        if report.id in reports:
            raise CatalogError(f"{where}.id: another report has this id")
        reports[report.id] = report
    return Catalog(reports, source)


def load_catalog(path: str | Path) -> Catalog:
    """The catalog in the TOML file ``path``; :class:`CatalogError` for any problem."""
    try:
        with open(path, "rb") as file:
            data = tomllib.load(file)
    except OSError as exc:
        raise CatalogError(f"{path}: cannot read the catalog: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise CatalogError(f"{path}: not valid TOML: {exc}") from None
    return parse_catalog(data, str(path))


def builtin_catalog(
    *,
    procedure: str | None = None,
    default_row_count: int | None = None,
    max_row_count: int | None = None,
) -> Catalog:
    """The demo reports (``sql/catalog.toml``), with the demo report's procedure and its
    rowCount's default and maximum as configured."""
    text = importlib.resources.files("sql").joinpath("catalog.toml").read_text(encoding="utf-8")
    catalog = parse_catalog(tomllib.loads(text), BUILTIN_SOURCE)
    demo = catalog.reports[DEMO_REPORT_ID]
    row_count = demo.parameter(DEMO_ROW_COUNT)
    maximum = row_count.maximum if max_row_count is None else max_row_count
    default = row_count.default if default_row_count is None else default_row_count
    if not isinstance(maximum, int) or not isinstance(default, int) or not 1 <= default <= maximum:
        raise CatalogError(
            f"{BUILTIN_SOURCE}: report {DEMO_REPORT_ID!r}: the default row count must be from 1"
            " to the maximum row count"
        )
    row_count = dataclasses.replace(row_count, default=default, maximum=maximum)
    demo = dataclasses.replace(
        demo,
        procedure=demo.procedure if procedure is None else _procedure_name(procedure),
        parameters=tuple(row_count if p.name == DEMO_ROW_COUNT else p for p in demo.parameters),
        row_limit=max(demo.row_limit, maximum),
    )
    return Catalog({**catalog.reports, DEMO_REPORT_ID: demo}, catalog.source)


def catalog_for(config: ApiConfig) -> Catalog:
    """The catalog file the configuration names, or the built-in one configured by it."""
    if config.catalog is not None:
        return load_catalog(config.catalog)
    return builtin_catalog(
        procedure=config.procedure,
        default_row_count=config.default_row_count,
        max_row_count=config.max_row_count,
    )


def _procedure_name(name: str) -> str:
    if not PROCEDURE_NAME.fullmatch(name):
        raise CatalogError(f"procedure {name!r} is not a schema-qualified name (schema.procedure)")
    return name


def _report(fields: _Fields) -> Report:
    report_id = fields.text("id", pattern=REPORT_ID)
    if report_id in RESERVED_IDS:
        raise fields.error("id", f"{report_id!r} is reserved (the BFF's own paths)")
    title = fields.text("title")
    if not title.strip():
        raise fields.error("title", "must not be empty")
    procedure = fields.text("procedure")
    if not PROCEDURE_NAME.fullmatch(procedure):
        raise fields.error(
            "procedure", "must be a schema-qualified name such as dbo.spReport (schema.procedure)"
        )
    parameters: list[Parameter] = []
    entries = fields.tables("parameters")
    if len(entries) > MAX_PARAMETERS:
        raise fields.error("parameters", f"at most {MAX_PARAMETERS} parameters")
    for index, entry in enumerate(entries):
        parameter = _parameter(
            _Fields(entry, f"{fields.where}.parameters[{index}]", _PARAMETER_KEYS)
        )
        if any(p.name == parameter.name for p in parameters):
            raise fields.error(f"parameters[{index}].name", "another parameter has this name")
        if any(p.sql_name.lower() == parameter.sql_name.lower() for p in parameters):
            raise fields.error(f"parameters[{index}].sql_name", "another parameter is bound to it")
        parameters.append(parameter)
    rules = tuple(
        _rule(_Fields(entry, f"{fields.where}.rules[{index}]", _RULE_KEYS), parameters)
        for index, entry in enumerate(fields.tables("rules"))
    )
    sheets = tuple(
        _sheet(_Fields(entry, f"{fields.where}.sheets[{index}]", _SHEET_KEYS))
        for index, entry in enumerate(fields.tables("sheets"))
    )
    named = [s.name.casefold() for s in sheets if s.name is not None]
    if len(set(named)) != len(named):
        raise fields.error("sheets", "two sheets have the same name (Excel ignores case)")
    result_sets = fields.text("result_sets", ALL_RESULT_SETS)
    if result_sets not in (ALL_RESULT_SETS, FIRST_RESULT_SET):
        raise fields.error("result_sets", f'must be "{ALL_RESULT_SETS}" or "{FIRST_RESULT_SET}"')
    row_count_parameter = None
    if fields.has("row_count_parameter"):
        row_count_parameter = fields.text("row_count_parameter")
        counted = next((p for p in parameters if p.name == row_count_parameter), None)
        if counted is None:
            raise fields.error("row_count_parameter", "names no parameter of this report")
        if counted.type.kind not in ("int", "bigint"):
            raise fields.error("row_count_parameter", "must name an int or bigint parameter")
    return Report(
        id=report_id,
        title=title,
        description=fields.text("description", ""),
        procedure=procedure,
        parameters=tuple(parameters),
        rules=rules,
        sheets=sheets,
        filename=fields.text("filename", report_id, pattern=FILENAME_PREFIX),
        row_limit=fields.whole("row_limit", DEFAULT_ROW_LIMIT, 1, MAX_ROW_LIMIT),
        first_result_only=result_sets == FIRST_RESULT_SET,
        row_count_parameter=row_count_parameter,
    )


def _parameter(fields: _Fields) -> Parameter:
    name = fields.text("name", pattern=PARAMETER_NAME)
    type_text = fields.text("type")
    values: list[str] = []
    if fields.has("values"):
        raw = fields.data["values"]
        if type_text.strip().lower() != "enum":
            raise fields.error("values", "only an enum has values")
        if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
            raise fields.error("values", "must be an array of strings")
        if not 1 <= len(raw) <= params.MAX_ENUM_VALUES or len(set(raw)) != len(raw):
            raise fields.error(
                "values", f"must hold 1 to {params.MAX_ENUM_VALUES} different strings"
            )
        if any(params.utf16_length(v) > params.MAX_NVARCHAR_LENGTH for v in raw):
            raise fields.error("values", f"a value is longer than {params.MAX_NVARCHAR_LENGTH}")
        values = raw
    try:
        ptype = params.parse_type(type_text, values)
    except ValueError as exc:
        raise fields.error("type", str(exc)) from None
    if ptype.kind == "enum" and not values:
        raise fields.error("values", "an enum needs its values")
    if fields.has("max_length"):
        if ptype.kind != "nvarchar":
            raise fields.error("max_length", "only nvarchar has a max_length")
        ptype = params.with_length(ptype, fields.whole("max_length", 0, 0, ptype.length))
    bound = {key: _bound(fields, key, ptype) for key in ("min", "max", "default")}
    if (bound["min"] is not None or bound["max"] is not None) and not ptype.ordered:
        raise fields.error(
            "min" if bound["min"] is not None else "max", f"{ptype.kind} has no bounds"
        )
    low, high = bound["min"], bound["max"]
    if low is not None and high is not None and low > high:  # type: ignore[operator]
        raise fields.error("min", "is greater than max")
    default = bound["default"]
    required = fields.flag("required", False)
    if required and default is not None:
        raise fields.error("default", "a required parameter has no default")
    if default is not None and not _within(default, low, high):
        raise fields.error("default", "is outside min..max")
    sql_name = fields.text("sql_name", f"@{name}", pattern=SQL_PARAMETER_NAME)
    return Parameter(
        name=name,
        type=ptype,
        sql_name=sql_name,
        label=fields.text("label", name),
        help=fields.text("help", ""),
        required=required,
        default=default,
        minimum=low,
        maximum=high,
        error_code=fields.text("error_code", InvalidParameter.code, pattern=ERROR_CODE),
    )


def _bound(fields: _Fields, key: str, ptype: ParamType) -> Value | None:
    """A bound or default: a TOML value of the parameter's kind, or its query-string text."""
    if not fields.has(key):
        return None
    raw = fields.data[key]
    text: str
    if isinstance(raw, bool):
        text = "1" if raw else "0"
    elif isinstance(raw, int):
        text = str(raw)
    elif isinstance(raw, dt.date):  # a TOML date, or date and time
        text = raw.isoformat()
    elif isinstance(raw, str):
        text = raw
    else:  # floats are not exact; write a decimal bound as a string
        raise fields.error(key, f"must be {ptype.rule()} (write decimals as strings)")
    if isinstance(raw, dt.datetime) and raw.tzinfo is not None:
        raise fields.error(key, "must be a local date and time (no offset)")
    try:
        return ptype.parse(text)
    except InvalidValue:
        raise fields.error(key, f"must be {ptype.rule()}") from None


def _rule(fields: _Fields, parameters: Sequence[Parameter]) -> OrderRule:
    kind = fields.text("kind")
    if kind not in RULE_KINDS:
        raise fields.error(
            "kind", 'must be "order" (first <= second) or "span" (at most max_days days)'
        )
    by_name = {p.name: p for p in parameters}
    first, second = fields.text("first"), fields.text("second")
    for key, name in (("first", first), ("second", second)):
        if name not in by_name:
            raise fields.error(key, "names no parameter of this report")
        if not by_name[name].type.ordered:
            raise fields.error(key, f"{by_name[name].type.kind} values have no order")
    if first == second or by_name[first].type.kind != by_name[second].type.kind:
        raise fields.error("second", "must be another parameter of the same type")
    if kind == "span":
        if by_name[first].type.kind != "date":
            raise fields.error("first", "a span is between two dates")
        max_days = fields.whole("max_days", 0, 1, MAX_SPAN_DAYS)
        default = f"{first} to {second} must not span more than {max_days:,} days"
        return OrderRule(first, second, fields.text("message", default), kind, max_days)
    if fields.has("max_days"):
        raise fields.error("max_days", "only a span has max_days")
    dates = by_name[first].type.kind in ("date", "datetime2")
    default = f"{first} must not be {'after' if dates else 'greater than'} {second}"
    return OrderRule(first, second, fields.text("message", default))


def _sheet(fields: _Fields) -> SheetSpec:
    name = None
    if fields.has("name"):
        name = fields.text("name")
        try:
            names.check_sheet_name(name)
        except xlsx.XlsxValueError as exc:
            raise fields.error("name", str(exc)) from None
    columns_raw = fields.data.get("columns", {})
    if not isinstance(columns_raw, dict):
        raise fields.error("columns", "must be a table of column names")
    columns: dict[str, ColumnOverride] = {}
    for column, entry in columns_raw.items():
        columns[column] = _column(_Fields(entry, f"{fields.where}.columns.{column}", _COLUMN_KEYS))
    return SheetSpec(name, columns)


def _column(fields: _Fields) -> ColumnOverride:
    label = fields.text("label") if fields.has("label") else None
    number_format = fields.text("number_format") if fields.has("number_format") else None
    if number_format is not None:
        problem = styles.format_code_problem(number_format)
        if problem:
            raise fields.error("number_format", problem)
    width = None
    if fields.has("width"):
        raw = fields.data["width"]
        if (
            isinstance(raw, bool)
            or not isinstance(raw, int | float)
            or not 0 <= raw <= MAX_COLUMN_WIDTH
        ):
            raise fields.error("width", f"must be a number from 0 to {MAX_COLUMN_WIDTH:g}")
        width = float(raw)
    return ColumnOverride(label, number_format, width)


def query_values(pairs: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """A query string's (name, value) pairs grouped by name, in order of appearance."""
    out: dict[str, list[str]] = {}
    for name, value in pairs:
        out.setdefault(name, []).append(value)
    return out
