"""``python -m bff`` / ``xlsx-export-bff``: the only place that reads flags and the environment."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence

from bff.app import BffApp, start_server
from bff.config import API_URL_OPTIONS, OPTIONS, BffConfig, config_from, default_of
from bff.errors import ConfigError
from httpedge import options

log = logging.getLogger("bff")


def load_config(argv: Sequence[str], environ: Mapping[str, str]) -> BffConfig:
    """Flags over environment over defaults; raises ConfigError naming the culprit."""
    parser = options.build_parser(
        (*OPTIONS, *API_URL_OPTIONS),
        prog="xlsx-export-bff",
        description="Backend-for-frontend: the download page and a streaming proxy to the API.",
        defaults=default_of,
    )
    return config_from(environ, **vars(parser.parse_args(list(argv))))


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
    try:
        config = load_config(sys.argv[1:] if argv is None else argv, os.environ)
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
