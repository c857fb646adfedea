"""Project and source settings (``analytics.projects.policy``): operator values validated
with errors naming the setting, stored JSON read defensively, source overrides applied."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from analytics.errors import ConfigError
from analytics.projects.policy import (
    PROJECT_SETTING_NAMES,
    ProjectSettings,
    Sampling,
    SourceSettings,
    TimeWindow,
    parse_value,
    project_settings,
    resolve,
    source_settings,
)


def config_error(name: str, raw: str, *, source: bool = False) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        parse_value(name, raw, source=source)
    return caught.value


def test_defaults_are_the_documented_ones() -> None:
    defaults = ProjectSettings()
    assert defaults.retention_days == 90
    assert defaults.aggregate_retention_days == 730
    assert defaults.session_window_minutes == 60
    assert defaults.cors_origins == "*"
    assert defaults.trusted_proxies == ()
    assert (defaults.rate_limit_per_minute, defaults.daily_quota) == (None, None)
    assert defaults.sampling.strategy == "none"


@pytest.mark.parametrize(
    ("name", "raw", "expected"),
    [
        ("rate_limit_per_minute", "600", 600),
        ("rate_limit_per_minute", "null", None),  # unsets
        ("daily_quota", "100000", 100_000),
        ("retention_days", "30", 30),
        ("cors_origins", "*", "*"),
        (
            "cors_origins",
            '["https://example.com", "http://localhost:3000"]',
            ["https://example.com", "http://localhost:3000"],
        ),
        ("trusted_proxies", '["10.0.0.0/8", "192.168.1.1"]', ["10.0.0.0/8", "192.168.1.1"]),
        (
            "sampling",
            '{"strategy": "deterministic", "rate": 0.5}',
            {"strategy": "deterministic", "rate": 0.5},
        ),
    ],
)
def test_valid_project_values(name: str, raw: str, expected: Any) -> None:
    assert parse_value(name, raw, source=False) == expected


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("rate_limit_per_minute", "0"),
        ("rate_limit_per_minute", "lots"),
        ("daily_quota", "-1"),
        ("retention_days", "0"),
        ("session_window_minutes", "1441"),
        ("cors_origins", '["https://example.com/"]'),  # a trailing slash is not an origin
        ("cors_origins", '["example.com"]'),
        ("trusted_proxies", '["10.0.0.0/33"]'),
        ("trusted_proxies", '["not-an-ip"]'),
        ("sampling", '{"strategy": "random", "rate": 0}'),
        ("sampling", '{"strategy": "random", "rate": 1.5}'),
        ("sampling", '{"strategy": "sometimes"}'),
        ("sampling", '{"strategy": "time_window"}'),  # needs windows
    ],
)
def test_invalid_values_name_the_setting(name: str, raw: str) -> None:
    error = config_error(name, raw)
    assert error.field == name
    assert error.detail.startswith(f"invalid value for {name}: ")


def test_unknown_settings_list_the_known_ones() -> None:
    error = config_error("rate_limit", "5")
    assert error.field == "rate_limit"
    assert "unknown setting 'rate_limit' for a project" in error.detail
    assert all(name in error.detail for name in PROJECT_SETTING_NAMES)


def test_a_source_may_override_only_sampling_and_its_rate_limit() -> None:
    assert parse_value("rate_limit_per_minute", "60", source=True) == 60
    assert parse_value("sampling", '{"strategy": "random", "rate": 0.1}', source=True) == {
        "strategy": "random",
        "rate": 0.1,
    }
    error = config_error("daily_quota", "5", source=True)
    assert error.field == "daily_quota"
    assert "for a source" in error.detail
    assert "known: sampling, rate_limit_per_minute" in error.detail


def test_stored_settings_are_read_whole_when_valid() -> None:
    stored = {"rate_limit_per_minute": 10, "cors_origins": ["https://a.example"]}
    settings = project_settings(stored)
    assert settings.rate_limit_per_minute == 10
    assert settings.cors_origins == ("https://a.example",)


def test_a_bad_stored_value_falls_back_to_its_default_alone() -> None:
    stored = {
        "retention_days": 0,  # invalid: default 90
        "daily_quota": 500,  # valid: kept
        "sampling": {"strategy": "random", "rate": 7},  # invalid: default sampling
        "session_window_minutes": 30,  # valid: kept
        "no_such_setting": True,  # unknown: ignored
    }
    settings = project_settings(stored)
    assert settings.retention_days == 90
    assert settings.daily_quota == 500
    assert settings.sampling == Sampling()
    assert settings.session_window_minutes == 30


@pytest.mark.parametrize("stored", [None, [], "settings", 3])
def test_stored_settings_that_are_not_an_object_mean_defaults(stored: Any) -> None:
    assert project_settings(stored) == ProjectSettings()
    assert source_settings(stored) == SourceSettings()


def test_valid_source_overrides_are_read() -> None:
    stored = {"sampling": {"strategy": "random", "rate": 0.2}, "rate_limit_per_minute": 9}
    source = source_settings(stored)
    assert source.sampling == Sampling(strategy="random", rate=0.2)
    assert source.rate_limit_per_minute == 9


def test_resolve_without_a_source_is_the_project() -> None:
    project = ProjectSettings(
        rate_limit_per_minute=100,
        rate_limit_per_ip_per_minute=10,
        daily_quota=1000,
        cors_origins=("https://a.example",),
        trusted_proxies=("10.0.0.0/8",),
        session_window_minutes=15,
        sampling=Sampling(strategy="random", rate=0.5),
    )
    policy = resolve(project, None)
    assert policy.sampling == project.sampling
    assert policy.rate_limit_per_minute == 100
    assert policy.source_rate_limit_per_minute is None
    assert policy.rate_limit_per_ip_per_minute == 10
    assert policy.daily_quota == 1000
    assert policy.cors_origins == ("https://a.example",)
    assert policy.trusted_proxies == ("10.0.0.0/8",)
    assert policy.session_window_minutes == 15


def test_resolve_applies_the_sources_overrides() -> None:
    project = ProjectSettings(
        rate_limit_per_minute=100, sampling=Sampling(strategy="random", rate=0.5)
    )
    own = Sampling(strategy="deterministic", rate=0.1)
    policy = resolve(project, SourceSettings(sampling=own, rate_limit_per_minute=20))
    assert policy.sampling == own
    # The source's limit is charged on top of the project's, not instead of it.
    assert (policy.rate_limit_per_minute, policy.source_rate_limit_per_minute) == (100, 20)


def test_a_source_without_overrides_inherits_the_project_sampling() -> None:
    project = ProjectSettings(sampling=Sampling(strategy="random", rate=0.5))
    policy = resolve(project, SourceSettings())
    assert policy.sampling == project.sampling
    assert policy.source_rate_limit_per_minute is None


@pytest.mark.parametrize(
    "window",
    [
        {"start": "09:00", "end": "17:00"},
        {"start": "00:00", "end": "24:00"},
        {"start_minute": 0, "end_minute": 15},
        {"start_minute": 45, "end_minute": 60},
    ],
)
def test_valid_time_windows(window: dict[str, Any]) -> None:
    TimeWindow.model_validate(window)


@pytest.mark.parametrize(
    "window",
    [
        {},
        {"start": "09:00"},  # half a window
        {"start": "09:00", "end": "17:00", "start_minute": 0, "end_minute": 5},  # both kinds
        {"start": "17:00", "end": "09:00"},  # end before start
        {"start": "09:00", "end": "09:00"},
        {"start": "9am", "end": "17:00"},
        {"start": "09:00", "end": "25:00"},
        {"start_minute": 30, "end_minute": 10},
        {"start_minute": 60, "end_minute": 61},
    ],
)
def test_invalid_time_windows(window: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        TimeWindow.model_validate(window)


def test_window_spans_in_minutes() -> None:
    assert TimeWindow(start="09:30", end="17:00").span() == ("day", 570, 1020)
    assert TimeWindow(start_minute=5, end_minute=20).span() == ("hour", 5, 20)


@pytest.mark.parametrize(
    "name", ["retention_days", "session_window_minutes", "sampling", "cors_origins"]
)
def test_null_unsets_a_setting_that_has_a_default(name: str) -> None:
    assert parse_value(name, "null", source=False) is None
