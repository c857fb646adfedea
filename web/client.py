"""Who is on the other end of a request: the client IP behind trusted proxies."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from functools import lru_cache

from aiohttp import web

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=1024)
def parse_networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    """CIDR strings as networks (a bare address is a /32 or /128); cached, as each
    request with a project's trusted proxies asks again."""
    return tuple(ipaddress.ip_network(c, strict=False) for c in cidrs)


def _trusted(address: str | None, networks: Sequence[Network]) -> bool:
    if not address or not networks:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def client_ip(request: web.Request, trusted: tuple[Network, ...]) -> str | None:
    """The socket peer, or the forwarded address when the peer is a trusted proxy.

    ``X-Forwarded-For`` is read right to left, skipping trusted hops, so a
    client cannot forge its address by sending the header itself.
    """
    peer = request.remote
    if not _trusted(peer, trusted):
        return peer
    forwarded = request.headers.get("X-Forwarded-For")
    if forwarded:
        hops = [h.strip() for h in forwarded.split(",") if h.strip()]
        for hop in reversed(hops):
            if not _trusted(hop, trusted):
                return hop
        return hops[0] if hops else peer
    real = request.headers.get("X-Real-IP")
    return real.strip() if real else peer


def relayed_ip(sender: str | None, claimed: object, trusted: tuple[Network, ...]) -> str | None:
    """The address a relay states for its user (Segment's ``context.ip``), or ``sender``.

    The claim is one more forwarded hop: believed only when ``sender`` (the
    request's client address, already resolved through trusted proxies) is
    itself a trusted proxy, and only when it is an IP address.
    """
    if not isinstance(claimed, str) or not _trusted(sender, trusted):
        return sender
    try:
        return str(ipaddress.ip_address(claimed.strip()))
    except ValueError:
        return sender
