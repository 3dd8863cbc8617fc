"""Only this machine is a target unless the operator says otherwise.

A load run sends thousands of requests; pointed at the wrong address by a typo it is an
attack. Every host the harness will talk to must resolve to loopback addresses only
(127.0.0.0/8, ::1), unless ``--allow-remote`` is given.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

from tests.load.errors import LoadError


def is_loopback_host(host: str) -> bool:
    """True when every address ``host`` resolves to is a loopback address."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except OSError:
        return False
    addresses = {info[4][0] for info in infos}
    return bool(addresses) and all(
        ipaddress.ip_address(str(a).split("%")[0]).is_loopback for a in addresses
    )


def check_url(url: str, *, allow_remote: bool) -> str:
    """``url`` unchanged if it is an http URL to this machine (or remote is allowed)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LoadError(f"not an http(s) URL: {url!r}")
    check_host(parts.hostname, allow_remote=allow_remote)
    return url


def check_host(host: str, *, allow_remote: bool) -> str:
    if not allow_remote and not is_loopback_host(host):
        raise LoadError(
            f"{host} is not a loopback address; load is only sent to this machine "
            "unless --allow-remote is given"
        )
    return host
