"""``dbo.spScript``: token-stream shapes of real procedures, described in JSON, through pytds
over TCP and on the wire; the script parser on its own."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from typing import Any

import pytds
import pytest

from sql.devserver import DEV_DATABASE, DEV_PASSWORD, DEV_USER, DevServer, run_in_thread
from sql.devserver.columns import Column, spec_json
from sql.devserver.errors import SpecError
from sql.devserver.script import Count, Info, Message, Result, parse_script
from tests.test_sql import tdsclient
from tests.test_sql.columns_client import literal

PROC = "dbo.spScript"


def spec(*rows: int, repeat: int = 1) -> Any:
    """A spColumns spec of one INT column ``n``."""
    return json.loads(spec_json([Column("n", "int")], [[r] for r in rows], repeat=repeat))


def script(*steps: dict[str, Any]) -> str:
    return json.dumps({"steps": list(steps)})


WARNING = {"number": 8153, "class": 10, "text": "Warning: Null value is eliminated by an aggregate"}


@pytest.fixture(scope="module")
def server() -> Iterator[DevServer]:
    with run_in_thread(host="127.0.0.1", port=0) as srv:
        yield srv


def messages(cur: Any) -> list[tuple[int, str]]:
    return [(m[1].msg_no, m[1].text) for m in cur.messages]


# -- pytds --------------------------------------------------------------------------------------


def test_counts_before_the_first_result_are_skipped_by_callproc(conn: Any) -> None:
    text = script({"count": 3}, {"count": 0}, {"print": "filling"}, {"result": spec(1, 2)})
    with conn.cursor() as cur:
        cur.callproc(PROC, (text,))
        assert [d[0] for d in cur.description] == ["n"]
        assert cur.fetchall() == [(1,), (2,)]
        assert (0, "filling") in messages(cur)
        assert not cur.nextset()
        assert cur.return_value == 0


def test_several_result_sets_with_messages_between_and_after_rows(conn: Any) -> None:
    text = script(
        {"result": spec(1, 2), "info_after_rows": WARNING},
        {"info": {"number": 50001, "class": 10, "text": "half way"}},
        {"count": 7},
        {"result": spec(3)},
        {"result": spec(4, 5, 6)},
    )
    sets = []
    with conn.cursor() as cur:
        cur.callproc(PROC, (text,))
        sets.append([tuple(r) for r in cur.fetchall()])
        while cur.nextset():
            sets.append([tuple(r) for r in cur.fetchall()])
        assert cur.return_value == 0
        found = messages(cur)
    # pytds' nextset() also stops at a count between result sets (DONEINPROC with MORE|COUNT):
    # a "set" without rows that keeps the previous description; a client skips it.
    assert sets == [[(1,), (2,)], [], [(3,)], [(4,), (5,), (6,)]]
    assert (8153, WARNING["text"]) in found
    assert (50001, "half way") in found


def test_an_empty_result_set_still_has_its_description(conn: Any) -> None:
    text = script({"result": spec()}, {"result": spec(1, repeat=0)}, {"result": spec(9)})
    with conn.cursor() as cur:
        cur.callproc(PROC, (text,))
        assert [d[0] for d in cur.description] == ["n"]
        assert cur.fetchall() == []
        assert cur.nextset()
        assert [d[0] for d in cur.description] == ["n"]
        assert cur.fetchall() == []
        assert cur.nextset()
        assert cur.fetchall() == [(9,)]


def test_an_error_after_k_rows_of_the_second_set_comes_after_those_rows(conn: Any) -> None:
    text = script(
        {"result": spec(1)},
        {"result": spec(10, 11, 12, 13), "error_after_rows": {"rows": 2, "text": "boom"}},
        {"result": spec(99)},  # never sent: the error ends the procedure
        {"return": 5},
    )
    got: list[tuple[Any, ...]] = []
    with conn.cursor() as cur:
        cur.callproc(PROC, (text,))
        assert cur.fetchall() == [(1,)]
        assert cur.nextset()
        got.append(tuple(cur.fetchone()))
        got.append(tuple(cur.fetchone()))
        with pytest.raises(pytds.OperationalError) as info:
            cur.fetchone()
    assert got == [(10,), (11,)]
    assert info.value.msg_no == 50000
    assert info.value.text == "boom"
    with conn.cursor() as cur:  # the connection is still good
        cur.callproc(PROC, (script({"result": spec(1)}),))
        assert cur.fetchall() == [(1,)]


def test_no_result_set_at_all(conn: Any) -> None:
    text = script({"count": 4}, {"print": "only messages"}, {"return": 3})
    with conn.cursor() as cur:
        cur.callproc(PROC, (text,))
        assert cur.description is None
        assert cur.return_value == 3
        assert (0, "only messages") in messages(cur)


@pytest.mark.parametrize("status", [-(2**31), -1, 0, 42, 2**31 - 1])
def test_the_return_status(conn: Any, status: int) -> None:
    with conn.cursor() as cur:
        cur.callproc(PROC, (script({"result": spec(1)}, {"return": status}),))
        cur.fetchall()
        while cur.nextset():
            pass
        assert cur.get_proc_return_status() == status


OUTPUTS = (
    {"output": {"name": "@Total", "type": "int", "value": 5}},
    {"output": {"name": "@Label", "type": "nvarchar(20)", "value": "fünf 🚀"}},
)


def test_outputs_arrive_for_parameters_passed_as_output(conn: Any) -> None:
    """pytds reads RETURNVALUE into callproc's result when no result set precedes it."""
    text = script({"count": 1}, *OUTPUTS)
    with conn.cursor() as cur:
        result = cur.callproc(
            PROC,
            {
                "@Script": text,
                "@Total": pytds.output(param_type=int),
                "@Label": pytds.output(param_type="NVARCHAR(20)"),
            },
        )
        assert result[1:] == [5, "fünf 🚀"]
        assert cur.return_value == 0


