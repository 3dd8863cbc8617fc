"""Every pytds internal the fast row path relies on, and nothing else, lives here.

pytds (python-tds) parses COLMETADATA, runs the RPC, reports errors and handles attentions;
the fast path only takes over the bytes between COLMETADATA and the first token that is not a
row. For that it needs, from pytds 1.17 (``TESTED_VERSIONS``):

- the session of a cursor (``cursor._session``) and its packet reader (``session._reader``);
- the reader's current packet: ``_buf``/``_bufview`` (one packet, header included), ``_pos``
  and ``_size`` (read position and end), ``_status`` (1 on the message's last packet) and
  ``_read_packet()`` (the next packet of the message, through the connection's transport);
- the parsed columns (``session.res_info.columns[i].serializer``: the serializer classes named
  in ``_KINDS`` below and their ``size``/``precision``/``scale``/``_codec``);
- for cancelling: ``session.in_cancel``, ``put_cancel()``, ``get_token_id()``,
  ``process_token()``, ``begin_response()``, ``_reader.stream_finished()``;
- ``session.more_rows`` (set by a COLMETADATA, cleared by a DONE*): what tells a new result
  set from a statement's row count when moving to the next one (:func:`next_result_set`);
- ``session.end_marker``, ``done_flags`` and ``rows_affected`` (the last DONE* token read: its
  kind, status and row count): the count the server gives a result set (:func:`rows_reported`);
- ``session._row_convertor`` (``tuple`` for pytds' default row strategy),
  ``session.tzinfo_factory`` and the login's ``bytes_to_unicode`` (both change what pytds
  returns; the fast path declines such sessions);
- for :func:`check_values`, how each serializer of ``_CHECKED_READS`` reads a value once its
  length prefix is read (``subtypes``, ``read_fixed``, ``_codec``, the reader's ``get_byte``,
  ``get_usmallint`` and ``read_str``, ``tds_base.readall``, ``tds_types.ucs2_codec``).

:func:`check_driver` verifies all of them and names what changed; the test suite runs it, so an
upgrade of pytds that breaks the fast path fails loudly instead of decoding wrongly.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Callable, Mapping
from typing import Any, Final

from pytds import tds_base, tds_types

from tdsrows.errors import DriverMismatch, StreamError, UnsupportedLayout
from tdsrows.layout import TIME_BYTES, Column, Framing, Kind, Layout, decimal_magnitude_bytes

DISTRIBUTION: Final = "python-tds"
_PACKET_HEADER: Final = 8  # bytes before a TDS packet's payload (MS-TDS 2.2.3.1)
# Minor versions whose internals were read and tested (setup.cfg pins the same range).
TESTED_VERSIONS: Final = ((1, 17),)

_B, _N, _U = Framing.FIXED, Framing.BYTE_LEN, Framing.USHORT_LEN
# Serializer class name -> (kind, framing, size of a fixed value or None: read from the
# serializer). Classes are matched exactly: subclasses (e.g. the MAX variants of VARCHAR,
# NVARCHAR and VARBINARY, which are PLP streams) are not decoded here.
_KINDS: Final[Mapping[str, tuple[Kind, Framing, int | None]]] = {
    "TinyIntSerializer": (Kind.INT, _B, 1),
    "SmallIntSerializer": (Kind.INT, _B, 2),
    "IntSerializer": (Kind.INT, _B, 4),
    "BigIntSerializer": (Kind.INT, _B, 8),
    "IntNSerializer": (Kind.INT, _N, None),
    "BitSerializer": (Kind.BIT, _B, 1),
    "BitNSerializer": (Kind.BIT, _N, None),
    "RealSerializer": (Kind.FLOAT, _B, 4),
    "FloatSerializer": (Kind.FLOAT, _B, 8),
    "FloatNSerializer": (Kind.FLOAT, _N, None),
    "Money4Serializer": (Kind.MONEY, _B, 4),
    "Money8Serializer": (Kind.MONEY, _B, 8),
    "MoneyNSerializer": (Kind.MONEY, _N, None),
    "MsDecimalSerializer": (Kind.DECIMAL, _N, None),
    "MsDateSerializer": (Kind.DATE, _N, 3),
    "MsTimeSerializer": (Kind.TIME, _N, None),
    "DateTime2Serializer": (Kind.DATETIME2, _N, None),
    "DateTimeSerializer": (Kind.DATETIME, _B, 8),
    "SmallDateTimeSerializer": (Kind.SMALLDATETIME, _B, 4),
    "DateTimeNSerializer": (Kind.DATETIME, _N, None),
    "VarChar72Serializer": (Kind.TEXT, _U, None),
    "NVarChar72Serializer": (Kind.NTEXT, _U, None),
    "VarBinarySerializer72": (Kind.BINARY, _U, None),
    "MsUniqueSerializer": (Kind.GUID, _N, 16),
}
# Kinds whose values pytds would give a time zone when the connection has a tzinfo_factory.
_ZONED: Final = frozenset({Kind.TIME, Kind.DATETIME2, Kind.DATETIME, Kind.SMALLDATETIME})


def driver_version() -> tuple[int, ...]:
    text = importlib.metadata.version(DISTRIBUTION)
    return tuple(int(part) for part in text.split(".")[:2] if part.isdigit())


def check_driver() -> None:
    """Raise :class:`DriverMismatch` naming what the installed pytds no longer provides."""
    version = driver_version()
    if version[:2] not in TESTED_VERSIONS:
        raise DriverMismatch(
            f"{DISTRIBUTION} {'.'.join(map(str, version))} is installed; the fast row path was"
            f" tested on {', '.join('.'.join(map(str, v)) for v in TESTED_VERSIONS)}"
        )
    missing = [name for name in _KINDS if not isinstance(getattr(tds_types, name, None), type)]
    if missing:
        raise DriverMismatch(f"pytds.tds_types no longer defines {', '.join(missing)}")
    from pytds import tds_reader, tds_session

    needed = {
        tds_reader._TdsReader: ("_read_packet", "stream_finished", "__init__"),
        tds_session._TdsSession: (
            "put_cancel",
            "get_token_id",
            "process_token",
            "begin_response",
            "fetchone",
            "next_set",
        ),
    }
    for owner, names in needed.items():
        absent = [n for n in names if not hasattr(owner, n)]
        if absent:
            raise DriverMismatch(f"pytds {owner.__name__} no longer has {', '.join(absent)}")
    reader_fields = tds_reader._TdsReader.__init__.__code__.co_names
    absent = [f for f in ("_buf", "_bufview", "_pos", "_size", "_status") if f not in reader_fields]
    if absent:
        raise DriverMismatch(f"pytds _TdsReader no longer keeps {', '.join(absent)}")
    ends = tds_session._TdsSession.process_end.__code__.co_names
    kept = ("more_rows", "end_marker", "done_flags", "rows_affected")
    absent = [n for n in kept if n not in ends]
    if absent:
        raise DriverMismatch(f"pytds _TdsSession no longer keeps {', '.join(absent)}")
    readers = ("get_byte", "get_usmallint", "read_str")
    absent = [n for n in readers if not hasattr(tds_reader._TdsReader, n)]
    absent += [n for n in ("readall",) if not hasattr(tds_base, n)]
    absent += [n for n in ("ucs2_codec",) if not hasattr(tds_types, n)]
    for name, (_, needs) in _CHECKED_READS.items():
        absent += [f"{name}.{n}" for n in needs if not hasattr(getattr(tds_types, name), n)]
    if absent:
        raise DriverMismatch(f"pytds no longer has {', '.join(absent)} (check_values)")


def next_result_set(cursor: Any) -> bool:
    """Read on to the cursor's next result set (True: its COLMETADATA was read, its rows or
    its end come next) or to the end of the response (False).

    The rows still unread of the current set are read past by pytds, and so are messages
    (PRINT, RAISERROR ... WITH NOWAIT) and the row counts of statements that return no rows
    (DONEINPROC with COUNT, under SET NOCOUNT OFF). pytds' ``nextset()`` stops at each such
    count with the previous set's description still in place, so its answer alone cannot tell
    a new result set: a COLMETADATA is what sets ``more_rows``. An error the server reports
    is raised by pytds.
    """
    session = cursor._session
    while True:
        if not cursor.nextset():
            return False
        if session.more_rows:
            return True


# The tokens that end a statement's rows (MS-TDS 2.2.7.6, 2.2.7.7; DONEPROC ends a procedure).
_STATEMENT_ENDS: Final = frozenset({tds_base.TDS_DONE_TOKEN, tds_base.TDS_DONEINPROC_TOKEN})


def rows_reported(cursor: Any) -> int | None:
    """The row count the server gave the result set whose rows were just read to their end
    (its DONE or DONEINPROC with the COUNT bit, MS-TDS 2.2.7.6), or None when it gave none
    (``SET NOCOUNT ON``), or when the set ended otherwise (an attention's acknowledgement)."""
    session = cursor._session
    if session is None or session.more_rows or session.end_marker not in _STATEMENT_ENDS:
        return None
    flags = int(session.done_flags)
    if not flags & tds_base.TDS_DONE_COUNT or flags & tds_base.TDS_DONE_CANCELLED:
        return None
    return int(session.rows_affected)


def _column(column: Any) -> Column:
    serializer = column.serializer
    name = str(column.column_name)
    # A serializer check_values replaced is still its driver class's.
    driver_class = getattr(type(serializer), "_tdsrows_driver_class", type(serializer))
    kind_info = _KINDS.get(driver_class.__name__)
    if kind_info is None or getattr(tds_types, driver_class.__name__, None) is not driver_class:
        raise UnsupportedLayout(f"column {name!r} is {driver_class.__name__}")
    kind, framing, size = kind_info
    scale = 0
    codec: str | None = None
    if kind is Kind.DECIMAL:
        scale = int(serializer.scale)
        size = 1 + decimal_magnitude_bytes(int(serializer.precision))
    elif kind in (Kind.TIME, Kind.DATETIME2):
        scale = int(serializer.precision)  # pytds keeps the fractional digits as "precision"
        size = TIME_BYTES[scale] + (3 if kind is Kind.DATETIME2 else 0)
    elif kind is Kind.NTEXT:
        size = int(serializer.size * 2)  # pytds keeps NVARCHAR sizes in characters
    elif kind is Kind.TEXT:
        size = int(serializer.size)
        codec = serializer._codec.name
    elif size is None:
        size = int(serializer.size)
    if kind is Kind.DATETIME and size == 4:  # DATETIMN(4) holds smalldatetime values
        kind = Kind.SMALLDATETIME
    return Column(name=name, kind=kind, framing=framing, size=size, scale=scale, codec=codec)


# How pytds reads a value of each framed serializer once its length prefix is read (each
# class's own read() after the prefix), and the attributes that needs: (serializer, reader,
# length) -> value.
def _read_subtype(serializer: Any, r: Any, length: int) -> object:
    return serializer.subtypes[length].read(r)


def _read_sized(serializer: Any, r: Any, length: int) -> object:
    return serializer.read_fixed(r, length)


def _read_date(serializer: Any, r: Any, length: int) -> object:
    return serializer.read_fixed(r)


def _read_text(serializer: Any, r: Any, length: int) -> object:
    if r._session._tds._login.bytes_to_unicode:
        return r.read_str(length, serializer._codec)
    return tds_base.readall(r, length)


def _read_ntext(serializer: Any, r: Any, length: int) -> object:
    return r.read_str(length, tds_types.ucs2_codec)


def _read_binary(serializer: Any, r: Any, length: int) -> object:
    return tds_base.readall(r, length)


_ValueRead = Callable[[Any, Any, int], object]
_CHECKED_READS: Final[Mapping[str, tuple[_ValueRead, tuple[str, ...]]]] = {
    "IntNSerializer": (_read_subtype, ("subtypes",)),
    "BitNSerializer": (_read_subtype, ("subtypes",)),
    "FloatNSerializer": (_read_subtype, ("subtypes",)),
    "MoneyNSerializer": (_read_subtype, ("subtypes",)),
    "DateTimeNSerializer": (_read_subtype, ("subtypes",)),
    "MsDecimalSerializer": (_read_sized, ("read_fixed",)),
    "MsTimeSerializer": (_read_sized, ("read_fixed",)),
    "DateTime2Serializer": (_read_sized, ("read_fixed",)),
    "MsUniqueSerializer": (_read_sized, ("read_fixed",)),
    "MsDateSerializer": (_read_date, ("read_fixed",)),
    "VarChar72Serializer": (_read_text, ()),
    "NVarChar72Serializer": (_read_ntext, ()),
    "VarBinarySerializer72": (_read_binary, ()),
}


_checked_classes: dict[str, type] = {}


def _checked_class(driver_class: type) -> type:
    """``driver_class`` with a read() that checks each value's length against the column's
    type first (layout.Column.length_problem), as the fast path does (made once per class)."""
    made = _checked_classes.get(driver_class.__name__)
    if made is not None:
        return made
    read_value = _CHECKED_READS[driver_class.__name__][0]
    byte_len = _KINDS[driver_class.__name__][1] is Framing.BYTE_LEN
    null = 0 if byte_len else 0xFFFF

    def read(self: Any, r: Any) -> object:
        length = r.get_byte() if byte_len else r.get_usmallint()
        if length == null:
            return None
        column: Column = self._tdsrows_column
        if length != column.size or not byte_len:
            problem = column.length_problem(length)
            if problem is not None:
                raise StreamError(column.problem(problem))
        try:
            return read_value(self, r, length)
        except (ValueError, OverflowError) as exc:
            if isinstance(exc, UnicodeError):
                raise  # text pytds cannot decode: its own error, as before
            # A time of a day or more, a day past 9999-12-31: no value of the column's type.
            raise StreamError(column.problem(f"a value pytds cannot read ({exc})")) from exc

    made = type(
        f"Checked{driver_class.__name__}",
        (driver_class,),
        {"read": read, "_tdsrows_driver_class": driver_class},
    )
    _checked_classes[driver_class.__name__] = made
    return made


def check_values(cursor: Any) -> None:
    """From now on, pytds refuses a value of the cursor's current result set whose length its
    column's type does not have (a decimal not of its precision's size, a date not of 3 bytes,
    text longer than declared or of an odd number of UTF-16 bytes...) with the
    :class:`StreamError` the fast path raises for it, before reading on from a wrong place;
    and a value it cannot make an object of (a time of a day or more) with a StreamError too.

    Each such column's serializer is replaced by a copy of a subclass whose read() checks the
    length prefix, then reads as pytds does. Columns of other serializers (MAX types,
    sql_variant ...) are left to pytds; calling this twice changes nothing more."""
    session = cursor._session
    info = None if session is None else session.res_info
    if info is None:
        return
    for driver_column in info.columns:
        serializer = driver_column.serializer
        if type(serializer).__name__ not in _CHECKED_READS:
            continue
        try:
            column = _column(driver_column)
        except UnsupportedLayout:
            continue  # a subclass of the same name: not one this module read
        checked: Any = object.__new__(_checked_class(type(serializer)))
        checked.__dict__.update(serializer.__dict__)
        checked._tdsrows_column = column
        driver_column.serializer = checked


class Link:
    """One pytds cursor's current result set, at the level of packets and tokens."""

    def __init__(self, cursor: Any) -> None:
        session = cursor._session
        if session is None:
            raise UnsupportedLayout("the cursor is closed")
        self._cursor = cursor
        self._session = session
        self._reader = session._reader

    def layout(self) -> Layout:
        """The result set's columns; :class:`UnsupportedLayout` if the fast path cannot match
        what pytds would return for them."""
        session = self._session
        info = session.res_info
        if info is None or not session.more_rows:
            raise UnsupportedLayout("no result set is being read")
        if session._row_convertor is not tuple:
            raise UnsupportedLayout("the connection's row strategy does not make tuples")
        layout = Layout.of([_column(c) for c in info.columns])
        kinds = {c.kind for c in layout.columns}
        if session.tzinfo_factory is not None and kinds & _ZONED:
            raise UnsupportedLayout("the connection gives times a time zone (tzinfo_factory)")
        if Kind.TEXT in kinds and not session._tds._login.bytes_to_unicode:
            raise UnsupportedLayout("the connection returns VARCHAR as bytes")
        return layout

    # -- packets ------------------------------------------------------------------------------

    def take(self) -> bytes:
        """The unread rest of the current packet (now counted as read)."""
        reader = self._reader
        pos, size = reader._pos, reader._size
        if pos >= size:
            return b""
        reader._pos = size
        return bytes(reader._bufview[pos:size])

    def next_packet(self) -> bool:
        """Read the message's next packet; False if the current one was its last."""
        reader = self._reader
        if reader._status == 1:
            return False
        reader._read_packet()
        return True

    def give_back(self, data: bytes) -> None:
        """Put unread bytes back in front of pytds, as the rest of the current packet.

        ``data`` is the unread tail of the packet read last, so that packet's status (last of
        the message or not) still applies. It goes at the end of pytds' buffer, where the
        packet's own tail was: pytds decides whether a value continues in the next packet by
        the buffer's length, not by the packet's (``readall_fast``), so the packet must end
        where the buffer ends.
        """
        if not data:
            return
        reader = self._reader
        end = len(reader._buf)
        start = end - len(data)
        if start < _PACKET_HEADER:
            raise StreamError(f"{len(data)} unread bytes do not fit in one packet")
        reader._bufview[start:end] = data
        reader._pos, reader._size = start, end

    # -- tokens pytds handles -------------------------------------------------------------------

    def fetch_one(self) -> tuple[Any, ...] | None:
        """Let pytds read on: tokens that are not rows, then the next row or the set's end."""
        row = self._cursor.fetchone()
        return None if row is None else tuple(row)

    @property
    def in_cancel(self) -> bool:
        return bool(self._session.in_cancel)

    def send_attention(self) -> None:
        if not self._session.in_cancel:
            self._session.put_cancel()

    def process_token(self) -> int:
        """pytds reads and handles one token (e.g. the DONE that acknowledges an attention)."""
        marker = int(self._session.get_token_id())
        self._session.process_token(marker)
        return marker

    def next_message(self) -> bool:
        """At the end of a message, start reading the next one; False if not at an end."""
        if not self._reader.stream_finished():
            return False
        self._session.begin_response()
        return True

    def cancel_with_driver(self) -> None:
        """pytds' own cancel: attention if none was sent, then decode until acknowledged."""
        self._cursor.cancel()
