"""Encrypted connections to the database, over TCP against the dev server with certificates:
each mode with a valid chain (exports, the pool's reuse, a cancel), each certificate the API
must refuse and each mode mismatch answered with words a person can act on, a certificate fixed
without a restart, and a relay on the wire that finds neither the password nor a row."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from sql.devserver import DEV_PASSWORD, DevServer
from sql.devserver.certs import WRONG_HOST, CertificateVariants, write_test_certificates
from tests.polling import apoll
from tests.test_server.conftest import StartApi
from tests.test_server.readers import data_rows, is_valid_zip, openpyxl_sheets

ROWS = 3000


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertificateVariants:
    return write_test_certificates(tmp_path_factory.mktemp("certs"))


@contextlib.asynccontextmanager
async def database(
    pair: tuple[Path, Path] | None, *, port: int = 0, require: bool = False
) -> AsyncIterator[DevServer]:
    """A dev server with this certificate (None: none) on the test's event loop."""
    cert, key = pair if pair is not None else (None, None)
    server = DevServer(
        host="127.0.0.1", port=port, tls_cert=cert, tls_key=key, require_encryption=require
    )
    async with server:
        yield server


async def export(api: Any, http: aiohttp.ClientSession, rows: int = ROWS) -> tuple[int, Any]:
    async with http.get(f"http://127.0.0.1:{api.port}/export/report?rowCount={rows}") as response:
        if response.status != 200:
            return response.status, (await response.json())["error"]
        return 200, await response.read()


def encrypted(mode: str, certs: CertificateVariants, **more: object) -> dict[str, object]:
    return {"encrypt": mode, "ca_file": str(certs.ca), **more}


@pytest.mark.parametrize("mode", ["on", "strict"])
async def test_an_export_over_each_mode_with_a_valid_chain(
    start_api: StartApi, http: aiohttp.ClientSession, certs: CertificateVariants, mode: str
) -> None:
    async with database(certs.server) as db:
        api = await start_api(db_port=db.port, db=encrypted(mode, certs), pool_min=0)
        for _ in range(2):  # the second export reuses the pooled, encrypted connection
            status, body = await export(api, http)
            assert status == 200, body
            assert len(list(data_rows(openpyxl_sheets(body)))) == ROWS
        assert db.stats.tls_handshakes == 1
        assert db.stats.connections_total == 1
        async with http.get(f"http://127.0.0.1:{api.port}/readyz") as response:
            assert response.status == 200
            assert "warnings" not in await response.json()


async def test_the_fast_row_paths_and_pytds_read_the_same_rows_over_tls(
    start_api: StartApi, http: aiohttp.ClientSession, certs: CertificateVariants
) -> None:
    async with database(certs.server) as db:
        bodies = []
        for fast, compiled in ((True, True), (True, False), (False, False)):
            api = await start_api(
                db_port=db.port,
                db=encrypted("on", certs),
                fast_rows=fast,
                compiled_rows=compiled,
            )
            status, body = await export(api, http, 20_000)
            assert status == 200, body
            bodies.append(list(data_rows(openpyxl_sheets(body))))
        assert bodies[0] == bodies[1] == bodies[2]
        assert len(bodies[0]) == 20_000


async def test_a_cancel_over_tls_stops_the_query_and_keeps_the_connection(
    start_api: StartApi, http: aiohttp.ClientSession, certs: CertificateVariants
) -> None:
    async with database(certs.server) as db:
        api = await start_api(db_port=db.port, db=encrypted("on", certs), pool_min=0)
        url = f"http://127.0.0.1:{api.port}/export/report?rowCount=1000000"
        async with http.get(url) as response:
            assert response.status == 200
            await response.content.readexactly(64 * 1024)
        # The client went away: the API's worker sends an attention, encrypted like any packet.
        await apoll(lambda: db.stats.attentions_answered >= 1, what="the attention's answer")
        await apoll(lambda: api.active_exports == 0, what="the export to end")
        assert db.stats.rows_sent < 1_000_000
        status, body = await export(api, http)
        assert status == 200, body
        assert db.stats.connections_total == 1  # the cancelled connection was reused


# (certificate variant, extra settings, words of the answer)
REFUSED = [
    ("expired", {}, "the database's certificate is not trusted: it has expired"),
    ("wrong_host", {}, "the database's certificate is not trusted: it is for another host"),
    ("unknown_ca", {}, "the database's certificate is not trusted: it is not signed by a CA"),
    ("self_signed", {}, "the database's certificate is not trusted: it is self-signed"),
]


