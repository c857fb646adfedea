"""Browser, OS, device type and bot verdict for known user agents."""

from __future__ import annotations

import pytest

from analytics.enrich.useragents import DEVICE_TYPES, cached_agent, is_bot_agent, parse_agent

CHROME_WINDOWS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/120.0.0.0 Safari/537.36"
)
SAFARI_IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15"
    " (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
)
ANDROID_TABLET = (
    "Mozilla/5.0 (Linux; Android 13; SM-X700) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/120.0.0.0 Safari/537.36"
)
ANDROID_PHONE = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/120.0.0.0 Mobile Safari/537.36"
)
IPAD = (
    "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko)"
    " Version/16.6 Mobile/15E148 Safari/604.1"
)
FIREFOX_LINUX = "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


@pytest.mark.parametrize(
    ("agent", "expected"),
    [
        (CHROME_WINDOWS, ("Chrome", "120.0", "Windows", "10", "desktop", False)),
        (SAFARI_IPHONE, ("Mobile Safari", "17.1", "iOS", "17.1", "mobile", False)),
        (ANDROID_TABLET, ("Chrome", "120.0", "Android", "13", "tablet", False)),
        (ANDROID_PHONE, ("Chrome Mobile", "120.0", "Android", "14", "mobile", False)),
        (IPAD, ("Mobile Safari", "16.6", "iOS", "16.6", "tablet", False)),
        (FIREFOX_LINUX, ("Firefox", "121.0", "Linux", None, "desktop", False)),
        (GOOGLEBOT, ("Googlebot", "2.1", None, None, "bot", True)),
        ("curl/8.5.0", ("curl", "8.5", None, None, "bot", True)),
    ],
)
def test_known_agents(agent: str, expected: tuple[object, ...]) -> None:
    assert tuple(parse_agent(agent)) == expected


def test_bots_from_the_crawler_list() -> None:
    for agent in (
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
        "python-requests/2.31.0",
        "UptimeRobot/2.0 (http://www.uptimerobot.com/)",
    ):
        assert is_bot_agent(agent), agent
        assert parse_agent(agent).device_type == "bot"
    assert not is_bot_agent(CHROME_WINDOWS)
    assert not is_bot_agent(SAFARI_IPHONE)


def test_no_agent_says_nothing() -> None:
    assert tuple(parse_agent(None)) == (None,) * 6
    assert tuple(parse_agent("")) == (None,) * 6


def test_device_type_is_one_of_the_named_values() -> None:
    unknown = parse_agent("SomethingNew/1.0")
    assert unknown.device_type in DEVICE_TYPES
    assert unknown.device_type == "other" and unknown.is_bot is False


def test_results_are_cached_per_agent() -> None:
    before = cached_agent.cache_info().hits
    parse_agent(CHROME_WINDOWS)
    parse_agent(CHROME_WINDOWS)
    assert cached_agent.cache_info().hits >= before + 1


def test_a_huge_agent_is_read_in_part() -> None:
    agent = CHROME_WINDOWS + " x" * 50_000
    assert parse_agent(agent).browser == "Chrome"
    assert parse_agent(agent) is cached_agent(agent[:1024])  # the cache holds the cut key
