"""Country of an IP address, and what of the address is stored.

The country comes from ``iptocc`` (the regional registries' delegations,
compiled into the wheel: nothing is downloaded at run time), or from a
MaxMind / DB-IP ``.mmdb`` file when ``GEOIP_DATABASE`` names one. Private,
loopback and otherwise unrouted addresses have no country.

``iptocc`` is fast enough to ask per event; ``.mmdb`` lookups are cached per
prefix (IPv4 /24, IPv6 /48).
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from typing import Literal

import iptocc
import maxminddb

IpStorage = Literal["full", "truncated", "none"]


def ip_prefix(address: str | None) -> str | None:
    """The address cut to its /24 (IPv4) or /48 (IPv6) network, written as an address.

    ``203.0.113.77`` -> ``203.0.113.0``; ``2001:db8:1:2::1`` -> ``2001:db8:1::``.
    None for anything that is not an IP address.
    """
    if not address or len(address) > 45:  # the longest IPv6 text form is 45 characters
        return None
    return _prefix(address)


@lru_cache(maxsize=65_536)
def _prefix(address: str) -> str | None:
    parts = address.split(".")
    if len(parts) == 4 and all(p.isdigit() and len(p) <= 3 and int(p) < 256 for p in parts):
        return f"{parts[0]}.{parts[1]}.{parts[2]}.0"  # the common case, without ipaddress
    try:
        ip = ipaddress.ip_address(address.strip())
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    bits = 24 if ip.version == 4 else 48
    network = ipaddress.ip_network(f"{ip}/{bits}", strict=False)
    return str(network.network_address)


def stored_ip(address: str | None, storage: IpStorage) -> str | None:
    """What the ``ip_address`` column keeps under a project's ``ip_address_storage``."""
    if storage == "full" or address is None:
        return address
    if storage == "none":
        return None
    return ip_prefix(address)


def _routable(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return ip.is_global


class CountryLookup:
    """ISO 3166-1 alpha-2 country of an address.

    ``iptocc`` answers in about 0.1 µs and is asked directly; ``.mmdb`` lookups
    are cached per /24 or /48 prefix (registries delegate no smaller block, so
    a prefix has one country).
    """

    __slots__ = ("_cache", "_reader")

    def __init__(self, database: str | None = None) -> None:
        self._reader: maxminddb.Reader | None = None
        if database:
            self._reader = maxminddb.open_database(Path(database))
        self._cache: dict[str, str | None] = {}

    def close(self) -> None:
        """Close the ``.mmdb`` file, if one is open."""
        if self._reader is not None:
            self._reader.close()

    def country(self, address: str | None) -> str | None:
        """The address's country code, or None (unknown, private, not an address)."""
        if not address:
            return None
        if self._reader is None:
            # iptocc gives None for private, loopback and malformed addresses itself.
            code = iptocc.country_code(address)
            return code if isinstance(code, str) and len(code) == 2 else None
        prefix = ip_prefix(address)
        if prefix is None:
            return None
        cache = self._cache
        if prefix in cache:
            return cache[prefix]
        code = self._from_mmdb(prefix) if _routable(prefix) else None
        if len(cache) >= 65_536:
            cache.clear()
        cache[prefix] = code
        return code

    def _from_mmdb(self, address: str) -> str | None:
        assert self._reader is not None
        record = self._reader.get(address)
        if not isinstance(record, dict):
            return None
        for key in ("country", "registered_country"):
            country = record.get(key)
            if isinstance(country, dict):
                code = country.get("iso_code")
                if isinstance(code, str) and len(code) == 2:
                    return code.upper()
        code = record.get("country_code")  # DB-IP / IPinfo "lite" layouts
        return code.upper() if isinstance(code, str) and len(code) == 2 else None
