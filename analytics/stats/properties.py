"""What can be broken down or filtered by, and the metrics each kind of property has.

``event:*`` properties are columns of ``events``; ``visit:*`` ones are columns of
``visits`` (the visit's first event, or its entry and exit page). A breakdown row is
keyed by the property's last segment: ``event:page`` -> ``"page"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from analytics.errors import BadRequest

EVENT_COLUMNS = {"event:name": "event_name", "event:page": "pathname", "event:hostname": "hostname"}
VISIT_COLUMNS = {
    "visit:entry_page": "entry_page",
    "visit:exit_page": "exit_page",
    "visit:source": "referrer_source",
    "visit:referrer": "referrer_domain",
    "visit:utm_source": "utm_source",
    "visit:utm_medium": "utm_medium",
    "visit:utm_campaign": "utm_campaign",
    "visit:utm_term": "utm_term",
    "visit:utm_content": "utm_content",
    "visit:country": "country_code",
    "visit:device": "device_type",
    "visit:browser": "browser",
    "visit:os": "os",
    "visit:hostname": "hostname",
}
# The stats rollups' dimension for each event property they hold.
ROLLUP_DIMENSIONS = {"event:name": "name", "event:page": "page", "event:hostname": "hostname"}

METRICS = (
    "visitors",
    "visits",
    "pageviews",
    "events",
    "bounce_rate",
    "visit_duration",
    "views_per_visit",
)
EVENT_METRICS = ("visitors", "pageviews", "events")
VISIT_METRICS = ("visitors", "visits", "pageviews", "bounce_rate", "visit_duration")
NONE = "(none)"
_PROP_KEY = re.compile(r"^[A-Za-z0-9_.$-]{1,100}$")


@dataclass(frozen=True, slots=True)
class Property:
    """One property: ``kind`` is ``event`` or ``visit``; ``column`` its SQL (trusted)."""

    name: str
    kind: str
    column: str
    key: str
    props_key: str | None = None


def parse_property(text: str | None, field: str = "property") -> Property:
    """A known property (400 naming ``field`` otherwise)."""
    if not text:
        raise BadRequest(f"{field} is required", code=f"{field}_missing", field=field)
    if text in EVENT_COLUMNS:
        return Property(text, "event", EVENT_COLUMNS[text], text.rsplit(":", 1)[1])
    if text in VISIT_COLUMNS:
        return Property(text, "visit", VISIT_COLUMNS[text], text.rsplit(":", 1)[1])
    if text.startswith("event:props:"):
        key = text.removeprefix("event:props:")
        if not _PROP_KEY.match(key):
            raise BadRequest(
                f"{field}: a property key is 1-100 letters, digits, '_', '.', '$' or '-'",
                code=f"{field}_invalid",
                field=field,
            )
        return Property(text, "event", "properties ->> $PROP", key, props_key=key)
    known = ", ".join([*EVENT_COLUMNS, *VISIT_COLUMNS, "event:props:KEY"])
    raise BadRequest(
        f"{field}: unknown property {text[:60]!r}; one of {known}",
        code=f"{field}_invalid",
        field=field,
    )


def parse_metrics(
    text: str | None, default: tuple[str, ...], allowed: tuple[str, ...]
) -> list[str]:
    """``metrics`` as a list without repeats, each allowed here (400 naming it otherwise)."""
    if text is None:
        return list(default)
    names = [m.strip() for m in text.split(",")]
    out: list[str] = []
    for name in names:
        if name not in METRICS:
            raise BadRequest(
                f"metrics: unknown metric {name[:40]!r}; one of {', '.join(METRICS)}",
                code="metrics_invalid",
                field="metrics",
            )
        if name not in allowed:
            raise BadRequest(
                f"metrics: {name} is not available here; use {', '.join(allowed)}",
                code="metrics_invalid",
                field="metrics",
            )
        if name not in out:
            out.append(name)
    return out
