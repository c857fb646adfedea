"""Per-project settings (and per-source overrides): validated once, then plain values.

Stored as JSON in ``projects.settings`` / ``event_sources.settings`` holding
only what an operator set; everything else takes the defaults below. The CLI
validates with the pydantic models; the edge turns them into a slotted
``Policy`` it can consult per event without re-validating.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from analytics.errors import ConfigError


class TimeWindow(BaseModel):
    """A kept period: ``{"start": "09:00", "end": "17:00"}`` each day (UTC), or
    ``{"start_minute": 0, "end_minute": 15}`` of every hour."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: str | None = None
    end: str | None = None
    start_minute: int | None = Field(default=None, ge=0, le=59)
    end_minute: int | None = Field(default=None, ge=1, le=60)

    @model_validator(mode="after")
    def _one_kind(self) -> TimeWindow:
        daily = self.start is not None and self.end is not None
        hourly = self.start_minute is not None and self.end_minute is not None
        if daily == hourly:
            raise ValueError("give either start/end (HH:MM) or start_minute/end_minute")
        if daily:
            start, end = _minutes(self.start or ""), _minutes(self.end or "")
            if end <= start:
                raise ValueError("end must be after start")
        elif (self.end_minute or 0) <= (self.start_minute or 0):
            raise ValueError("end_minute must be after start_minute")
        return self

    def span(self) -> tuple[str, int, int]:
        """('day', start, end) in minutes of the day, or ('hour', start, end) in minutes."""
        if self.start is not None and self.end is not None:
            return ("day", _minutes(self.start), _minutes(self.end))
        return ("hour", self.start_minute or 0, self.end_minute or 60)


def _minutes(hhmm: str) -> int:
    try:
        hours, minutes = hhmm.split(":")
        value = int(hours) * 60 + int(minutes)
    except ValueError as exc:
        raise ValueError(f"{hhmm!r} is not HH:MM") from exc
    if not 0 <= value <= 24 * 60:
        raise ValueError(f"{hhmm!r} is not a time of day")
    return value


class Sampling(BaseModel):
    """How many events to keep: all, a random or per-user share, or those in time windows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: Literal["none", "random", "deterministic", "time_window"] = "none"
    rate: float = Field(default=1.0, gt=0.0, le=1.0)
    windows: tuple[TimeWindow, ...] = ()

    @model_validator(mode="after")
    def _windows_needed(self) -> Sampling:
        if self.strategy == "time_window" and not self.windows:
            raise ValueError("time_window sampling needs at least one window")
        return self


@functools.cache
def _zones() -> frozenset[str]:
    import zoneinfo

    return frozenset(zoneinfo.available_timezones()) | {"UTC"}


class ProjectSettings(BaseModel):
    """Every per-project setting with its default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rate_limit_per_minute: int | None = Field(default=None, ge=1)
    rate_limit_per_ip_per_minute: int | None = Field(default=None, ge=1)
    daily_quota: int | None = Field(default=None, ge=1)
    retention_days: int = Field(default=90, ge=1)
    aggregate_retention_days: int = Field(default=730, ge=1)
    cors_origins: Literal["*"] | tuple[str, ...] = "*"
    trusted_proxies: tuple[str, ...] = ()
    session_window_minutes: int = Field(default=60, ge=1, le=24 * 60)
    sampling: Sampling = Sampling()
    # What ``events.ip_address`` keeps: the address, its /24 (IPv4) or /48 (IPv6)
    # network, or nothing. The worker finds the country before cutting it.
    ip_address_storage: Literal["full", "truncated", "none"] = "full"
    # The IANA zone the stats API and the dashboard answer in (their days and hours).
    timezone: str = "UTC"

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        if value not in _zones():
            raise ValueError(f"{value!r} is not an IANA time zone name such as Europe/Berlin")
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _cidrs(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for cidr in value:
            ipaddress.ip_network(cidr, strict=False)
        return value

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: Any) -> Any:
        if value == "*":
            return value
        for origin in value:
            if not origin.startswith(("http://", "https://")) or origin.endswith("/"):
                raise ValueError(f"{origin!r} is not an origin like https://example.com")
        return value


class SourceSettings(BaseModel):
    """What one event source may override."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    sampling: Sampling | None = None
    rate_limit_per_minute: int | None = Field(default=None, ge=1)


PROJECT_SETTING_NAMES = tuple(ProjectSettings.model_fields)
SOURCE_SETTING_NAMES = tuple(SourceSettings.model_fields)


def parse_value(name: str, raw: str, *, source: bool) -> Any:
    """An operator's ``set-setting`` value, validated; JSON for lists/objects, ``null`` unsets."""
    import orjson

    allowed = SOURCE_SETTING_NAMES if source else PROJECT_SETTING_NAMES
    if name not in allowed:
        scope = "a source" if source else "a project"
        raise ConfigError(
            f"unknown setting {name!r} for {scope}; known: {', '.join(allowed)}", field=name
        )
    if raw == "null":
        return None  # unset: the default applies again
    if raw == "*":
        value: Any = "*"
    else:
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            value = raw
    model = SourceSettings if source else ProjectSettings
    try:
        model.model_validate({name: value})
    except ValidationError as exc:
        reasons = "; ".join(e["msg"] for e in exc.errors())
        raise ConfigError(f"invalid value for {name}: {reasons}", field=name) from exc
    return value


@dataclass(slots=True, frozen=True)
class Policy:
    """The resolved settings the edge applies to one (project, source).

    ``rate_limit_per_minute`` is the project's own limit, shared by all its sources;
    ``source_rate_limit_per_minute`` the source's own, charged on top of it.
    """

    sampling: Sampling
    rate_limit_per_minute: int | None
    source_rate_limit_per_minute: int | None
    rate_limit_per_ip_per_minute: int | None
    daily_quota: int | None
    cors_origins: Literal["*"] | tuple[str, ...]
    trusted_proxies: tuple[str, ...]
    session_window_minutes: int


def project_settings(stored: Any) -> ProjectSettings:
    """Stored JSON -> settings; a bad stored value falls back to defaults field by field."""
    data = stored if isinstance(stored, dict) else {}
    try:
        return ProjectSettings.model_validate(data)
    except ValidationError:
        good = {}
        for key, value in data.items():
            try:
                ProjectSettings.model_validate({key: value})
            except ValidationError:
                continue
            good[key] = value
        return ProjectSettings.model_validate(good)


def source_settings(stored: Any) -> SourceSettings:
    """Stored JSON -> source overrides (invalid ones ignored)."""
    try:
        return SourceSettings.model_validate(stored if isinstance(stored, dict) else {})
    except ValidationError:
        return SourceSettings()


def resolve(project: ProjectSettings, source: SourceSettings | None) -> Policy:
    """Project settings with a source's overrides applied (``source=None``: the project's)."""
    sampling = project.sampling
    if source is not None and source.sampling is not None:
        sampling = source.sampling
    return Policy(
        sampling=sampling,
        rate_limit_per_minute=project.rate_limit_per_minute,
        source_rate_limit_per_minute=None if source is None else source.rate_limit_per_minute,
        rate_limit_per_ip_per_minute=project.rate_limit_per_ip_per_minute,
        daily_quota=project.daily_quota,
        cors_origins=project.cors_origins,
        trusted_proxies=project.trusted_proxies,
        session_window_minutes=project.session_window_minutes,
    )
