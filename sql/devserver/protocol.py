"""The sans-IO TDS server connection: bytes in, events out; replies framed into bytes out.

No sockets, no clock.  :meth:`ServerConnection.receive_data` takes whatever arrived;
:meth:`ServerConnection.next_event` returns the next whole request as an event (or None when more
bytes are needed).  Replies are built by :mod:`sql.devserver.engine` as token payloads and framed
here with the negotiated packet size.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from sql.devserver import packets, requests
from sql.devserver.errors import ProtocolError


class State(Enum):
    PRELOGIN = "prelogin"  # waiting for PRELOGIN
    LOGIN = "login"  # waiting for LOGIN7
    READY = "ready"  # logged in: requests and attention
    CLOSED = "closed"


@dataclass(frozen=True, slots=True)
class PreLoginReceived:
    options: dict[int, bytes]


@dataclass(frozen=True, slots=True)
class LoginReceived:
    login: requests.Login


@dataclass(frozen=True, slots=True)
class BatchReceived:
    text: str


@dataclass(frozen=True, slots=True)
class RpcReceived:
    rpc: requests.Rpc


@dataclass(frozen=True, slots=True)
class TransactionReceived:
    transaction: requests.Transaction


@dataclass(frozen=True, slots=True)
class AttentionReceived:
    pass


@dataclass(frozen=True, slots=True)
class BadRequest:
    """A whole message the server cannot serve; it answers with an ERROR token, not a drop."""

    packet_type: int
    reason: str


Event = (
    PreLoginReceived
    | LoginReceived
    | BatchReceived
    | RpcReceived
    | TransactionReceived
    | AttentionReceived
    | BadRequest
)

_PACKET_NAMES = {
    packets.SQL_BATCH: "SQL batch",
    packets.RPC: "RPC",
    packets.BULK_LOAD: "bulk load",
    packets.TRANSACTION_MANAGER: "transaction manager",
    packets.LOGIN7: "LOGIN7",
    packets.SSPI: "SSPI",
    packets.PRELOGIN: "PRELOGIN",
}


class ServerConnection:
    """One client connection's protocol state."""

    def __init__(self, *, max_message_size: int = packets.DEFAULT_MAX_MESSAGE_SIZE) -> None:
        self.state = State.PRELOGIN
        self._assembler = packets.MessageAssembler(max_message_size)
        self.packet_size = packets.DEFAULT_PACKET_SIZE

    def receive_data(self, data: bytes) -> None:
        if self.state is State.CLOSED:
            raise ProtocolError("data received on a closed connection")
        self._assembler.feed(data)

    def next_event(self) -> Event | None:
        message = self._assembler.next_message()
        if message is None:
            return None
        try:
            return self._event(message)
        except requests.RequestError as exc:
            return BadRequest(message.type, str(exc))

    def _event(self, message: packets.Message) -> Event:
        kind = message.type
        if kind == packets.ATTENTION:
            return AttentionReceived()
        if self.state is State.PRELOGIN:
            if kind != packets.PRELOGIN:
                # A client that skips PRELOGIN speaks an older TDS than the server supports.
                raise ProtocolError(f"expected PRELOGIN, got packet type {kind:#04x}")
            self.state = State.LOGIN
            return PreLoginReceived(requests.parse_prelogin(message.payload))
        if self.state is State.LOGIN:
            if kind != packets.LOGIN7:
                raise ProtocolError(f"expected LOGIN7, got packet type {kind:#04x}")
            return LoginReceived(requests.parse_login7(message.payload))
        if message.ignore:
            # The client abandoned this message mid-way; SQL Server answers with nothing.
            return BadRequest(kind, "")
        if kind == packets.SQL_BATCH:
            return BatchReceived(requests.parse_sql_batch(message.payload))
        if kind == packets.RPC:
            return RpcReceived(requests.parse_rpc(message.payload))
        if kind == packets.TRANSACTION_MANAGER:
            return TransactionReceived(requests.parse_transaction(message.payload))
        name = _PACKET_NAMES.get(kind, f"packet type {kind:#04x}")
        return BadRequest(kind, f"{name} requests are not supported by the dev server")

    def login_succeeded(self, packet_size: int) -> None:
        """Switch to the negotiated packet size (after the login reply went out in the old one)."""
        self.packet_size = packet_size
        self.state = State.READY

    def login_failed(self) -> None:
        self.state = State.CLOSED

    def packetizer(self) -> packets.Packetizer:
        """A framer for one reply message (streamed replies add payload as they go)."""
        return packets.Packetizer(self.packet_size)

    def reply(self, payload: bytes) -> bytes:
        """A whole reply message."""
        return self.packetizer().finish(payload)
