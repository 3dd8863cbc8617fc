"""The dev server's TLS over TCP, with clients that share no code with it: this package's own
TLS client (stdlib ssl: TDS 7.x with the handshake in PRELOGIN packets, login-only encryption,
TDS 8.0 strict), pytds' own TLS (pyOpenSSL), FreeTDS tsql (GnuTLS); the PRELOGIN ENCRYPTION
answers of MS-TDS 2.2.6.5; refusals as SQL Server's "Force Encryption" refuses; certificates
a client must reject; attention, backpressure and faults through TLS.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import ssl
import stat
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import OpenSSL.SSL
import pytds
import pytest
from cryptography import x509

from sql.devserver import DEV_DATABASE, DEV_PASSWORD, DEV_USER, DevServer, run_in_thread
from sql.devserver import certs as devcerts
from sql.devserver.tls import Channel, Received, ServerEncryption, Wire, negotiate, server_tls
from sql.report_data import row_values
from tests.backpressure import assert_held, fetch_elsewhere
from tests.devclient import AFTER_ATTENTION, DEFAULTS, dev_connect
from tests.polling import poll
from tests.test_sql import tdsclient, tlsclient
from tests.test_sql.attention import cancel_while_paused, fast_reader_attention
from tests.test_sql.tdsclient import ENCRYPT_NOT_SUP, ENCRYPT_OFF, ENCRYPT_ON, ENCRYPT_REQ

ROOT = Path(__file__).resolve().parents[2]
# pytds checks the host name against the certificate's CN and DNS names only (not its IP
# addresses), so it connects by name; the dev certificate's CN is the first host, localhost.
PYTDS_HOST = "localhost"
# What the report's VARCHAR column holds in row n: bytes an eavesdropper would find in clear.
CLEAR_ROW_TEXT = b"Item-0000000"
BATCH = "EXEC dbo.spGenerateData 5"


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> devcerts.CertificateVariants:
    return devcerts.write_test_certificates(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def tls_server(certs: devcerts.CertificateVariants) -> Iterator[DevServer]:
    """A dev server with a certificate; encryption up to the client."""
    cert, key = certs.server
    with run_in_thread(tls_cert=cert, tls_key=key) as server:
        yield server


@pytest.fixture
def forced_server(certs: devcerts.CertificateVariants) -> Iterator[DevServer]:
    """A dev server that requires encryption ("Force Encryption")."""
    cert, key = certs.server
    with run_in_thread(tls_cert=cert, tls_key=key, require_encryption=True) as server:
        yield server


def login(conn: tlsclient.Connection, packet_size: int = 4096) -> None:
    reply = tlsclient.login(conn, DEV_USER, DEV_PASSWORD, DEV_DATABASE, packet_size)
    assert tdsclient.error_numbers(reply.payload) == []
    assert 0xAD in reply.payload  # LOGINACK


def run_batch(client: tdsclient.RawClient, text: str = BATCH) -> bytes:
    client.sock.sendall(tdsclient.batch_message(text, client.packet_size))
    return client.read_reply().payload


def assert_report_rows(payload: bytes, count: int) -> None:
    """The report's first ``count`` rows: Id and the VARCHAR column, decoded by the test
    client's own token walker."""
    rows = [t[1] for t in tdsclient.reply_tokens(payload) if t[0] == "ROW"]
    assert len(rows) == count
    for n, row in enumerate(rows, start=1):
        assert isinstance(row, tuple)
        assert struct.unpack("<i", row[0])[0] == n
        assert row[4] == f"Item-{n:08d}".encode()


def clear_reply(server: DevServer, text: str = BATCH) -> bytes:
    """The same batch's reply on a clear connection to the same server."""
    with tdsclient.RawClient("127.0.0.1", server.port) as client:
        client.login(DEV_USER, DEV_PASSWORD, DEV_DATABASE)
        return run_batch(client, text)


