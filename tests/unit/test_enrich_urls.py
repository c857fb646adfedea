"""Page, pathname and UTM fields from an event's URL (properties.url, .page, Segment's context)."""

from __future__ import annotations

from analytics.enrich.urls import page_sources, parse_page


def test_full_url_gives_hostname_path_and_utm() -> None:
    page = parse_page(
        "https://www.Shop.example/pricing/?utm_source=newsletter&utm_medium=email"
        "&utm_campaign=spring&utm_term=shoes&utm_content=top&x=1#plans"
    )
    assert page.hostname == "shop.example"
    assert page.pathname == "/pricing/"
    assert (page.utm_source, page.utm_medium, page.utm_campaign) == (
        "newsletter",
        "email",
        "spring",
    )
    assert (page.utm_term, page.utm_content) == ("shoes", "top")


def test_bare_path_has_no_hostname() -> None:
    page = parse_page("/dashboard")
    assert page.hostname is None and page.pathname == "/dashboard"
    assert parse_page("https://example.com").pathname == "/"


def test_nothing_usable_gives_nothing() -> None:
    assert parse_page(None) == parse_page("") == parse_page("http://[::1")
    assert parse_page(None).pathname is None


def test_first_utm_value_wins_and_empty_ones_are_none() -> None:
    page = parse_page("https://a.example/?utm_source=&utm_medium=cpc&utm_medium=other")
    assert page.utm_source is None and page.utm_medium == "cpc"


def test_url_sources_in_order_of_preference() -> None:
    assert page_sources({"url": "https://a.example/x", "page": "/y"}) == (
        "https://a.example/x",
        None,
    )
    assert page_sources({"page": "/dashboard", "referrer": "https://google.com"}) == (
        "/dashboard",
        "https://google.com",
    )
    segment = {
        "context": {
            "page": {"url": "https://b.example/p?utm_source=x", "referrer": "https://t.co/a"}
        }
    }
    assert page_sources(segment) == ("https://b.example/p?utm_source=x", "https://t.co/a")
    assert page_sources({"context": {"page": {"path": "/only-path"}}}) == ("/only-path", None)
    assert page_sources({"url": 5, "page": ["no"]}) == (None, None)


def test_long_values_are_clipped() -> None:
    page = parse_page("https://a.example/" + "p" * 5000)
    assert page.pathname is not None and len(page.pathname) == 512


def test_hash_routes_are_part_of_the_path_and_anchors_are_not() -> None:
    assert parse_page("https://app.example/#/settings/profile").pathname == "/#/settings/profile"
    assert parse_page("https://app.example/docs#install").pathname == "/docs"
