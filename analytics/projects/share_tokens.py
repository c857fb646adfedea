"""Share-link tokens: ``sa_share_<token>``, a read-only pass to one project's stats.

A token is shown once, when the link is made; the database keeps its SHA-256 and
its first characters (the hint an operator revokes it by).
"""

from __future__ import annotations

import hashlib
import secrets

PREFIX = "sa_share_"
HINT_LENGTH = len(PREFIX) + 6


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(24)


def is_share_token(text: str | None) -> bool:
    return bool(text) and str(text).startswith(PREFIX)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_hint(token: str) -> str:
    return token[:HINT_LENGTH]
