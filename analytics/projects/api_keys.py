"""API keys: generation, hashing and scope.

A public key ``sa_<token>`` may only ingest, a private key ``sa_priv_<token>``
may only read. Tokens are 160 random bits in hex (no ``_``, so a public token
can never look like a private prefix). Only the SHA-256 of a key is stored.
"""

from __future__ import annotations

import hashlib
import secrets
from enum import StrEnum

PUBLIC_PREFIX = "sa_"
PRIVATE_PREFIX = "sa_priv_"


class KeyKind(StrEnum):
    """The two scopes a key can have."""

    PUBLIC = "public"
    PRIVATE = "private"


def new_key(kind: KeyKind) -> str:
    """A fresh random key of the given kind."""
    prefix = PRIVATE_PREFIX if kind is KeyKind.PRIVATE else PUBLIC_PREFIX
    return prefix + secrets.token_hex(20)


def hash_key(key: str) -> bytes:
    """What the database stores and looks keys up by."""
    return hashlib.sha256(key.encode()).digest()


def bearer(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value, or None."""
    scheme, _, value = (authorization or "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def kind_of(key: str) -> KeyKind | None:
    """The scope a key claims by its prefix, or None when it is not ours."""
    if key.startswith(PRIVATE_PREFIX):
        return KeyKind.PRIVATE
    if key.startswith(PUBLIC_PREFIX):
        return KeyKind.PUBLIC
    return None