def prelogin_then_closed(port: int, encryption: int) -> int | None:
    """PRELOGIN in clear; the server's ENCRYPTION answer, after asserting that the server
    closed the connection behind it."""
    with tdsclient.RawClient("127.0.0.1", port) as client:
        client.sock.sendall(tdsclient.prelogin_message(encryption))
        value = tdsclient.prelogin_encryption(client.read_reply().payload)
        assert client.sock.recv(1) == b"", "the server kept the connection open"
    return value


def pytds_connect(port: int, **options: Any) -> Any:
    """tests.devclient.dev_connect, by name (:data:`PYTDS_HOST`)."""
    return pytds.connect(dsn=PYTDS_HOST, port=port, **{**DEFAULTS, **options})


# -- PRELOGIN's ENCRYPTION, MS-TDS 2.2.6.5 -----------------------------------------------------

OFF, REQ, NOT_SUP = ServerEncryption.OFF, ServerEncryption.REQ, ServerEncryption.NOT_SUP


@pytest.mark.parametrize(
    ("client", "server", "reply", "channel"),
    [
        # The specification's table, row by row (server set to ENCRYPT_OFF / ENCRYPT_ON, which
        # is "Force Encryption" / ENCRYPT_NOT_SUP, no certificate).
        (ENCRYPT_OFF, OFF, ENCRYPT_OFF, Channel.LOGIN_ONLY),
        (ENCRYPT_OFF, REQ, ENCRYPT_REQ, Channel.FULL),
        (ENCRYPT_OFF, NOT_SUP, ENCRYPT_NOT_SUP, Channel.CLEAR),
        (ENCRYPT_ON, OFF, ENCRYPT_ON, Channel.FULL),
        (ENCRYPT_ON, REQ, ENCRYPT_ON, Channel.FULL),
        (ENCRYPT_ON, NOT_SUP, ENCRYPT_NOT_SUP, Channel.REFUSE),
        (ENCRYPT_NOT_SUP, OFF, ENCRYPT_NOT_SUP, Channel.CLEAR),
        (ENCRYPT_NOT_SUP, REQ, ENCRYPT_REQ, Channel.REFUSE),
        (ENCRYPT_NOT_SUP, NOT_SUP, ENCRYPT_NOT_SUP, Channel.CLEAR),
        (ENCRYPT_REQ, OFF, ENCRYPT_ON, Channel.FULL),
        (ENCRYPT_REQ, REQ, ENCRYPT_ON, Channel.FULL),
        (ENCRYPT_REQ, NOT_SUP, ENCRYPT_NOT_SUP, Channel.REFUSE),
        # No ENCRYPTION option: a client that cannot encrypt.
        (None, OFF, ENCRYPT_NOT_SUP, Channel.CLEAR),
        (None, REQ, ENCRYPT_REQ, Channel.REFUSE),
        # ENCRYPT_CLIENT_CERT: the table's answer, but no certificate-based login here.
        (0x81, OFF, ENCRYPT_ON, Channel.REFUSE),
        (0x82, OFF, ENCRYPT_REQ, Channel.REFUSE),
        # Not a value MS-TDS defines.
        (0x04, OFF, ENCRYPT_NOT_SUP, Channel.REFUSE),
    ],
)
def test_prelogin_encryption_answers(
    client: int | None, server: ServerEncryption, reply: int, channel: Channel
) -> None:
    negotiation = negotiate(client, server)
    assert (negotiation.reply, negotiation.channel) == (reply, channel)
    assert bool(negotiation.why) == (channel is Channel.REFUSE)


@pytest.mark.parametrize("client", [ENCRYPT_OFF, ENCRYPT_ON, ENCRYPT_NOT_SUP, 0x04, None])
@pytest.mark.parametrize("server", list(ServerEncryption))
def test_in_tds8_the_clients_value_is_ignored(client: int | None, server: ServerEncryption) -> None:
    assert negotiate(client, server, tls_first=True) == negotiate(0, NOT_SUP, tls_first=True)
    assert negotiate(client, server, tls_first=True).channel is Channel.CLEAR


