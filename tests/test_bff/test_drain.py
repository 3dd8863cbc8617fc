"""A stopping BFF drains: the downloads it relays finish within the grace period, and every
request on a connection it still has open is answered at once (503 SHUTTING_DOWN, /healthz
as ever), its connection closed after."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace

import aiohttp

from bff.app import BffApp, start_server
from bff.config import BffConfig
from tests import rawhttp
from tests.polling import apoll
from tests.rawhttp import RawClients
from tests.test_bff.conftest import CHUNK, Upstream


async def test_a_stopping_bff_answers_kept_alive_requests_at_once(upstream: Upstream) -> None:
    config = replace(BffConfig(api_urls=(upstream.url,), port=0), retry_after_s=8)
    bff = await start_server(BffApp(config), "127.0.0.1", 0, shutdown_grace_s=60)
    base = f"http://127.0.0.1:{bff.port}"
    async with aiohttp.ClientSession() as client, RawClients() as raw:
        connections = [await raw.connect(bff.port) for _ in range(2)]
        for reader, writer in connections:
            writer.write(rawhttp.request("GET", "/healthz"))
            status, _, _ = await rawhttp.read_response(reader)
            assert status == "HTTP/1.1 200 OK"
        async with client.get(f"{base}/exports/report?gate=1&chunks=2") as running:
            await running.content.readexactly(len(CHUNK))
            closing = asyncio.create_task(bff.close())
            edge = bff.app.server
            assert edge is not None
            await apoll(lambda: edge.draining, what="the drain")
            answers = []
            for (reader, writer), path in zip(
                connections, ["/exports/report?chunks=2", "/healthz"], strict=True
            ):
                writer.write(rawhttp.request("GET", path))
                async with asyncio.timeout(5):  # at once, not at the end of the grace period
                    answers.append(await rawhttp.read_response(reader))
                    assert await reader.read() == b"", f"{path}: the connection closes after"
            (status, headers, body), (health_status, health_headers, _) = answers
            assert status.startswith("HTTP/1.1 503")
            assert json.loads(body)["error"]["code"] == "SHUTTING_DOWN"
            assert headers["retry-after"] == "8"
            assert headers["connection"].lower() == "close"
            assert health_status == "HTTP/1.1 200 OK"
            assert health_headers["connection"].lower() == "close"
            assert not closing.done(), "the running download holds the drain open"
            upstream.release.set()
            assert await running.read() == CHUNK, "the running download finishes"
        await asyncio.wait_for(closing, 30)
