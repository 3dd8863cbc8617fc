"""``python -m sql.devserver``: run the TDS dev server until interrupted.

Configuration is read here only: command-line options, then the MSSQL_USER / MSSQL_PASSWORD /
MSSQL_DATABASE environment variables the export API also reads, then the dev defaults.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys

from sql.devserver.server import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    DEV_DATABASE,
    DEV_PASSWORD,
    DEV_USER,
    DevServer,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ
    parser = argparse.ArgumentParser(prog="python -m sql.devserver", description=__doc__)
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--user", default=env.get("MSSQL_USER") or DEV_USER)
    parser.add_argument("--password", default=env.get("MSSQL_PASSWORD") or DEV_PASSWORD)
    parser.add_argument("--database", default=env.get("MSSQL_DATABASE") or DEV_DATABASE)
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> None:
    server = DevServer(
        host=args.host,
        port=args.port,
        user=args.user,
        password=args.password,
        database=args.database,
    )
    await server.start()
    logging.getLogger("sql.devserver").info(
        "TDS dev server on %s:%d (database %s, user %s)",
        args.host,
        server.port,
        args.database,
        args.user,
    )
    try:
        await server.serve_forever()
    finally:
        await server.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(message)s")
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(args))
    except OSError as exc:  # the port is taken, or the address is not ours
        logging.getLogger("sql.devserver").error(
            "cannot serve on %s:%d: %s", args.host, args.port, exc
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