# -- the sans-IO wire, without a socket ----------------------------------------------------------


def unwrap_prelogin(data: bytes) -> bytes:
    """The payload of a whole PRELOGIN message, checking its packets' framing."""
    out = b""
    while data:
        kind, status, length = struct.unpack_from(">BBH", data, 0)
        assert kind == 0x12
        out += data[8:length]
        data = data[length:]
        assert bool(status & 0x01) == (not data)  # EOM on the last packet only
    return out


def test_the_wire_frames_a_tds7_handshake_and_ends_login_only_tls(
    certs: devcerts.CertificateVariants,
) -> None:
    cert, key = certs.server
    wire = Wire(server_tls(cert, key))
    prelogin = tdsclient.prelogin_message(ENCRYPT_OFF)
    assert wire.receive(prelogin) == Received(data=prelogin)  # TDS in clear
    wire.start_handshake(login_only=True)
    assert wire.send(b"the PRELOGIN reply") == b"the PRELOGIN reply"  # still clear

    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    client = tlsclient.context(str(certs.ca)).wrap_bio(
        incoming, outgoing, server_hostname="localhost"
    )
    flights = 0
    while True:
        try:
            client.do_handshake()
            break
        except ssl.SSLWantReadError:
            received = wire.receive(tdsclient.packets(0x12, outgoing.read()))
            incoming.write(unwrap_prelogin(received.reply))
            flights += 1
    assert (flights, received.handshake_done, wire.tls_version) == (2, True, "TLSv1.2")

    login = tdsclient.login_message(DEV_USER, DEV_PASSWORD)
    client.write(login)
    assert wire.receive(outgoing.read()).data == login
    assert wire.after_login() == b""
    assert wire.send(b"the login reply") == b"the login reply"  # clear again
    assert wire.receive(b"a clear request").data == b"a clear request"


# -- TDS 7.x: the handshake in PRELOGIN packets --------------------------------------------------


@pytest.mark.parametrize("encryption", [ENCRYPT_ON, ENCRYPT_REQ])
def test_tds7_encrypts_the_whole_connection(
    tls_server: DevServer, certs: devcerts.CertificateVariants, encryption: int
) -> None:
    with tlsclient.connect_tds7(
        tls_server.port, cafile=str(certs.ca), encryption=encryption, record=True
    ) as conn:
        assert conn.encryption == ENCRYPT_ON
        assert conn.tls is not None
        assert conn.tls.ssl.version() == "TLSv1.2"  # TDS 7.x carries TLS 1.2, as SQL Server
        login(conn)
        payload = run_batch(conn.client)
        assert_report_rows(payload, 5)
        sent, received = bytes(conn.tls.sent), bytes(conn.tls.received)
    assert payload == clear_reply(tls_server)  # the same bytes, decrypted
    assert tdsclient.obfuscate(DEV_PASSWORD) not in sent
    assert CLEAR_ROW_TEXT not in received
    assert tls_server.stats.tls_handshakes == 1


def test_tds7_login_only_encrypts_the_login7_alone(
    tls_server: DevServer, certs: devcerts.CertificateVariants
) -> None:
    """ENCRYPT_OFF to a server with a certificate: ENCRYPT_OFF back, the LOGIN7 in TLS, the
    login reply and everything after it in clear (pytds' enc_login_only, FreeTDS "request")."""
    with tlsclient.connect_tds7(
        tls_server.port, cafile=str(certs.ca), encryption=ENCRYPT_OFF, record=True
    ) as conn:
        assert conn.encryption == ENCRYPT_OFF
        assert conn.tls is not None
        login(conn)
        assert_report_rows(run_batch(conn.client), 5)
        sent, received = bytes(conn.tls.sent), bytes(conn.tls.received)
    assert tdsclient.obfuscate(DEV_PASSWORD) not in sent
    assert CLEAR_ROW_TEXT in received
    assert tls_server.stats.tls_handshakes == 1


