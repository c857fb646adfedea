"""The enrichment of a batch of events: one ``Enrichment`` per event, in order.

Reads only what an event is stored with (``properties``, ``ip_address``,
``user_agent``), so the worker before the insert and ``analytics
enrich-events`` over older rows compute the same columns.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import NamedTuple

import orjson

from analytics.enrich.geo import CountryLookup
from analytics.enrich.referrers import referrer_domain, referrer_name
from analytics.enrich.urls import page_sources, parse_page
from analytics.enrich.useragents import parse_agent

# Column order of Enrichment, as the ``events`` table names them (SPEC §10).
COLUMNS = (
    "hostname",
    "pathname",
    "referrer_domain",
    "referrer_source",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "browser",
    "browser_version",
    "os",
    "os_version",
    "device_type",
    "is_bot",
    "country_code",
)


class Enrichment(NamedTuple):
    """The enriched columns of one event (each None when the event does not say)."""

    hostname: str | None
    pathname: str | None
    referrer_domain: str | None
    referrer_source: str | None
    utm_source: str | None
    utm_medium: str | None
    utm_campaign: str | None
    utm_term: str | None
    utm_content: str | None
    browser: str | None
    browser_version: str | None
    os: str | None
    os_version: str | None
    device_type: str | None
    is_bot: bool | None
    country_code: str | None


class StoredFields(NamedTuple):
    """What enrichment reads of one stored event."""

    properties: str
    ip_address: str | None
    user_agent: str | None


class Enricher:
    """Enriches events; holds the country database and its cache for a process's life."""

    __slots__ = ("countries",)

    def __init__(self, geoip_database: str | None = None) -> None:
        self.countries = CountryLookup(geoip_database)

    def close(self) -> None:
        """Release the country database."""
        self.countries.close()

    def enrich(self, events: Iterable[StoredFields]) -> list[Enrichment]:
        """One ``Enrichment`` per event, in order.

        Built by joining cached column tuples (page, agent) and the country, without the
        keyword parsing of a NamedTuple's constructor: this runs for every stored event.
        """
        country = self.countries.country
        make = tuple.__new__
        return [
            make(Enrichment, (*_page_columns(properties), *parse_agent(agent), country(ip)))
            for properties, ip, agent in events
        ]


# Cache keys are kept short, so a client sending large distinct bodies cannot make the
# caches hold much: 16,384 entries of at most 2 KiB.
CACHED_TEXT = 2048


def _page_columns(properties: str) -> PageColumns:
    """The page and source columns of an event's properties text, in ``COLUMNS`` order.

    Cached per text: a site's page views repeat the same few property sets.
    """
    if len(properties) <= CACHED_TEXT:
        return _page_columns_cached(properties)
    return _page_columns_of(properties)


# hostname, pathname, referrer_domain, referrer_source, then the five utm_* columns.
PageColumns = tuple[str | None, ...]
_NO_PAGE_COLUMNS: PageColumns = (None,) * 9


@lru_cache(maxsize=16_384)
def _page_columns_cached(properties: str) -> PageColumns:
    return _page_columns_of(properties)


def _page_columns_of(properties: str) -> PageColumns:
    # Most custom events name no page: skip the parse when no key could be there.
    if '"url"' not in properties and '"page"' not in properties and '"referrer"' not in properties:
        return _NO_PAGE_COLUMNS
    try:
        value = orjson.loads(properties)
    except orjson.JSONDecodeError:
        return _NO_PAGE_COLUMNS
    if not isinstance(value, dict):
        return _NO_PAGE_COLUMNS
    url, referrer = page_sources(value)
    page = parse_page(url)
    domain = referrer_domain(referrer)
    if domain is not None and domain == page.hostname:
        domain = None  # a link inside the site is not where the visit came from
    source = page.utm_source or referrer_name(domain)
    return (page.hostname, page.pathname, domain, source, *page[2:])
