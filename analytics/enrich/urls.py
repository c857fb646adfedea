"""The page an event is about: hostname, pathname and UTM fields from its URL.

The URL comes from ``properties.url`` (the tracker), else ``properties.page``
(a path, as the seed's example sends, or a whole URL), else a Segment
message's ``context.page.url`` / ``context.page.path``, kept by the Segment
mapping in ``properties.context``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, urlsplit

UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")

# Stored columns are short text: a hostile client cannot make them huge.
MAX_FIELD = 512


class Page(NamedTuple):
    """Where the event happened and the campaign its URL names (each may be None)."""

    hostname: str | None
    pathname: str | None
    utm_source: str | None
    utm_medium: str | None
    utm_campaign: str | None
    utm_term: str | None
    utm_content: str | None


NO_PAGE = Page(None, None, None, None, None, None, None)


def _clip(value: str | None) -> str | None:
    if not value:
        return None
    return value[:MAX_FIELD]


def page_sources(properties: dict[str, Any]) -> tuple[str | None, str | None]:
    """(url, referrer) as the event states them, from its own fields or Segment's context."""
    url = properties.get("url")
    if not isinstance(url, str) or not url:
        page = properties.get("page")
        url = page if isinstance(page, str) and page else None
    referrer = properties.get("referrer")
    referrer = referrer if isinstance(referrer, str) and referrer else None
    context = properties.get("context")
    if isinstance(context, dict):
        segment_page = context.get("page")
        if isinstance(segment_page, dict):
            if url is None:
                for name in ("url", "path"):
                    candidate = segment_page.get(name)
                    if isinstance(candidate, str) and candidate:
                        url = candidate
                        break
            if referrer is None:
                candidate = segment_page.get("referrer")
                referrer = candidate if isinstance(candidate, str) and candidate else None
    return url, referrer


def parse_page(url: str | None) -> Page:
    """Hostname (lower case, no ``www.``), pathname and ``utm_*`` of a URL or a bare path.

    Cached per URL up to 2 KiB long: a site has far fewer distinct URLs than page views.
    """
    if not url:
        return NO_PAGE
    if len(url) <= 2048:
        return _parse_cached(url)
    return _parse(url)


@lru_cache(maxsize=16_384)
def _parse_cached(url: str) -> Page:
    return _parse(url)


def _parse(url: str) -> Page:
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return NO_PAGE
    hostname = parts.hostname
    if hostname is not None:
        hostname = hostname.removeprefix("www.") or None
    path = parts.path or ("/" if hostname else None)
    if parts.fragment.startswith(("/", "!/")) and path is not None:
        # A hash-routed app's page (#/settings, as the tracker's data-hash sends it).
        path = f"{path}#{parts.fragment}"
    utm: dict[str, str] = {}
    if parts.query and "utm_" in parts.query:
        for key, value in parse_qsl(parts.query):
            if key in UTM_FIELDS and key not in utm and value:
                utm[key] = value
    return Page(
        _clip(hostname),
        _clip(path),
        *(_clip(utm.get(name)) for name in UTM_FIELDS),
    )
