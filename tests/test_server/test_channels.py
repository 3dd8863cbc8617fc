"""The export channel and the control channel on their own, over real socket pairs: framing,
the bound on bytes in flight, hang-up seen by the writer, descriptors handed over."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest

from server import control
from server.channel import (
    ChannelClosed,
    ExportChannel,
    FrameReader,
    Kind,
    channel_pair,
    failure_payload,
)
from server.control import ControlClosed, ExportSummary, WorkerControl
from server.errors import (
    DatabaseTimeout,
    DatabaseUnavailable,
    ExportError,
    InternalError,
    TooManyExports,
)
from tests.polling import poll

CHUNK = 64 * 1024


async def test_frames_arrive_whole_and_in_order_with_the_rows_read_so_far() -> None:
    ours, theirs = channel_pair(4 * CHUNK)
    reader, writer = FrameReader(ours), ExportChannel(theirs)
    payloads = [bytes([n]) * (CHUNK + n) for n in range(3)]

    def produce() -> None:
        writer.send(Kind.STARTED, 0)
        for n, payload in enumerate(payloads):
            writer.send(Kind.CHUNK, 1000 * (n + 1), payload)
        writer.send(Kind.FINISHED, 3000)
        writer.close()

    thread = threading.Thread(target=produce)
    thread.start()
    frames = []
    while (frame := await reader.read()) is not None:
        frames.append(frame)
    thread.join()
    assert [(f.kind, f.rows) for f in frames] == [
        (Kind.STARTED, 0),
        (Kind.CHUNK, 1000),
        (Kind.CHUNK, 2000),
        (Kind.CHUNK, 3000),
        (Kind.FINISHED, 3000),
    ]
    assert [bytes(f.payload) for f in frames[1:4]] == payloads
    reader.close()


async def test_a_stream_cut_inside_a_frame_is_the_end_not_a_frame() -> None:
    ours, theirs = channel_pair(4 * CHUNK)
    reader = FrameReader(ours)
    ExportChannel(theirs).send(Kind.STARTED, 0)
    # A chunk header that promises 1,000 bytes, then the writer is gone (a worker killed).
    theirs.sendall(bytes([Kind.CHUNK]) + (0).to_bytes(8, "big") + (1000).to_bytes(4, "big"))
    theirs.sendall(b"x" * 10)
    theirs.close()
    first = await reader.read()
    assert first is not None
    assert first.kind is Kind.STARTED
    assert await reader.read() is None
    reader.close()


@pytest.mark.parametrize("chunks", [1, 2, 4])
def test_the_worker_end_holds_about_the_configured_chunks(chunks: int) -> None:
    """What the bound on bytes in flight rests on: Linux doubles SO_SNDBUF, and a Unix stream
    socket then holds that much unread data."""
    ours, theirs = channel_pair(chunks * CHUNK)
    with ours, theirs:
        theirs.setblocking(False)
        written = 0
        while (sent := _send_or_none(theirs, b"x" * CHUNK)) is not None:
            written += sent
        assert (chunks - 0.5) * CHUNK <= written <= (chunks + 1) * CHUNK, written


def _send_or_none(sock: socket.socket, data: bytes) -> int | None:
    """What a non-blocking send wrote; None when it would block."""
    try:
        return sock.send(data)
    except BlockingIOError:
        return None


def test_a_write_blocked_on_a_full_channel_wakes_when_the_reader_closes() -> None:
    ours, theirs = channel_pair(CHUNK)
    writer = ExportChannel(theirs)
    failed: list[BaseException] = []
    blocked_since: list[float] = []

    def produce() -> None:
        try:
            while True:
                blocked_since[:] = [time.monotonic()]
                writer.send(Kind.CHUNK, 0, b"x" * CHUNK)
        except ChannelClosed as exc:
            failed.append(exc)

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    # The writer stays in one send: the channel is full and nobody reads.
    poll(
        lambda: blocked_since and time.monotonic() - blocked_since[0] > 0.2,
        what="the writer to block",
    )
    assert not writer.hung_up()
    closed_at = time.monotonic()
    ours.close()
    thread.join(timeout=30)
    assert failed, "the blocked write must fail once the reader is gone"
    assert time.monotonic() - closed_at < 5.0
    assert writer.hung_up()
    writer.close()


def test_hung_up_sees_the_readers_close_without_any_write() -> None:
    ours, theirs = channel_pair(CHUNK)
    writer = ExportChannel(theirs)
    assert not writer.hung_up()
    ours.close()
    assert writer.hung_up()
    with pytest.raises(ChannelClosed):
        writer.send(Kind.STARTED, 0)
    writer.close()
    assert writer.hung_up(), "a closed channel counts as hung up"


@pytest.mark.parametrize(
    "error",
    [
        DatabaseTimeout("the database sent nothing for 30 s (first-row timeout)"),
        DatabaseUnavailable("lost the database connection: connection reset by peer"),
        TooManyExports("all 50 database connections are busy; try again shortly"),
        InternalError("the export failed unexpectedly"),
    ],
)
async def test_a_failure_frame_answers_as_the_workers_error(error: ExportError) -> None:
    ours, theirs = channel_pair(CHUNK)
    ExportChannel(theirs).send(Kind.FAILED, 7, failure_payload(error))
    frame = await FrameReader(ours).read()
    assert frame is not None
    rebuilt = frame.error()
    assert type(rebuilt) is type(error)
    assert (rebuilt.status, rebuilt.code, rebuilt.message) == (
        error.status,
        error.code,
        error.message,
    )
    ours.close()
    theirs.close()


def test_control_messages_carry_a_socket_the_receiver_can_use() -> None:
    http_end, worker_end = control.control_pair()
    worker = WorkerControl(worker_end)
    ours, theirs = channel_pair(CHUNK)
    control.send(http_end, {"kind": control.EXPORT, "export": 7, "rows": 10}, [theirs.fileno()])
    theirs.close()  # the sender's copy: the receiver's is a descriptor of its own
    received = worker.receive(5.0)
    assert received is not None
    message, carried = received
    assert message == {"kind": control.EXPORT, "export": 7, "rows": 10}
    assert len(carried) == 1
    carried[0].sendall(b"through the handed-over socket")
    assert ours.recv(100) == b"through the handed-over socket"
    carried[0].close()
    ours.close()
    assert worker.receive(0.05) is None, "nothing more: a timeout, not an end"
    http_end.close()
    with pytest.raises(ControlClosed):
        worker.receive(5.0)
    worker.close()


def test_a_receive_whose_time_is_already_up_finds_nothing_without_failing() -> None:
    """A worker's loop late for its next heartbeat waits no time at all: that is no error."""
    http_end, worker_end = control.control_pair()
    worker = WorkerControl(worker_end)
    assert worker.receive(0.0) is None
    control.send(http_end, {"kind": control.READY, "id": 1})
    assert worker.receive(0.0) == ({"kind": control.READY, "id": 1}, [])
    http_end.close()
    worker.close()