def test_outputs_after_result_sets_with_get_proc_outputs(conn: Any) -> None:
    # pytds' get_proc_outputs indexes a list of the outputs by ordinal: outputs first.
    text = script({"result": spec(1, 2)}, {"return": 9}, *OUTPUTS)
    with conn.cursor() as cur:
        cur.callproc(
            PROC,
            {"@Total": pytds.output(param_type=int), "@Script": text},
        )
        assert cur.fetchall() == [(1,), (2,)]
        assert cur.get_proc_outputs() == [5]  # @Label was not passed: nothing sent for it
        assert cur.return_value == 9


def test_an_output_passed_by_value_or_positionally(conn: Any) -> None:
    text = script(*OUTPUTS)
    with conn.cursor() as cur:
        by_value = cur.callproc(PROC, {"@Script": text, "@Total": 1})
        assert by_value == ["@Script", "@Total"]  # pytds' result: the keys, nothing replaced
    with conn.cursor() as cur:
        positional = cur.callproc(PROC, (text, pytds.output(param_type=int)))
        assert positional[1] == 5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "@Script: not JSON"),
        ("[]", '@Script: a script is a JSON object {"steps": [...]}'),
        (script({"sleep": 1}), "@Script: step 1 has one of the keys count, print"),
        (script({"count": 1, "print": "x"}), "@Script: step 1 has one of the keys"),
        (script({"count": -1}), "@Script: step 1 (count): an integer from 0"),
        (script({"print": 5}), "@Script: step 1 (print): a text of at most 4000"),
        (script({"info": {"number": 1, "class": 11, "text": "x"}}), "step 1 (info): class"),
        (script({"result": {"columns": []}}), 'step 1 (result): "columns" is a list of 1'),
        (script({"result": spec(1), "extra": 1}), "step 1 (result) has unknown keys ['extra']"),
        (
            script({"result": spec(1), "error_after_rows": {"rows": 2, "text": "x"}}),
            "error_after_rows: rows (of 1)",
        ),
        (script({"return": 1}, {"return": 2}), "step 2 (return): a script returns one status"),
        (
            script({"output": {"name": "Total", "type": "int"}}),
            "step 1 (output): the name is '@'",
        ),
        (
            script({"output": {"name": "@T", "type": "text", "value": "x"}}),
            "text cannot be an OUTPUT parameter",
        ),
        (
            script({"output": {"name": "@T", "type": "int", "value": "x"}}),
            "a int value is a JSON integer",
        ),
    ],
)
def test_a_bad_script_is_an_error_before_any_token(
    server: DevServer, conn: Any, text: str, message: str
) -> None:
    sent = server.stats.rows_sent
    with conn.cursor() as cur, pytest.raises(pytds.OperationalError) as info:
        cur.callproc(PROC, (text,))
    assert info.value.msg_no == 50000
    assert message in info.value.text
    assert server.stats.rows_sent == sent


