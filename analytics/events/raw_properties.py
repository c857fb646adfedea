"""Properties kept as received: when the JSON text a client sent is already what we store.

``analytics.events.validation.properties_text`` parses nothing: it writes the parsed
object back with orjson. For most events that text equals the bytes the client sent,
and ``kept_text`` proves it without a parse, from rules on the text alone:

- no backslash: every string is written as it stands (orjson escapes only ``"``, ``\\``
  and control characters, which JSON forbids unescaped), and no key is spelled two ways;
- outside strings, only brackets, ``:``, ``,``, integers and ``true``/``false``/``null``:
  no whitespace, fractions or exponents, which orjson may write otherwise; no ``-0``
  (written ``0``) and no integer of 19 digits or more (it may not fit 64 bits);
- no string repeated anywhere (a repeated key would be dropped by a parse);
- at most ``max_depth`` brackets outside strings, and at most ``max_bytes`` bytes.

It answers None when a rule does not hold: the caller then parses and writes the object
as before. None never means "invalid", only "not proven".
"""

from __future__ import annotations

from analytics.events.long_integers import may_hold_long_integer

# Brackets, separators and integer characters: what may stand outside strings besides
# the three literals.
_STRUCTURE = b"{}[]:,-0123456789"


def kept_text(raw: bytes, max_bytes: int, max_depth: int) -> str | None:
    """``raw`` (a JSON object's text) as the text to store, when provably unchanged by a
    parse and orjson write and within the limits; None when not proven."""
    if not _plain(raw):
        return None
    return _within(raw, max_bytes, max_depth)


def kept_texts(raws: list[bytes], max_bytes: int, max_depth: int) -> list[str | None]:
    """``kept_text`` of each object text, the rules on the text outside strings checked
    once over all of them (a batch's properties are mostly alike)."""
    if _plain(b",".join(raws)):
        return [_within(raw, max_bytes, max_depth) for raw in raws]
    return [kept_text(raw, max_bytes, max_depth) for raw in raws]


def _plain(text: bytes) -> bool:
    """No escape, and outside strings nothing but brackets, separators, integers of at most
    18 digits other than ``-0``, and the three literals."""
    if b"\\" in text:
        return False
    outside = b"".join(text.split(b'"')[0::2])
    rest = outside.translate(None, _STRUCTURE)
    if rest and rest.replace(b"true", b"").replace(b"false", b"").replace(b"null", b""):
        return False  # whitespace, a fraction or an exponent
    if b"-0" in outside:
        return False
    return not may_hold_long_integer(outside)


def _within(raw: bytes, max_bytes: int, max_depth: int) -> str | None:
    """A plain object's text when within the limits and free of repeated strings."""
    if len(raw) > max_bytes:
        return None
    # Nesting deeper than max_depth takes more than 2 * max_depth bytes of brackets; the
    # count includes any inside strings, which can only make it refuse.
    if len(raw) > 2 * max_depth + 1 and raw.count(b"{") + raw.count(b"[") > max_depth:
        return None
    # One colon: at most one key, so none repeated.
    if raw.count(b":") > 1:
        strings = raw.split(b'"')[1::2]
        if len(set(strings)) < len(strings):
            return None
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return None
