"""``python -m bff`` / ``xlsx-export-bff``: the only place that reads flags and the environment."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Sequence

from bff.app import BffApp, start_server
from bff.config import (
    DEFAULT_API_URL,
    DEFAULT_HEADER_TIMEOUT_S,
    DEFAULT_HOST,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_PORT,
    BffConfig,
    config_from,
)
from bff.errors import ConfigError

log = logging.getLogger("bff")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="xlsx-export-bff",
        description="Backend-for-frontend: the download page and a streaming proxy to the API.",
        epilog="Environment: API_URL or API_URLS, BFF_HOST, BFF_PORT, BFF_CORS_ORIGINS, "
        "BFF_TOKENS, BFF_MAX_DOWNLOADS_PER_CLIENT, BFF_RETRY_AFTER, BFF_UPSTREAM_HEADERS_TIMEOUT, "
        "BFF_UPSTREAM_READ_TIMEOUT, BFF_UPSTREAM_CONNECT_TIMEOUT, BFF_UPSTREAM_MAX_CONNECTIONS, "
        "BFF_CLIENT_WRITE_TIMEOUT, BFF_MAX_ROW_COUNT, BFF_LOG_LEVEL, BFF_HEADER_TIMEOUT, "
        "BFF_MAX_CONNECTIONS, BFF_HEALTH_INTERVAL, BFF_HEALTH_TIMEOUT (flags win).",
    )
    parser.add_argument("--host", help=f"address to listen on (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, help=f"port to listen on (default {DEFAULT_PORT})")
    parser.add_argument(
        "--api-url",
        help=f"base URL of the one export API (env API_URL; default {DEFAULT_API_URL})",
    )
    parser.add_argument(
        "--api-urls",
        help="comma-separated base URLs of several export APIs to spread downloads over "
        "(env API_URLS; not together with --api-url)",
    )
    parser.add_argument(
        "--header-timeout",
        help="seconds a connection may take to send a request's headers, also the keep-alive "
        f"idle limit (env BFF_HEADER_TIMEOUT; default {DEFAULT_HEADER_TIMEOUT_S:g})",
    )
    parser.add_argument(
        "--max-connections",
        help="open client connections; more are closed at once "
        f"(env BFF_MAX_CONNECTIONS; default {DEFAULT_MAX_CONNECTIONS})",
    )
    return parser.parse_args(argv)


async def serve(config: BffConfig) -> None:
    server = await start_server(BffApp(config), config.host, config.port)
    log.info(
        "BFF listening on http://%s:%d, relaying to %s (auth %s, CORS %s, per-client limit %s)",
        config.host,
        server.port,
        ", ".join(config.api_urls),
        "on" if config.tokens else "off",
        ",".join(config.cors_origins) or "off",
        config.max_downloads_per_client or "off",
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
        log.info("stopping: letting running downloads finish (grace period), then closing")
    finally:
        await server.close()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        config = config_from(
            os.environ,
            host=args.host,
            port=args.port,
            api_url=args.api_url,
            api_urls=args.api_urls,
            header_timeout_s=args.header_timeout,
            max_connections=args.max_connections,
        )
    except ConfigError as exc:
        print(f"xlsx-export-bff: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=config.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        asyncio.run(serve(config))
    except OSError as exc:  # the port is taken, or the address is not ours
        log.error("cannot serve on %s:%d: %s", config.host, config.port, exc)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
