"""The client's address, behind reverse proxies we trust (``SORA_TRUSTED_PROXIES``).

Why: behind nginx every request comes from the proxy's address, so per-address throttles
would lock everyone out together and activity logs would record the proxy. But anyone can
send ``X-Forwarded-For``: it is believed only when the peer itself is a trusted proxy, and
then only as far as the chain stays trusted. Walking the hops from the right (the peer,
then what each trusted proxy says it saw), the first address that is not a trusted proxy
is the client; entries further left were written by that client and may be forged.
``Forwarded`` (RFC 7239) is read when present, else ``X-Forwarded-For``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

UNKNOWN = "unknown"
_FORWARDED_FOR = re.compile(r'(?:^|;)\s*for\s*=\s*("[^"]*"|[^;,\s]*)', re.IGNORECASE)


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """CIDRs (or single addresses) as networks; ValueError names a bad one."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{value!r} is not an IP network (CIDR) or address") from None
    return tuple(networks)


def _address(text: str) -> Address | None:
    """An IP address from a header hop: ``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``, ``::1``."""
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _forwarded_hops(forwarded: Sequence[str]) -> list[str]:
    hops = []
    for header in forwarded:
        for element in header.split(","):
            found = _FORWARDED_FOR.search(element)
            hops.append(found.group(1) if found else "")
    return hops


def _xff_hops(xff: Sequence[str]) -> list[str]:
    return [hop for header in xff for hop in header.split(",")]


class TrustedProxies:
    """Resolves the client address of a request from its peer and forwarding headers."""

    def __init__(self, networks: Iterable[Network]) -> None:
        self._networks = tuple(networks)

    def trusts(self, address: Address) -> bool:
        return any(address in network for network in self._networks)

    def client(self, peer: str | None, forwarded: Sequence[str], xff: Sequence[str]) -> str:
        """The rightmost hop that is not a trusted proxy (the peer itself when untrusted).

        A hop that is not an IP address (``unknown``, an obfuscated name, garbage) ends the
        walk: nothing to its left can be checked, so that hop is the answer (as text).
        """
        if not peer:
            return UNKNOWN
        current = _address(peer)
        if current is None or not self._networks or not self.trusts(current):
            return peer
        hops = _forwarded_hops(forwarded) if forwarded else _xff_hops(xff)
        for hop in reversed(hops):
            address = _address(hop)
            if address is None:
                return hop.strip().strip('"')[:64] or UNKNOWN
            current = address
            if not self.trusts(address):
                break
        return str(current)
