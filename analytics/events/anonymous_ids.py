"""Who sent an event: fallback user ids and derived session ids (SPEC §3)."""

from __future__ import annotations

import hashlib


def anonymous_user_id(ip: str | None, user_agent: str | None, salt: str) -> str:
    """Stable id for a client that sent none: hash of IP, User-Agent and the project salt."""
    material = f"{salt}\x1f{ip or ''}\x1f{user_agent or ''}".encode()
    return "anon_" + hashlib.blake2b(material, digest_size=12).hexdigest()


# Copied for each id: cheaper than building one with its arguments.
_SESSION_HASH = hashlib.blake2b(digest_size=12)

# Ids made lately, by (project, user, window minutes, window number): a batch usually
# holds one user's events in one window. Emptied when full, which costs less per event
# than an LRU's bookkeeping when most ids are new (a batch of many users).
_SESSIONS: dict[tuple[str, str, int, int], str] = {}
SESSIONS_KEPT = 8192


def derived_session_id(
    project_id: str, user_id: str | None, timestamp_us: int, window_minutes: int
) -> str | None:
    """Session id of the ``window_minutes`` window holding the event, per project and user."""
    if user_id is None:
        return None
    window = timestamp_us // (window_minutes * 60_000_000)
    key = (project_id, user_id, window_minutes, window)
    known = _SESSIONS.get(key)
    if known is not None:
        return known
    digest = _SESSION_HASH.copy()
    digest.update(f"{project_id}\x1f{user_id}\x1f{window_minutes}\x1f{window}".encode())
    made = "s_" + digest.hexdigest()
    if len(_SESSIONS) >= SESSIONS_KEPT:
        _SESSIONS.clear()
    _SESSIONS[key] = made
    return made
