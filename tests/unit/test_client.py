"""The client IP behind trusted proxies (``web.client``): the socket peer unless it is a
trusted proxy; then ``X-Forwarded-For`` read right to left past trusted hops, else
``X-Real-IP``. ``client_ip`` reads only ``request.remote`` and the headers, so the requests
here are built in memory (no socket)."""

from __future__ import annotations

import ipaddress

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from web.client import client_ip, parse_networks

PROXIES = parse_networks(("10.0.0.0/8", "192.168.1.1", "2001:db8::/32"))


def request(peer: str | None, **headers: str) -> web.Request:
    """A request from ``peer``; header names with ``_`` for ``-`` (X_Forwarded_For)."""
    built = make_mocked_request(
        "POST", "/api/events/ingest/", headers={k.replace("_", "-"): v for k, v in headers.items()}
    )
    return built.clone(remote=peer)


def test_parse_networks() -> None:
    networks = parse_networks(("10.0.0.0/8", "192.168.1.1", "2001:db8::/32"))
    assert networks == (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("192.168.1.1/32"),  # a bare address is one host
        ipaddress.ip_network("2001:db8::/32"),
    )
    # Host bits are forgiven, as operators write them.
    assert parse_networks(("10.1.2.3/8",)) == (ipaddress.ip_network("10.0.0.0/8"),)
    assert parse_networks(()) == ()
    with pytest.raises(ValueError):
        parse_networks(("10.0.0.0/33",))


def test_without_trusted_proxies_the_socket_peer_is_the_client() -> None:
    forged = request("203.0.113.7", X_Forwarded_For="1.1.1.1", X_Real_IP="2.2.2.2")
    assert client_ip(forged, ()) == "203.0.113.7"


def test_an_untrusted_peer_cannot_forge_its_address() -> None:
    forged = request("203.0.113.7", X_Forwarded_For="1.1.1.1", X_Real_IP="2.2.2.2")
    assert client_ip(forged, PROXIES) == "203.0.113.7"


@pytest.mark.parametrize(
    ("forwarded", "client"),
    [
        ("198.51.100.4", "198.51.100.4"),
        ("198.51.100.4, 10.2.3.4", "198.51.100.4"),  # a second trusted hop is skipped
        ("1.1.1.1, 198.51.100.4", "198.51.100.4"),  # what the client itself sent is not
        ("1.1.1.1,198.51.100.4,10.0.0.9,192.168.1.1", "198.51.100.4"),
        ("2001:db8::5, 2a00:1450::1", "2a00:1450::1"),
        ("10.0.0.5, 10.0.0.6", "10.0.0.5"),  # every hop trusted: the first one
    ],
)
def test_forwarded_for_is_read_right_to_left(forwarded: str, client: str) -> None:
    assert client_ip(request("10.0.0.1", X_Forwarded_For=forwarded), PROXIES) == client


def test_an_empty_forwarded_list_falls_back_to_the_peer() -> None:
    assert client_ip(request("10.0.0.1", X_Forwarded_For=" , "), PROXIES) == "10.0.0.1"


def test_real_ip_from_a_trusted_proxy() -> None:
    assert client_ip(request("192.168.1.1", X_Real_IP=" 198.51.100.4 "), PROXIES) == (
        "198.51.100.4"
    )
    # Forwarded-For is preferred when both are present.
    both = request("192.168.1.1", X_Forwarded_For="198.51.100.9", X_Real_IP="198.51.100.4")
    assert client_ip(both, PROXIES) == "198.51.100.9"


def test_a_trusted_proxy_without_headers_is_itself_the_client() -> None:
    assert client_ip(request("10.0.0.1"), PROXIES) == "10.0.0.1"


def test_a_neighbour_of_a_single_trusted_address_is_not_trusted() -> None:
    forged = request("192.168.1.2", X_Forwarded_For="1.1.1.1")
    assert client_ip(forged, PROXIES) == "192.168.1.2"


def test_no_peer_address() -> None:
    # A unix socket has no peer address; nothing is trusted then.
    assert client_ip(request(None, X_Forwarded_For="1.1.1.1"), PROXIES) is None