def test_the_worker_sees_the_end_of_the_http_process_as_closed_on_send() -> None:
    http_end, worker_end = control.control_pair()
    worker = WorkerControl(worker_end)
    http_end.close()
    with pytest.raises(ControlClosed):
        worker.send({"kind": control.POOL, "idle": 0, "in_use": 0})
    worker.close()


def test_an_export_summary_survives_the_channel() -> None:
    summary = ExportSummary(
        export=3,
        rows=1_048_576,
        sheets=2,
        db_result="completed",
        connection_kept=True,
        connection_reused=False,
        rss_start=30 << 20,
        rss_peak=34 << 20,
    )
    http_end, worker_end = control.control_pair()
    with http_end, worker_end:
        control.send(worker_end, summary.message())
        message, carried = control.receive(http_end)
    assert carried == []
    assert ExportSummary.of(message) == summary


def test_log_records_are_cut_to_fit_one_message() -> None:
    huge = "x" * (2 * control.MAX_MESSAGE_BYTES)
    message = control.log_message("server.export", 40, huge, "Traceback...\n" + huge)
    assert len(control.encode(message)) <= control.MAX_MESSAGE_BYTES
    assert str(message["exc"]).endswith("x")  # the end of a traceback says what failed
    with pytest.raises(ValueError, match="control message"):
        control.encode({"kind": control.LOG, "message": huge})


async def test_a_frame_reader_on_the_event_loop_waits_for_a_slow_writer() -> None:
    ours, theirs = channel_pair(CHUNK)
    reader = FrameReader(ours)
    writer = ExportChannel(theirs)
    reading = asyncio.ensure_future(reader.read())
    await asyncio.sleep(0)
    assert not reading.done()
    writer.send(Kind.CHUNK, 5, b"late")
    frame = await asyncio.wait_for(reading, 30)
    assert frame is not None
    assert (frame.kind, frame.rows, bytes(frame.payload)) == (Kind.CHUNK, 5, b"late")
    reader.close()
    writer.close()