@pytest.mark.parametrize(("variant", "extra", "words"), REFUSED, ids=[r[0] for r in REFUSED])
@pytest.mark.parametrize("mode", ["on", "strict"])
async def test_a_certificate_that_does_not_verify_is_a_503_saying_why(
    start_api: StartApi,
    http: aiohttp.ClientSession,
    certs: CertificateVariants,
    variant: str,
    extra: dict[str, object],
    words: str,
    mode: str,
) -> None:
    async with database(getattr(certs, variant)) as db:
        api = await start_api(db_port=db.port, db=encrypted(mode, certs, **extra), pool_min=0)
        status, error = await export(api, http)
        assert status == 503
        assert error["code"] == "DATABASE_UNAVAILABLE"
        assert error["message"].startswith(words), error["message"]
        assert "SSL" not in error["message"]  # no driver or library words
        async with http.get(f"http://127.0.0.1:{api.port}/readyz") as response:
            assert response.status == 503
            assert (await response.json())["error"]["message"].startswith(words)


@pytest.mark.parametrize(
    ("variant", "extra"),
    [
        ("wrong_host", {"host_name_in_certificate": WRONG_HOST}),
        ("self_signed", {"trust_server_certificate": True}),
        ("unknown_ca", {"trust_server_certificate": True}),
    ],
)
async def test_the_settings_for_another_name_or_an_unverifiable_certificate(
    start_api: StartApi,
    http: aiohttp.ClientSession,
    certs: CertificateVariants,
    variant: str,
    extra: dict[str, object],
) -> None:
    async with database(getattr(certs, variant)) as db:
        api = await start_api(db_port=db.port, db=encrypted("on", certs, **extra))
        status, body = await export(api, http)
        assert status == 200, body
        async with http.get(f"http://127.0.0.1:{api.port}/readyz") as response:
            warnings = (await response.json()).get("warnings", [])
        assert bool(warnings) == bool(extra.get("trust_server_certificate"))


@pytest.mark.parametrize(
    ("server_cert", "require", "mode", "words"),
    [
        (False, False, "on", "the database does not offer encryption"),
        (False, False, "strict", "the database closed the connection during the TLS handshake"),
        (True, True, "off", "the database requires encryption (connect with --mssql-encrypt on)"),
    ],
)
async def test_a_mode_mismatch_is_a_503_saying_what_to_change(
    start_api: StartApi,
    http: aiohttp.ClientSession,
    certs: CertificateVariants,
    server_cert: bool,
    require: bool,
    mode: str,
    words: str,
) -> None:
    async with database(certs.server if server_cert else None, require=require) as db:
        api = await start_api(db_port=db.port, db=encrypted(mode, certs), pool_min=0)
        status, error = await export(api, http)
        assert status == 503
        assert error["message"].startswith(words), error["message"]


async def test_a_certificate_fixed_on_the_server_is_used_without_a_restart(
    start_api: StartApi, http: aiohttp.ClientSession, certs: CertificateVariants
) -> None:
    async with database(certs.expired) as db:
        port = db.port
        api = await start_api(db_port=port, db=encrypted("on", certs), pool_min=0)
        status, _ = await export(api, http)
        assert status == 503
    async with database(certs.server, port=port):
        status, body = await export(api, http)
        assert status == 200
        assert is_valid_zip(body)


class Relay:
    """A TCP relay between the API and the database that keeps every byte it carries."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.seen = bytearray()
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def __aenter__(self) -> Relay:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for writer in self._writers:
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        self._writers += [writer, up_writer]
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.ensure_future(self._pump(source, sink))
            self._tasks.add(task)

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await source.read(65536):
                self.seen += data
                sink.write(data)
                await sink.drain()
        sink.close()


def secrets_on_the_wire(seen: bytes) -> list[str]:
    """Which of the password and the exported values an eavesdropper can read."""
    found = []
    obfuscated = bytes(
        (((b << 4) & 0xF0) | (b >> 4)) ^ 0xA5 for b in DEV_PASSWORD.encode("utf-16-le")
    )
    if obfuscated in seen or DEV_PASSWORD.encode("utf-16-le") in seen:
        found.append("the password")
    if b"Item-00000042" in seen:  # row 42's ColVarchar
        found.append("a VARCHAR value")
    if "Kraków".encode("utf-16-le") in seen:
        found.append("an NVARCHAR value")
    return found


@pytest.mark.parametrize(("mode", "readable"), [("off", True), ("on", False), ("strict", False)])
async def test_an_eavesdropper_reads_neither_the_password_nor_a_row_when_encrypted(
    start_api: StartApi,
    http: aiohttp.ClientSession,
    certs: CertificateVariants,
    mode: str,
    readable: bool,
) -> None:
    async with database(certs.server) as db, Relay(db.port) as relay:
        api = await start_api(
            db_port=relay.port, db=encrypted(mode, certs, host_name_in_certificate="localhost")
        )
        status, body = await export(api, http, 100)
        assert status == 200, body
    found = secrets_on_the_wire(bytes(relay.seen))
    if readable:  # the relay does see them in clear: the check can find what it looks for
        assert found == ["the password", "a VARCHAR value", "an NVARCHAR value"]
    else:
        assert found == []
