"""Country from the IP address (iptocc, or an .mmdb file), and what ip_address_storage keeps."""

from __future__ import annotations

from pathlib import Path

import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet

from analytics.enrich.geo import CountryLookup, ip_prefix, stored_ip


@pytest.mark.parametrize(
    ("address", "country"),
    [
        ("8.8.8.8", "US"),
        ("81.2.69.142", "GB"),
        ("1.1.1.1", "AU"),
        ("2a00:1450:4001::1", "IE"),
        ("10.1.2.3", None),
        ("192.168.0.1", None),
        ("127.0.0.1", None),
        ("::1", None),
        ("fe80::1", None),
        ("not an address", None),
        (None, None),
    ],
)
def test_countries_from_the_packaged_data(address: str | None, country: str | None) -> None:
    assert CountryLookup().country(address) == country


def test_prefixes() -> None:
    assert ip_prefix("203.0.113.77") == "203.0.113.0"
    assert ip_prefix("2001:db8:1:2::1") == "2001:db8:1::"
    assert ip_prefix("::ffff:8.8.4.4") == "8.8.4.0"
    assert ip_prefix("1.2.3.999") is None
    assert ip_prefix("nonsense") is None


def test_ip_address_storage() -> None:
    assert stored_ip("203.0.113.77", "full") == "203.0.113.77"
    assert stored_ip("203.0.113.77", "truncated") == "203.0.113.0"
    assert stored_ip("2001:db8:1:2::1", "truncated") == "2001:db8:1::"
    assert stored_ip("203.0.113.77", "none") is None


def _write_mmdb(path: Path) -> None:
    """A tiny country database in MaxMind's layout: 81.2.69.0/24 is DE (iptocc says GB)."""
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="Test-Country")
    writer.insert_network(IPSet(["81.2.69.0/24"]), {"country": {"iso_code": "DE"}})
    writer.to_db_file(str(path))


def test_an_mmdb_file_replaces_the_packaged_data(tmp_path: Path) -> None:
    database = tmp_path / "countries.mmdb"
    _write_mmdb(database)
    lookup = CountryLookup(str(database))
    try:
        assert lookup.country("81.2.69.142") == "DE"  # iptocc says GB: the file is used
        assert lookup.country("81.2.70.1") is None
        assert lookup.country("10.0.0.1") is None
    finally:
        lookup.close()
