"""Browser, operating system, device type and bot verdict from a User-Agent header.

Parsing uses ``ua-parser`` with its built-in regexes (run by RE2 when
``google-re2`` is installed, which it is); bots are what ua-parser calls a
``Spider`` plus anything matching the ``crawler-user-agents`` list (compiled
once into a single RE2 alternation, so one pass checks every pattern). Real
traffic repeats a few thousand distinct agents, so results are cached per
agent string: the regexes run once per new agent, not once per event.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, NamedTuple

import crawleruseragents
import re2
import ua_parser

DEVICE_TYPES = ("desktop", "mobile", "tablet", "bot", "other")

# Agents that carry no browser at all: command-line clients and HTTP libraries. The
# crawler list names most of them; these are checked too so the verdict does not
# depend on one list's version.
_TOOLS = (
    "curl/",
    "wget/",
    "python-requests",
    "python-urllib",
    "aiohttp/",
    "httpx/",
    "go-http-client",
    "okhttp/",
    "java/",
    "libwww-perl",
    "headlesschrome",
    "phantomjs",
)

_DESKTOP_OS = frozenset(
    {
        "Windows",
        "Mac OS X",
        "Linux",
        "Ubuntu",
        "Fedora",
        "Debian",
        "Chrome OS",
        "FreeBSD",
        "OpenBSD",
        "NetBSD",
        "Solaris",
        "Arch Linux",
        "Mint",
        "openSUSE",
        "Red Hat",
        "Gentoo",
        "CentOS",
        "Slackware",
    }
)
_TABLET_HINT = re.compile(r"iPad|Tablet|Kindle|Silk/|PlayBook|Nexus (?:7|9|10)\b|SM-[TX]\d", re.I)

# Stored columns are short text; an agent string can be as long as a header.
MAX_FIELD = 128


class Agent(NamedTuple):
    """What a User-Agent says (each field None when it says nothing)."""

    browser: str | None
    browser_version: str | None
    os: str | None
    os_version: str | None
    device_type: str | None
    is_bot: bool | None


NO_AGENT = Agent(None, None, None, None, None, None)


def _crawler_pattern() -> Any:
    """The crawler list as one RE2 alternation (patterns RE2 cannot run are left out)."""
    usable: list[str] = []
    for entry in crawleruseragents.CRAWLER_USER_AGENTS_DATA:
        pattern = entry["pattern"]
        try:
            re2.compile(pattern)
        except re2.error:
            continue
        usable.append(f"(?:{pattern})")
    return re2.compile("|".join(usable))


_CRAWLERS = _crawler_pattern()


def is_bot_agent(agent: str) -> bool:
    """True for a crawler, a monitor, an HTTP library or a headless browser."""
    lowered = agent.lower()
    if any(tool in lowered for tool in _TOOLS):
        return True
    return _CRAWLERS.search(agent) is not None


def _version(*parts: str | None) -> str | None:
    numbers = [p for p in parts if p]
    return ".".join(numbers)[:MAX_FIELD] if numbers else None


def _known(family: str | None) -> str | None:
    if not family or family == "Other":
        return None
    return family[:MAX_FIELD]


def _device_type(agent: str, os_family: str | None, device_family: str | None) -> str:
    if device_family == "Spider":
        return "bot"
    if _TABLET_HINT.search(agent) or (os_family == "Android" and "Mobile" not in agent):
        return "tablet"
    if os_family in ("iOS", "Android", "Windows Phone", "BlackBerry OS", "KaiOS") or (
        "Mobile" in agent or "iPhone" in agent
    ):
        return "mobile"
    if os_family in _DESKTOP_OS:
        return "desktop"
    return "other"


def parse_agent(agent: str | None) -> Agent:
    """Browser, OS, device type and bot verdict of a User-Agent string (cached per string).

    Only the first 1,024 characters are read (real agents are a few hundred), which
    also bounds the cache: 20,000 entries of at most 1 KiB.
    """
    if not agent:
        return NO_AGENT
    return cached_agent(agent[:1024])


@lru_cache(maxsize=20_000)
def cached_agent(agent: str) -> Agent:
    """``parse_agent`` of an agent already cut to 1,024 characters."""
    result = ua_parser.parse(agent)
    browser = result.user_agent
    system = result.os
    device = result.device
    os_family = _known(system.family) if system else None
    device_family = device.family if device else None
    bot = device_family == "Spider" or is_bot_agent(agent)
    device_type = "bot" if bot else _device_type(agent, os_family, device_family)
    return Agent(
        _known(browser.family) if browser else None,
        _version(browser.major, browser.minor) if browser else None,
        os_family,
        _version(system.major, system.minor) if system else None,
        device_type,
        bot,
    )