@pytest.mark.parametrize(
    ("call", "number"),
    [
        ("EXEC dbo.spScript", 201),
        ("EXEC dbo.spScript NULL", 50000),
        ("EXEC dbo.spScript @Spec = N'{}'", 8145),  # no @Script, and @Spec is not one
        (f"EXEC dbo.spScript {literal(script())}, 1", 8144),  # the script declares no output
        (f"EXEC dbo.spScript {literal(script(*OUTPUTS[:1]))}, @Nope = 1", 8145),
    ],
)
def test_binding_errors_are_sql_servers(conn: Any, call: str, number: int) -> None:
    with conn.cursor() as cur, pytest.raises(pytds.Error) as info:
        cur.execute(call)
    assert info.value.msg_no == number


def test_exec_in_a_batch(conn: Any) -> None:
    text = script({"print": "it's"}, {"result": spec(8)}, *OUTPUTS)
    with conn.cursor() as cur:
        cur.execute(f"EXEC dbo.spScript @Script = {literal(text)}, @Total = 0")
        assert cur.fetchall() == [(8,)]


# -- on the wire ------------------------------------------------------------------------------

DONE_MORE_COUNT = 0x11
CMD_SELECT, CMD_INSERT, CMD_EXECUTE = 0xC1, 0xC3, 0xE0


def raw_reply(server: DevServer, *params: bytes) -> list[tuple[object, ...]]:
    with tdsclient.RawClient("127.0.0.1", server.port) as client:
        client.login(DEV_USER, DEV_PASSWORD, DEV_DATABASE)
        client.sock.sendall(tdsclient.rpc_params_message(PROC, *params))
        return tdsclient.reply_tokens(client.read_reply().payload)


def rpc_param(name: str, status: int, type_and_value: bytes) -> bytes:
    """ParameterData: name, status flags (0x01: by reference), TYPE_INFO and value."""
    return bytes((len(name),)) + name.encode("utf-16-le") + bytes((status,)) + type_and_value


NVARCHAR_MAX = b"\xe7\xff\xff" + bytes.fromhex("0904d00034")  # + SQL_Latin1_General_CP1_CI_AS
PLP_NULL = b"\xff" * 8
INT_NULL = b"\x26\x04\x00"  # INTN(4), NULL


def nvarchar_max(text: str) -> bytes:
    """NVARCHAR(MAX) TYPE_INFO and a PLP value of one chunk."""
    data = text.encode("utf-16-le")
    return NVARCHAR_MAX + struct.pack("<QI", len(data), len(data)) + data + bytes(4)