def test_tds7_a_client_that_will_not_encrypt_gets_clear_tds(tls_server: DevServer) -> None:
    with tlsclient.connect_tds7(tls_server.port, cafile=None, encryption=ENCRYPT_NOT_SUP) as conn:
        assert conn.encryption == ENCRYPT_NOT_SUP
        assert conn.tls is None
        login(conn)
        assert_report_rows(run_batch(conn.client), 5)
    assert tls_server.stats.tls_handshakes == 0


def test_tds7_offers_no_tls_1_3(tls_server: DevServer, certs: devcerts.CertificateVariants) -> None:
    ctx = tlsclient.context(str(certs.ca))
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    with tdsclient.RawClient("127.0.0.1", tls_server.port) as client:
        tls = tlsclient.TlsSocket(client.sock, ctx, "localhost", wrapped=True)
        client.sock.sendall(tdsclient.prelogin_message(ENCRYPT_ON))
        client.read_reply()
        with pytest.raises(ssl.SSLError):
            tls.handshake()
    poll(lambda: tls_server.stats.tls_failures == 1, what="the failed handshake counted")


def test_tds7_handshake_records_outside_prelogin_packets_close_the_connection(
    tls_server: DevServer, certs: devcerts.CertificateVariants
) -> None:
    """MS-TDS 3.3.5.2: a TLS negotiation packet is a PRELOGIN packet; anything else closes."""
    with tdsclient.RawClient("127.0.0.1", tls_server.port) as client:
        tls = tlsclient.TlsSocket(
            client.sock, tlsclient.context(str(certs.ca)), "localhost", wrapped=False
        )
        client.sock.sendall(tdsclient.prelogin_message(ENCRYPT_ON))
        assert tdsclient.prelogin_encryption(client.read_reply().payload) == ENCRYPT_ON
        with pytest.raises((ConnectionError, ssl.SSLError)):
            tls.handshake()


# -- TDS 8.0 strict ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "prelogin_encryption",
    [ENCRYPT_NOT_SUP, ENCRYPT_ON, 0x04],
    ids=["tedious-not-sup", "on", "go-mssqldb-strict"],
)
def test_tds8_tls_first_then_all_of_tds_inside(
    tls_server: DevServer, certs: devcerts.CertificateVariants, prelogin_encryption: int
) -> None:
    with tlsclient.connect_tds8(
        tls_server.port,
        cafile=str(certs.ca),
        prelogin_encryption=prelogin_encryption,
        record=True,
    ) as conn:
        assert conn.tls is not None
        assert conn.tls.ssl.selected_alpn_protocol() == "tds/8.0"
        assert conn.tls.ssl.version() == "TLSv1.3"
        assert conn.encryption == ENCRYPT_NOT_SUP  # nothing more to negotiate
        login(conn)
        payload = run_batch(conn.client)
        assert_report_rows(payload, 5)
        sent, received = bytes(conn.tls.sent), bytes(conn.tls.received)
    assert payload == clear_reply(tls_server)
    assert tdsclient.obfuscate(DEV_PASSWORD) not in sent
    assert CLEAR_ROW_TEXT not in received
    assert tls_server.stats.tls_handshakes == 1


@pytest.mark.parametrize(
    ("alpn", "maximum"),
    [([], ssl.TLSVersion.MAXIMUM_SUPPORTED), (None, ssl.TLSVersion.TLSv1_2)],
    ids=["no-alpn", "tls-1.2"],
)
def test_tds8_without_alpn_or_over_tls_1_2(
    forced_server: DevServer,
    certs: devcerts.CertificateVariants,
    alpn: list[str] | None,
    maximum: ssl.TLSVersion,
) -> None:
    """MS-TDS 1.7: without ALPN the server assumes TDS 8.0; TLS 1.2 is TDS 8.0's minimum.  A
    server that requires encryption takes TDS 8.0 of course."""
    with tlsclient.connect_tds8(
        forced_server.port, cafile=str(certs.ca), alpn=alpn, maximum=maximum
    ) as conn:
        assert conn.tls is not None
        assert conn.tls.ssl.selected_alpn_protocol() == (None if alpn == [] else "tds/8.0")
        login(conn)
        assert_report_rows(run_batch(conn.client), 5)


