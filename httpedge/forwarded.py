"""Who the client is when a proxy we trust relays the request (``X-Forwarded-For``).

Anyone can write ``X-Forwarded-For``; only the entries added by proxies we trust mean
anything. Reading from the right (each proxy appends the address it saw), every trusted hop is
skipped; the first address that is not a trusted proxy is the client. A request whose TCP peer
is not a trusted proxy has its header ignored altogether.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

HEADER = "X-Forwarded-For"


def parse_networks(text: str) -> tuple[Network, ...]:
    """Comma-separated addresses or CIDR blocks (``10.0.0.5, 192.168.0.0/16, ::1``)."""
    networks: list[Network] = []
    for item in text.split(","):
        entry = item.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(f"not an IP address or CIDR block: {entry!r}") from None
    return tuple(networks)


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


class TrustedProxies:
    def __init__(self, networks: Iterable[Network]) -> None:
        self._networks = tuple(networks)

    def trusts(self, address: str | None) -> bool:
        parsed = None if address is None else _address(address)
        return parsed is not None and any(parsed in network for network in self._networks)

    def client_of(self, peer: str | None, forwarded_for: Iterable[str]) -> str | None:
        """The client a trusted ``peer`` relayed for, or None when there is nothing to believe
        (the peer is not trusted, or it sent no usable header). Only parsed addresses are
        returned, so the result is safe to log."""
        if not self.trusts(peer):
            return None
        hops = [hop for value in forwarded_for for hop in value.split(",")]
        client: str | None = None
        for hop in reversed(hops):
            address = _address(hop)
            if address is None:
                break  # garbage from further left cannot be told apart from a forgery
            client = str(address)
            if not self.trusts(client):
                break
        return client
