"""Referrer domain and source names from the kept list; UTM source wins over the referrer."""

from __future__ import annotations

import orjson

from analytics.enrich.enricher import Enricher, StoredFields
from analytics.enrich.referrers import SOURCES, referrer_domain, referrer_name


def test_domain_is_lower_case_without_www() -> None:
    assert referrer_domain("https://WWW.Google.com/search?q=x") == "google.com"
    assert referrer_domain("android-app://com.slack") == "com.slack"
    assert referrer_domain("not a url") is None
    assert referrer_domain(None) is None


def test_known_names() -> None:
    assert referrer_name("google.com") == "Google"
    assert referrer_name("google.co.uk") == "Google"
    assert referrer_name("news.google.de") == "Google"
    assert referrer_name("mail.google.com") == "Gmail"
    assert referrer_name("news.ycombinator.com") == "Hacker News"
    assert referrer_name("t.co") == "Twitter"
    assert referrer_name("x.com") == "Twitter"
    assert referrer_name("m.facebook.com") == "Facebook"
    assert referrer_name("duckduckgo.com") == "DuckDuckGo"


def test_unknown_domain_is_its_own_source() -> None:
    assert referrer_name("blog.example.org") == "blog.example.org"
    assert referrer_name(None) is None


def test_the_list_is_data_with_plain_names() -> None:
    assert len(SOURCES) >= 30
    assert all(name and name.strip() == name for name in SOURCES.values())


def _enrich(properties: dict[str, object]) -> tuple[object, ...]:
    row = Enricher().enrich([StoredFields(orjson.dumps(properties).decode(), None, None)])[0]
    return row.referrer_domain, row.referrer_source, row.utm_source


def test_utm_source_wins_over_the_referrer() -> None:
    assert _enrich(
        {"url": "https://a.example/?utm_source=newsletter", "referrer": "https://google.com/"}
    ) == ("google.com", "newsletter", "newsletter")
    assert _enrich({"url": "https://a.example/", "referrer": "https://news.ycombinator.com/"}) == (
        "news.ycombinator.com",
        "Hacker News",
        None,
    )


def test_a_link_inside_the_site_is_no_referrer() -> None:
    assert _enrich({"url": "https://a.example/b", "referrer": "https://a.example/a"}) == (
        None,
        None,
        None,
    )