# -- refusals ----------------------------------------------------------------------------------


def test_forced_encryption_refuses_a_client_that_will_not_encrypt(
    forced_server: DevServer,
) -> None:
    assert prelogin_then_closed(forced_server.port, ENCRYPT_NOT_SUP) == ENCRYPT_REQ
    assert forced_server.stats.encryption_refused == 1
    with pytest.raises(pytds.Error, match=r"encryption .*required by server"):
        pytds_connect(forced_server.port)
    poll(lambda: forced_server.stats.encryption_refused == 2, what="the refusal counted")
    assert forced_server.stats.logins_failed == 0  # refused before any login


def test_forced_encryption_turns_login_only_into_full(
    forced_server: DevServer, certs: devcerts.CertificateVariants
) -> None:
    with tlsclient.connect_tds7(
        forced_server.port, cafile=str(certs.ca), encryption=ENCRYPT_OFF, record=True
    ) as conn:
        assert conn.encryption == ENCRYPT_REQ
        login(conn)
        assert_report_rows(run_batch(conn.client), 5)
        assert conn.tls is not None
        assert CLEAR_ROW_TEXT not in conn.tls.received
    with (
        pytds_connect(forced_server.port, cafile=str(certs.ca), enc_login_only=True) as c,
        c.cursor() as cur,
    ):
        cur.callproc("dbo.spGenerateData", (3,))
        assert [tuple(r) for r in cur.fetchall()] == [row_values(n) for n in (1, 2, 3)]
    assert forced_server.stats.tls_handshakes == 2


@pytest.mark.parametrize("encryption", [ENCRYPT_ON, ENCRYPT_REQ])
def test_no_certificate_refuses_a_client_that_must_encrypt(
    server: DevServer, certs: devcerts.CertificateVariants, encryption: int
) -> None:
    assert prelogin_then_closed(server.port, encryption) == ENCRYPT_NOT_SUP
    assert server.stats.encryption_refused == 1
    with pytest.raises(pytds.Error, match="not supported by server"):
        pytds_connect(server.port, cafile=str(certs.ca))
    poll(lambda: server.stats.encryption_refused == 2, what="the refusal counted")


def test_no_certificate_refuses_a_tds8_client(
    server: DevServer, certs: devcerts.CertificateVariants
) -> None:
    with pytest.raises((ConnectionError, ssl.SSLError)):
        tlsclient.connect_tds8(server.port, cafile=str(certs.ca))
    poll(lambda: server.stats.encryption_refused == 1, what="the refusal counted")
    assert server.stats.tls_handshakes == 0


def test_no_certificate_login_only_asked_is_clear(server: DevServer) -> None:
    """ENCRYPT_OFF to a server without a certificate: ENCRYPT_NOT_SUP, no encryption at all."""
    with tlsclient.connect_tds7(server.port, cafile=None, encryption=ENCRYPT_OFF) as conn:
        assert (conn.encryption, conn.tls) == (ENCRYPT_NOT_SUP, None)
        login(conn)
        assert_report_rows(run_batch(conn.client), 5)


# -- certificates a client must reject -----------------------------------------------------------

# What OpenSSL's verification says for each, as Python reports it.
REJECTED = {
    "expired": "certificate has expired",
    "wrong_host": "Hostname mismatch",
    "unknown_ca": "unable to get local issuer certificate",
    "self_signed": "self-signed certificate",
}


