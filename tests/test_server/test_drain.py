"""SIGTERM's drain as a client on a kept-alive connection sees it: every request is answered
at once (503 SHUTTING_DOWN, the health endpoints as ever) and its connection closed after,
while the exports that were running finish."""

from __future__ import annotations

import asyncio
import json

import aiohttp

from sql.devserver import DevServer
from tests import rawhttp
from tests.polling import apoll
from tests.rawhttp import RawClients
from tests.test_server.conftest import StartApi, url
from tests.test_server.readers import is_valid_zip


async def test_requests_on_kept_alive_connections_are_answered_at_once_while_draining(
    devserver: DevServer, start_api: StartApi, http: aiohttp.ClientSession
) -> None:
    # An export that runs for seconds keeps the API draining (grace far longer than that).
    devserver.faults.row_delay = 0.5
    devserver.faults.row_delay_every = 2_000
    api = await start_api(retry_after_s=6)
    async with RawClients() as raw:
        connections = [await raw.connect(api.port) for _ in range(4)]
        for reader, writer in connections:  # each kept alive after a first answer
            writer.write(rawhttp.request("GET", "/healthz"))
            status, headers, _ = await rawhttp.read_response(reader)
            assert status == "HTTP/1.1 200 OK"
            assert headers.get("connection", "keep-alive").lower() != "close"
        async with http.get(url(api, "/export/report?rowCount=10000")) as running:
            assert running.status == 200
            closing = asyncio.create_task(api.close(grace_s=60))
            await apoll(lambda: api.server is not None and api.server.draining, what="the drain")
            asked = zip(
                connections,
                [
                    "/export/report?rowCount=10",
                    "/reports",
                    "/readyz",
                    "/healthz",
                ],
                strict=True,
            )
            answers = {}
            for (reader, writer), path in asked:
                writer.write(rawhttp.request("GET", path, "X-Request-ID: drain-1"))
                async with asyncio.timeout(5):  # at once, not at the end of the drain
                    answers[path] = await rawhttp.read_response(reader)
                    assert await reader.read() == b"", f"{path}: the connection closes after"
            for path in ("/export/report?rowCount=10", "/reports", "/readyz"):
                status, headers, body = answers[path]
                assert status.startswith("HTTP/1.1 503"), (path, status)
                assert json.loads(body)["error"]["code"] == "SHUTTING_DOWN", path
                assert headers["retry-after"] == "6", path
                assert headers["connection"].lower() == "close", path
                assert headers["x-request-id"] == "drain-1", path
            status, headers, _ = answers["/healthz"]
            assert status == "HTTP/1.1 200 OK"
            assert headers["connection"].lower() == "close"
            assert not closing.done(), "the export that was running holds the drain open"
            assert is_valid_zip(await running.read())
        await asyncio.wait_for(closing, 30)
