"""``dbo.spScript @Script``: any token-stream shape a real procedure produces, described in JSON.

A procedure with ``SET NOCOUNT OFF`` sends a row count for every INSERT/UPDATE, PRINTs and
RAISERROR ... WITH NOWAIT messages between its result sets, warnings after a result's rows,
errors in the middle of one, a return status and OUTPUT parameters.  A script lists those steps
in order, so a test of the export can put exactly that shape on the wire::

    {"steps": [{"count": 3},
               {"print": "filling #Orders"},
               {"result": {"columns": [{"name": "n", "type": "int"}], "rows": [[1], [2]]},
                "info_after_rows": {"number": 8153, "class": 10,
                                    "text": "Warning: Null value is eliminated by an aggregate"}},
               {"info": {"number": 50001, "class": 10, "text": "half way"}},
               {"result": {"columns": [{"name": "s", "type": "nvarchar(10)"}], "rows": [["a"]]},
                "error_after_rows": {"rows": 1, "number": 50000, "text": "boom"}},
               {"return": 7},
               {"output": {"name": "@Total", "type": "int", "value": 5}}]}

:func:`parse_script` checks the whole script and encodes every result and output before any
token is sent, so a bad script is one error (``THROW 50000``) and no partial reply.  What the
steps put on the wire is :mod:`sql.devserver.engine`'s; a result's ``<spec>`` is exactly a
``dbo.spColumns`` spec (:mod:`sql.devserver.columns`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from sql.devserver import columns, sqltypes
from sql.devserver.errors import SpecError

# Steps of one script: far more than a test describes, and a bound on the tokens built (and
# results encoded) before the first byte is sent.
MAX_STEPS = 1000
# A message's text: PRINT's limit for NVARCHAR (8,000 bytes), which also keeps the INFO token
# far inside its 16-bit length.
MAX_MESSAGE_CHARS = 4000
MAX_INFO_CLASS = 10  # RAISERROR severity 0..10 is a message (INFO); 11 and above is an error
ERROR_CLASS = 16  # the severity of error_after_rows' ERROR: a statement error the user can fix
THROW_NUMBER = 50000  # error_after_rows' default number, what THROW and RAISERROR(text) use
MAX_NUMBER = 2**31 - 1  # message numbers are INT
MAX_COUNT = 2**63 - 1  # a row count is BIGINT (@@ROWCOUNT_BIG)
INT_MIN, INT_MAX = -(2**31), 2**31 - 1  # RETURN's value is INT
MAX_PARAMETER_NAME = 128  # sysname, the '@' included
SCRIPT_PARAM = "@Script"  # the procedure's own parameter: no output may take its name
# OUTPUT parameters cannot be of these types (SQL Server refuses them in a procedure's
# declaration), and their ROW framing (a text pointer) has no RETURNVALUE form.
NOT_OUTPUT_TYPES = frozenset({"text", "ntext", "image"})

_KINDS = ("count", "print", "info", "result", "return", "output")
_RESULT_OPTIONS = frozenset({"info_after_rows", "error_after_rows"})
_MESSAGE_KEYS = frozenset({"number", "class", "text"})
_ERROR_KEYS = frozenset({"rows", "number", "text"})
_OUTPUT_KEYS = frozenset({"name", "type", "value"})


@dataclass(frozen=True, slots=True)
class Message:
    """An INFO token's number, class (severity) and text."""

    number: int
    severity: int
    text: str


@dataclass(frozen=True, slots=True)
class Count:
    """DONEINPROC with a row count, as an INSERT or UPDATE gives under SET NOCOUNT OFF."""

    rows: int


@dataclass(frozen=True, slots=True)
class Info:
    """An INFO token: PRINT (number 0, class 0) or RAISERROR(..., 0..10) WITH NOWAIT."""

    message: Message


@dataclass(frozen=True, slots=True)
class RowsError:
    """A statement error (class 16) after the first ``rows`` rows: the procedure ends there."""

    rows: int
    number: int
    text: str


@dataclass(frozen=True, slots=True)
class Result:
    """A result set; optionally a message after its last row, or an error after some rows."""

    result: columns.ColumnsResult
    info_after_rows: Message | None = None
    error_after_rows: RowsError | None = None


@dataclass(frozen=True, slots=True)
class Output:
    """An OUTPUT parameter: a RETURNVALUE if the caller passed ``name`` by reference."""

    name: str  # with the '@'
    type: sqltypes.SqlType
    data: bytes | None  # the value's bytes (sqltypes.SqlType.data); None: NULL

    def value_cell(self) -> bytes:
        """The value framed as RETURNVALUE carries it (as in a ROW of a nullable column)."""
        return sqltypes.frame(self.type.framing(True), self.data, sqltypes.DEFAULT_PLP)


Step = Count | Info | Result


@dataclass(frozen=True, slots=True)
class Script:
    """What a script sends: the steps in order, then RETURNSTATUS ``return_status`` and the
    RETURNVALUEs of ``outputs`` passed by reference, then DONEPROC."""

    steps: tuple[Step, ...]
    return_status: int = 0
    outputs: tuple[Output, ...] = ()