@pytest.mark.parametrize("variant", list(REJECTED))
@pytest.mark.parametrize("mode", ["tds7", "tds8"])
def test_the_client_rejects_a_bad_certificate(
    certs: devcerts.CertificateVariants, variant: str, mode: str
) -> None:
    cert, key = getattr(certs, variant)
    connect = tlsclient.connect_tds7 if mode == "tds7" else tlsclient.connect_tds8
    with run_in_thread(tls_cert=cert, tls_key=key) as server:
        with pytest.raises(ssl.SSLCertVerificationError) as info:
            connect(server.port, cafile=str(certs.ca))
        assert REJECTED[variant] in info.value.verify_message
        poll(lambda: server.stats.tls_failures == 1, what="the failed handshake counted")
        assert server.stats.tls_handshakes == 0


# pytds reads the subjectAltName with pyOpenSSL's X509.get_extension, deprecated (and gone in
# pyOpenSSL 26.2): it only runs when the CN does not match, i.e. for the wrong host.
@pytest.mark.filterwarnings("ignore:This API is deprecated:DeprecationWarning")
@pytest.mark.filterwarnings("ignore:X509Extension support in pyOpenSSL:DeprecationWarning")
@pytest.mark.parametrize("variant", list(REJECTED))
def test_pytds_rejects_a_bad_certificate(certs: devcerts.CertificateVariants, variant: str) -> None:
    cert, key = getattr(certs, variant)
    with run_in_thread(tls_cert=cert, tls_key=key) as server:
        if variant == "wrong_host":
            # pytds checks the name itself, after a handshake that verified the chain.
            with pytest.raises(pytds.Error, match="does not match host name 'localhost'"):
                pytds_connect(server.port, cafile=str(certs.ca))
        else:
            with pytest.raises(OpenSSL.SSL.Error, match="certificate verify failed"):
                pytds_connect(server.port, cafile=str(certs.ca))
            poll(lambda: server.stats.tls_failures == 1, what="the failed handshake counted")


# -- pytds' own TLS --------------------------------------------------------------------------


@pytest.mark.parametrize("login_only", [False, True], ids=["full", "login-only"])
def test_pytds_over_tls(
    tls_server: DevServer, certs: devcerts.CertificateVariants, login_only: bool
) -> None:
    with (
        pytds_connect(tls_server.port, cafile=str(certs.ca), enc_login_only=login_only) as conn,
        conn.cursor() as cur,
    ):
        cur.callproc("dbo.spGenerateData", (300,))
        assert [tuple(r) for r in cur.fetchall()] == [row_values(n) for n in range(1, 301)]
        cur.execute("EXEC dbo.spGenerateData 2")
        assert len(cur.fetchall()) == 2
    assert tls_server.stats.tls_handshakes == 1


# -- streaming through TLS: attention, backpressure, faults --------------------------------------


# The fast reader's bound, measured from its own reading of rows_sent to the server's noticing:
# 2-3 chunks over TLS as in clear, but the TLS client shares the server's process and switches
# threads on every record (ssl releases the GIL), so under a loaded machine its moment of
# reading and its moment of sending drift further apart than in clear.  A server that did not
# look at the socket while streaming would produce hundreds of thousands of rows more.
TLS_AFTER_ATTENTION = 2 * AFTER_ATTENTION


@pytest.mark.parametrize("mode", ["tds7", "tds8"])
def test_a_fast_readers_attention_over_tls(
    tls_server: DevServer, certs: devcerts.CertificateVariants, mode: str
) -> None:
    connect = tlsclient.connect_tds7 if mode == "tds7" else tlsclient.connect_tds8
    with connect(tls_server.port, cafile=str(certs.ca)) as conn:
        login(conn, packet_size=32767)
        fast_reader_attention(conn.client, tls_server, bound=TLS_AFTER_ATTENTION)
    assert tls_server.stats.attentions_answered == 1


def test_a_paused_pytds_cancel_over_tls(
    tls_server: DevServer, certs: devcerts.CertificateVariants
) -> None:
    with pytds_connect(tls_server.port, cafile=str(certs.ca), timeout=30) as conn:
        cancel_while_paused(tls_server, conn)