def test_the_token_order_of_a_script_is_exactly_as_described(server: DevServer) -> None:
    text = script(
        {"count": 3},
        {"print": "before"},
        {"result": spec(1, 2), "info_after_rows": WARNING},
        {"info": {"number": 50001, "class": 10, "text": "between"}},
        {"result": spec()},
        {"return": 7},
        {"output": {"name": "@Label", "type": "nvarchar(max)", "value": "big"}},
        {"output": {"name": "@Total", "type": "int", "value": 5}},
        {"output": {"name": "@Unasked", "type": "int", "value": 6}},
    )
    found = raw_reply(
        server,
        rpc_param("@Script", 0, nvarchar_max(text)),
        rpc_param("@Label", 0x01, NVARCHAR_MAX + PLP_NULL),
        rpc_param("@Total", 0x01, INT_NULL),
        rpc_param("@Unasked", 0x00, INT_NULL),  # by value: no RETURNVALUE
    )
    one, two = (1).to_bytes(4, "little"), (2).to_bytes(4, "little")
    assert found == [
        ("DONEINPROC", DONE_MORE_COUNT, CMD_INSERT, 3),
        ("INFO", 0, 0, "before", "spScript"),
        ("COLMETADATA", ("n",)),
        ("ROW", (one,)),
        ("ROW", (two,)),
        ("INFO", 8153, 10, WARNING["text"], "spScript"),
        ("DONEINPROC", DONE_MORE_COUNT, CMD_SELECT, 2),
        ("INFO", 50001, 10, "between", "spScript"),
        ("COLMETADATA", ("n",)),
        ("DONEINPROC", DONE_MORE_COUNT, CMD_SELECT, 0),
        ("RETURNSTATUS", 7),
        # Ordinals are the parameters' positions in the call; the large one comes last.
        ("RETURNVALUE", 2, "@Total", 0x01, (5).to_bytes(4, "little")),
        ("RETURNVALUE", 1, "@Label", 0x01, "big".encode("utf-16-le")),
        ("DONEPROC", 0x00, CMD_EXECUTE, 0),
    ]


def test_an_error_after_rows_ends_the_procedure_on_the_wire(server: DevServer) -> None:
    text = script(
        {"result": spec(1, 2, 3), "error_after_rows": {"rows": 1, "number": 8134, "text": "x"}},
        {"print": "never"},
        {"return": 4},
        {"output": {"name": "@Total", "type": "int", "value": 5}},
    )
    found = raw_reply(
        server,
        rpc_param("", 0, nvarchar_max(text)),
        rpc_param("@Total", 0x01, INT_NULL),
    )
    assert found == [
        ("COLMETADATA", ("n",)),
        ("ROW", ((1).to_bytes(4, "little"),)),
        ("ERROR", 8134, 16, "x", "spScript"),
        ("DONEINPROC", 0x13, CMD_SELECT, 1),
        ("RETURNSTATUS", -6),
        ("DONEPROC", 0x02, CMD_EXECUTE, 0),
    ]


# -- the parser ---------------------------------------------------------------------------------


def test_the_parser_reads_every_step() -> None:
    parsed = parse_script(
        script(
            {"count": 2},
            {"print": "p"},
            {"info": {"number": 1, "class": 10, "text": "i"}},
            {"result": spec(1), "info_after_rows": WARNING},
            {"return": -3},
            {"output": {"name": "@A", "type": "decimal(9,2)", "value": "1.25"}},
            {"output": {"name": "@B", "type": "nvarchar(5)"}},
        )
    )
    assert parsed.steps[:3] == (Count(2), Info(Message(0, 0, "p")), Info(Message(1, 10, "i")))
    result = parsed.steps[3]
    assert isinstance(result, Result)
    assert result.result.count == 1
    assert result.info_after_rows == Message(8153, 10, WARNING["text"])
    assert parsed.return_status == -3
    assert [(o.name, o.type.declaration, o.data) for o in parsed.outputs] == [
        ("@A", "decimal(9,2)", b"\x01" + (125).to_bytes(4, "little")),
        ("@B", "nvarchar(5)", None),
    ]


@pytest.mark.parametrize(
    "text",
    [
        script(
            {"output": {"name": "@A", "type": "int"}}, {"output": {"name": "@a", "type": "int"}}
        ),
        script({"output": {"name": "@Script", "type": "int"}}),
        script({"result": spec(1), "info_after_rows": WARNING, "error_after_rows": {}}),
        script(*[{"count": 1}] * 1001),
        json.dumps({"steps": [], "more": 1}),
    ],
)
def test_the_parser_refuses(text: str) -> None:
    with pytest.raises(SpecError):
        parse_script(text)
