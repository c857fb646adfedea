"""API keys (``analytics.projects.api_keys``): the two scopes by prefix, hashing, Bearer."""

from __future__ import annotations

import hashlib

import pytest

from analytics.projects.api_keys import KeyKind, bearer, hash_key, kind_of, new_key


@pytest.mark.parametrize("kind", list(KeyKind))
def test_new_keys_carry_their_scope_and_160_random_bits(kind: KeyKind) -> None:
    keys = {new_key(kind) for _ in range(50)}
    assert len(keys) == 50
    for key in keys:
        assert kind_of(key) is kind
        token = key.removeprefix("sa_priv_" if kind is KeyKind.PRIVATE else "sa_")
        assert len(token) == 40 and int(token, 16) >= 0  # 20 bytes in hex


def test_a_public_token_never_looks_private() -> None:
    # Hex tokens hold no "_", so "sa_" + token never starts with "sa_priv_".
    assert all(kind_of(new_key(KeyKind.PUBLIC)) is KeyKind.PUBLIC for _ in range(200))


@pytest.mark.parametrize(
    ("key", "kind"),
    [
        ("sa_abc", KeyKind.PUBLIC),
        ("sa_priv_abc", KeyKind.PRIVATE),
        ("sk_live_abc", None),
        ("SA_abc", None),
        ("", None),
    ],
)
def test_kind_by_prefix(key: str, kind: KeyKind | None) -> None:
    assert kind_of(key) is kind


def test_only_the_sha256_is_stored() -> None:
    key = "sa_0123456789abcdef"
    assert hash_key(key) == hashlib.sha256(key.encode()).digest()
    assert len(hash_key(key)) == 32
    assert hash_key(key) != hash_key(key + "0")


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer sa_abc", "sa_abc"),
        ("bearer sa_abc", "sa_abc"),
        ("Bearer   sa_abc  ", "sa_abc"),
        ("Bearer ", None),
        ("Basic c2FfYWJjOg==", None),
        ("sa_abc", None),
        ("", None),
        (None, None),
    ],
)
def test_bearer_token(header: str | None, token: str | None) -> None:
    assert bearer(header) == token