# Rows the socket buffers between the dev server and a reader that holds off can take (as in
# test_pytds: ~54k measured; TLS adds the client's 64 KiB read-ahead at most).
HELD_ROWS_BOUND = 120_000
WITNESS_ROWS = 20_000


def test_a_paused_tls_reader_pauses_the_server(
    tls_server: DevServer, certs: devcerts.CertificateVariants
) -> None:
    with (
        pytds_connect(tls_server.port, cafile=str(certs.ca), timeout=60) as conn,
        conn.cursor() as cur,
    ):
        cur.callproc("dbo.spGenerateData", (1_000_000,))
        cur.fetchone()  # then stop reading
        poll(lambda: tls_server.stats.backpressure_pauses > 0, what="production to wait for us")
        fetch_elsewhere(tls_server.port, WITNESS_ROWS)  # a clear client, same server
        held = assert_held(tls_server.stats, bound=HELD_ROWS_BOUND, witnessed=WITNESS_ROWS)
        # Reading more rows than were sent for us makes the server produce again.
        for _ in range(held + 1):
            cur.fetchone()
        assert tls_server.stats.rows_sent - WITNESS_ROWS > held
        cur.cancel()
        cur.callproc("dbo.spGenerateData", (2,))
        assert len(cur.fetchall()) == 2


def test_a_mid_stream_error_over_tls(
    tls_server: DevServer, certs: devcerts.CertificateVariants
) -> None:
    tls_server.faults.error_after_rows = 40
    with (
        pytds_connect(tls_server.port, cafile=str(certs.ca)) as conn,
        conn.cursor() as cur,
    ):
        cur.callproc("dbo.spGenerateData", (1000,))
        with pytest.raises(pytds.OperationalError) as info:
            cur.fetchall()
        assert info.value.msg_no == 8134
        tls_server.faults.error_after_rows = None
        cur.callproc("dbo.spGenerateData", (3,))
        assert len(cur.fetchall()) == 3


# -- FreeTDS -----------------------------------------------------------------------------------

TSQL = shutil.which("tsql")


