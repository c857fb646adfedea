"""Where a visit came from: the referrer's domain and a source name for it.

The names come from ``referrers.json`` (kept as data beside this module): a
short, documented list of the search engines, social sites and aggregators
that send most traffic, mapping a domain to the name the dashboard shows
("Google", "Hacker News"). No maintained Python package carries such a list
with a licence and an update rhythm we could depend on (the Snowplow and
Matomo lists are large YAML files outside any package), so we keep our own;
a domain not in it is its own source. A campaign's ``utm_source`` wins over
the referrer.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from urllib.parse import urlsplit


def _load() -> dict[str, str]:
    text = (resources.files("analytics.enrich") / "referrers.json").read_text()
    table: dict[str, str] = json.loads(text)["sources"]
    return {domain.lower(): name for domain, name in table.items()}


SOURCES = _load()


def referrer_domain(referrer: str | None) -> str | None:
    """The referrer URL's host, lower case and without ``www.``; None if it has none."""
    if not referrer:
        return None
    if len(referrer) <= 2048:  # cache keys stay small
        return _domain_cached(referrer)
    return _domain(referrer)


@lru_cache(maxsize=4096)
def _domain_cached(referrer: str) -> str | None:
    return _domain(referrer)


def _domain(referrer: str) -> str | None:
    try:
        host = urlsplit(referrer.strip()).hostname
    except ValueError:
        return None
    if not host:
        return None
    return host.removeprefix("www.")[:255] or None


@lru_cache(maxsize=4096)
def referrer_name(domain: str | None) -> str | None:
    """The known name of a referrer domain (``news.ycombinator.com`` -> Hacker News).

    Subdomains inherit their parent's name (``m.facebook.com`` -> Facebook), and
    a Google country domain (``google.co.uk``) is Google. An unknown domain is
    returned as it is.
    """
    if domain is None:
        return None
    labels = domain.split(".")
    for start in range(len(labels) - 1):
        candidate = ".".join(labels[start:])
        name = SOURCES.get(candidate)
        if name is not None:
            return name
    # google.de, google.co.uk, bing.com.au …: the engine by its second-level label.
    for label in labels[: min(2, len(labels) - 1)]:
        name = SOURCES.get(f"{label}.*")
        if name is not None:
            return name
    return domain