def parse_script(text: str) -> Script:
    """A script's JSON text, checked whole; :class:`SpecError` saying which step is wrong."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SpecError(f"not JSON: {exc}") from None
    if not isinstance(raw, dict) or set(raw) != {"steps"} or not isinstance(raw["steps"], list):
        raise SpecError('a script is a JSON object {"steps": [...]}')
    items = raw["steps"]
    if len(items) > MAX_STEPS:
        raise SpecError(f"a script has at most {MAX_STEPS} steps, not {len(items)}")
    steps: list[Step] = []
    return_status: int | None = None
    outputs: dict[str, Output] = {}
    for number, item in enumerate(items, start=1):
        where = f"step {number}"
        if not isinstance(item, dict):
            raise SpecError(f'{where} is an object such as {{"count": 1}}')
        kinds = [k for k in _KINDS if k in item]
        if len(kinds) != 1:
            raise SpecError(f"{where} has one of the keys {', '.join(_KINDS)}: {sorted(item)}")
        (kind,) = kinds
        where = f"{where} ({kind})"
        _no_other_keys(item, {kind} | (_RESULT_OPTIONS if kind == "result" else set()), where)
        value = item[kind]
        if kind == "count":
            steps.append(Count(_integer(value, 0, MAX_COUNT, where)))
        elif kind == "print":
            steps.append(Info(Message(0, 0, _text(value, where))))
        elif kind == "info":
            steps.append(Info(_message(value, where)))
        elif kind == "result":
            steps.append(_result(item, where))
        elif kind == "return":
            if return_status is not None:
                raise SpecError(f"{where}: a script returns one status")
            return_status = _integer(value, INT_MIN, INT_MAX, where)
        else:
            output = _output(value, where)
            if output.name.lower() in outputs:
                raise SpecError(f"{where}: {output.name} is an output already")
            outputs[output.name.lower()] = output
    return Script(tuple(steps), return_status or 0, tuple(outputs.values()))


def _no_other_keys(
    item: Mapping[str, object], known: set[str] | frozenset[str], where: str
) -> None:
    unknown = sorted(set(item) - known)
    if unknown:
        raise SpecError(f"{where} has unknown keys {unknown} (known: {sorted(known)})")


def _integer(value: object, low: int, high: int, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise SpecError(f"{where}: an integer from {low:,} to {high:,}, not {value!r}")
    return value


def _text(value: object, where: str) -> str:
    if not isinstance(value, str) or len(value) > MAX_MESSAGE_CHARS:
        raise SpecError(f"{where}: a text of at most {MAX_MESSAGE_CHARS} characters")
    return value


def _message(value: object, where: str) -> Message:
    """``{"number": ..., "class": 0..10, "text": ...}``."""
    if not isinstance(value, dict) or set(value) != _MESSAGE_KEYS:
        raise SpecError(f'{where}: a message is {{"number": ..., "class": ..., "text": ...}}')
    return Message(
        _integer(value["number"], 0, MAX_NUMBER, f"{where}: number"),
        _integer(value["class"], 0, MAX_INFO_CLASS, f"{where}: class"),
        _text(value["text"], f"{where}: text"),
    )


def _result(item: Mapping[str, object], where: str) -> Result:
    try:
        result = columns.spec_result(item["result"], "the spec")
    except SpecError as exc:
        raise SpecError(f"{where}: {exc}") from None
    info = item.get("info_after_rows")
    error = item.get("error_after_rows")
    if info is not None and error is not None:
        raise SpecError(f"{where}: info_after_rows or error_after_rows, not both")
    if error is None:
        return Result(result, None if info is None else _message(info, f"{where}: info_after_rows"))
    where = f"{where}: error_after_rows"
    if not isinstance(error, dict) or not {"rows", "text"} <= set(error) <= _ERROR_KEYS:
        raise SpecError(f'{where} is {{"rows": K, "number"?: 50000, "text": ...}}')
    rows = _integer(error["rows"], 0, result.count, f"{where}: rows (of {result.count})")
    number = _integer(error.get("number", THROW_NUMBER), 0, MAX_NUMBER, f"{where}: number")
    return Result(result, error_after_rows=RowsError(rows, number, _text(error["text"], where)))


def _output(value: object, where: str) -> Output:
    """``{"name": "@Total", "type": "int", "value": 5}``: the value is a spColumns JSON value."""
    if not isinstance(value, dict) or not {"name", "type"} <= set(value) <= _OUTPUT_KEYS:
        raise SpecError(f'{where} is {{"name": "@Name", "type": "int", "value": ...}}')
    name, declared = value["name"], value["type"]
    if not isinstance(name, str) or not name.startswith("@") or len(name) > MAX_PARAMETER_NAME:
        raise SpecError(f"{where}: the name is '@' and at most {MAX_PARAMETER_NAME - 1} characters")
    if name.lower() == SCRIPT_PARAM.lower():
        raise SpecError(f"{where}: {SCRIPT_PARAM} is the script itself")
    if not isinstance(declared, str):
        raise SpecError(f'{where}: "type" is a type declaration such as "int"')
    try:
        typ = sqltypes.parse_type(declared)
        if typ.kind in NOT_OUTPUT_TYPES:
            raise SpecError(f"{typ.kind} cannot be an OUTPUT parameter")
        given = value.get("value")
        data = None if given is None else typ.data(given)
    except SpecError as exc:
        raise SpecError(f"{where}: {name} {declared}: {exc}") from None
    return Output(name, typ, data)