def run_tsql(server: DevServer, tmp_path: Path, encryption: str, ca: Path) -> str:
    """tsql with a freetds.conf of its own ([global]: encryption, the CA to trust)."""
    assert TSQL is not None, "FreeTDS tsql is not installed (make system-deps installs freetds-bin)"
    conf = tmp_path / "freetds.conf"
    conf.write_text(
        f"[global]\n\ttds version = 7.4\n\tencryption = {encryption}\n\tca file = {ca}\n"
    )
    result = subprocess.run(
        [TSQL, "-H", PYTDS_HOST, "-p", str(server.port), "-U", DEV_USER, "-P", DEV_PASSWORD,
         "-D", DEV_DATABASE, "-o", "q"],
        input="EXEC dbo.spGenerateData @RowCount = 3\ngo\nexit\n",
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={"LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "FREETDSCONF": str(conf)},
    )  # fmt: skip
    return result.stdout + result.stderr


@pytest.mark.parametrize("encryption", ["require", "request"])
def test_freetds_tsql_over_tls(
    tls_server: DevServer, certs: devcerts.CertificateVariants, tmp_path: Path, encryption: str
) -> None:
    """FreeTDS "require" sends ENCRYPT_ON (full encryption), "request" ENCRYPT_OFF (login
    only, the server having a certificate)."""
    out = run_tsql(tls_server, tmp_path, encryption, certs.ca)
    assert "Item-00000003" in out, out
    assert tls_server.stats.tls_handshakes == 1


def test_freetds_tsql_rejects_an_unknown_ca(
    certs: devcerts.CertificateVariants, tmp_path: Path
) -> None:
    cert, key = certs.unknown_ca
    with run_in_thread(tls_cert=cert, tls_key=key) as server:
        out = run_tsql(server, tmp_path, "require", certs.ca)
        assert "Item-" not in out
        poll(lambda: server.stats.tls_failures == 1, what="the failed handshake counted")


# -- the commands --------------------------------------------------------------------------


def test_the_command_serves_tls_and_refuses_clear_clients(
    certs: devcerts.CertificateVariants,
) -> None:
    cert, key = certs.server
    proc = subprocess.Popen(
        [sys.executable, "-m", "sql.devserver", "--host", "127.0.0.1", "--port", "0",
         "--tls-cert", str(cert), "--tls-key", str(key), "--require-encryption"],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        stderr = proc.stderr
        assert stderr is not None

        def listening() -> tuple[int, str] | None:
            line = stderr.readline()
            assert line, "the dev server exited before listening"
            m = re.search(r"on 127\.0\.0\.1:(\d+) \(.*, (encryption required)\)", line)
            return (int(m[1]), m[2]) if m else None

        port, _ = poll(listening, what="the dev server's listening line")
        with (
            pytds_connect(port, cafile=str(certs.ca)) as conn,
            conn.cursor() as cur,
        ):
            cur.callproc("spGenerateData", (3,))
            assert [tuple(r) for r in cur.fetchall()] == [row_values(n) for n in (1, 2, 3)]
        with pytest.raises(pytds.Error, match="required by server"):
            dev_connect(port)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stderr is not None:
            proc.stderr.close()


def test_the_command_exits_2_on_a_key_that_is_not_the_certificates(
    certs: devcerts.CertificateVariants,
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sql.devserver", "--port", "0",
         "--tls-cert", str(certs.server[0]), "--tls-key", str(certs.expired[1])],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert "cannot load the TLS certificate" in result.stderr


def test_the_certs_command_writes_a_ca_and_a_server_certificate(tmp_path: Path) -> None:
    out = tmp_path / "tls"
    result = subprocess.run(
        [sys.executable, "-m", "sql.devserver.certs", "--out", str(out),
         "--host", "db.example.test", "--host", "10.1.2.3"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == ["ca.pem", "server-key.pem", "server.pem"]
    written = [str(out / n) for n in ("ca.pem", "server.pem", "server-key.pem")]
    assert result.stdout.split() == written
    assert stat.S_IMODE(os.stat(out / "server-key.pem").st_mode) == 0o600
    ca = x509.load_pem_x509_certificate((out / "ca.pem").read_bytes())
    server = x509.load_pem_x509_certificate((out / "server.pem").read_bytes())
    server.verify_directly_issued_by(ca)
    names = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["db.example.test"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["10.1.2.3"]
    # The pair loads as a server's.
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(out / "server.pem", out / "server-key.pem")
    subprocess.run(
        [sys.executable, "-m", "sql.devserver.certs", "--out", str(out), "--keep-ca-key"],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
        check=True,
    )
    assert stat.S_IMODE(os.stat(out / "ca-key.pem").st_mode) == 0o600


def test_dev_certificates_verify_for_localhost_and_127_0_0_1(
    tls_server: DevServer, certs: devcerts.CertificateVariants
) -> None:
    """The default hosts, checked as Python's ssl checks them (IP addresses included)."""
    for name in ("localhost", "127.0.0.1"):
        with tlsclient.connect_tds8(
            tls_server.port, cafile=str(certs.ca), server_hostname=name
        ) as conn:
            login(conn)


def test_a_socket_that_sends_garbage_after_the_client_hello_is_closed(
    tls_server: DevServer,
) -> None:
    with socket.create_connection(("127.0.0.1", tls_server.port), timeout=30) as sock:
        sock.sendall(b"\x16\x03\x01\x00\x05hello")
        assert sock.recv(1 << 16)[:1] == b"\x15"  # a TLS alert
        assert sock.recv(1 << 16) == b""
    poll(lambda: tls_server.stats.tls_failures == 1, what="the failed handshake counted")
