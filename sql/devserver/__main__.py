"""``python -m sql.devserver``: run the TDS dev server until interrupted.

Configuration is read here only: command-line options, then the MSSQL_USER / MSSQL_PASSWORD /
MSSQL_DATABASE environment variables the export API also reads, then the dev defaults.

With ``--tls-cert FILE --tls-key FILE`` (PEM) clients may encrypt, as with SQL Server that has a
certificate: TLS negotiated in PRELOGIN (TDS 7.x) or TLS first (TDS 8.0 strict);
``--require-encryption`` refuses a client that will not encrypt, as "Force Encryption" does.
``python -m sql.devserver.certs --out DIR`` writes a dev CA and a certificate to serve.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import ssl
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
    parser.add_argument(
        "--tls-cert",
        metavar="FILE",
        help="PEM certificate chain (the server's first): clients may encrypt (TLS in PRELOGIN, "
        "or TDS 8.0 strict)",
    )
    parser.add_argument(
        "--tls-key", metavar="FILE", help="PEM private key of --tls-cert (default: in that file)"
    )
    parser.add_argument(
        "--require-encryption",
        action="store_true",
        help="refuse clients that will not encrypt, as SQL Server's Force Encryption (needs "
        "--tls-cert)",
    )
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    if args.require_encryption and not args.tls_cert:
        parser.error("--require-encryption needs --tls-cert")
    if args.tls_key and not args.tls_cert:
        parser.error("--tls-key needs --tls-cert")
    return args


def make_server(args: argparse.Namespace) -> DevServer:
    return DevServer(
        host=args.host,
        port=args.port,
        user=args.user,
        password=args.password,
        database=args.database,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        require_encryption=args.require_encryption,
    )


async def serve(server: DevServer, args: argparse.Namespace) -> None:
    await server.start()
    logging.getLogger("sql.devserver").info(
        "TDS dev server on %s:%d (database %s, user %s, %s)",
        args.host,
        server.port,
        args.database,
        args.user,
        server.encryption.value,
    )
    try:
        await server.serve_forever()
    finally:
        await server.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(name)s %(message)s")
    try:
        server = make_server(args)
    except (OSError, ssl.SSLError) as exc:  # a missing file, a key that is not the cert's
        logging.getLogger("sql.devserver").error(
            "cannot load the TLS certificate %s: %s", args.tls_cert, exc
        )
        return 2
    try:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(serve(server, args))
    except OSError as exc:  # the port is taken, or the address is not ours
        logging.getLogger("sql.devserver").error(
            "cannot serve on %s:%d: %s", args.host, args.port, exc
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
