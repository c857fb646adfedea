"""The admin view's pure rules: when it is on, session cookies, CSRF tokens, same origin."""

from __future__ import annotations

from analytics.settings import Settings
from web.admin_auth import (
    MIN_TOKEN_LENGTH,
    Session,
    admin_token,
    csrf_ok,
    csrf_token,
    new_cookie,
    read_cookie,
    same_origin,
    token_matches,
)

TOKEN = "t" * 32
NOW = 1_800_000_000.0


def test_the_view_is_on_only_with_a_long_enough_token() -> None:
    assert admin_token(Settings()) is None
    assert admin_token(Settings(admin_token="x" * (MIN_TOKEN_LENGTH - 1))) is None
    assert admin_token(Settings(admin_token="x" * MIN_TOKEN_LENGTH)) == "x" * MIN_TOKEN_LENGTH


def test_token_comparison() -> None:
    assert token_matches(TOKEN, TOKEN)
    assert not token_matches(TOKEN, TOKEN[:-1])
    assert not token_matches(TOKEN, "")
    assert not token_matches(TOKEN, "sa_priv_" + "0" * 32)


def test_cookie_round_trip_expiry_and_tampering() -> None:
    value, session = new_cookie(TOKEN, NOW, hours=1)
    assert read_cookie(TOKEN, value, NOW + 10) == session
    assert session.expires == int(NOW) + 3600
    assert read_cookie(TOKEN, value, NOW + 3600) is None  # expired
    assert read_cookie("u" * 32, value, NOW) is None  # another token signs differently
    expires, nonce, signature = value.split(".")
    assert read_cookie(TOKEN, f"{int(expires) + 9999}.{nonce}.{signature}", NOW) is None
    assert read_cookie(TOKEN, f"{expires}.{'0' * 32}.{signature}", NOW) is None
    for broken in ("", "abc", "1.2", "x.y.z", None):
        assert read_cookie(TOKEN, broken, NOW) is None
    other, _ = new_cookie(TOKEN, NOW, hours=1)
    assert other != value  # a fresh nonce per sign-in


def test_csrf_token_belongs_to_its_session() -> None:
    _, mine = new_cookie(TOKEN, NOW, hours=1)
    _, theirs = new_cookie(TOKEN, NOW, hours=1)
    assert mine.nonce and theirs.nonce
    assert csrf_ok(TOKEN, mine, csrf_token(TOKEN, mine.nonce))
    assert not csrf_ok(TOKEN, mine, csrf_token(TOKEN, theirs.nonce))
    assert not csrf_ok(TOKEN, mine, None)
    assert not csrf_ok(TOKEN, mine, "")
    assert csrf_ok(TOKEN, Session(None, 0), None)  # Bearer: nothing ambient to forge


def test_same_origin() -> None:
    host = "stats.example.com"
    assert same_origin(host, "https://stats.example.com", None)
    assert same_origin("127.0.0.1:8000", "http://127.0.0.1:8000", None)
    assert same_origin(host, None, "https://stats.example.com/admin/")
    assert not same_origin(host, "https://evil.example", "https://stats.example.com/admin/")
    assert not same_origin(host, "null", None)
    assert not same_origin(host, None, None)
    assert not same_origin(host, "https://stats.example.com.evil.example", None)
    assert not same_origin(None, "https://stats.example.com", None)
