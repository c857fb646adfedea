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

# Brackets, separators and integer characters: what may stand outside strings besides
# the three literals.
_STRUCTURE = b"{}[]:,-0123456789"
_DIGITS = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_LONG_RUN = b"0" * 19


def kept_text(raw: bytes, max_bytes: int, max_depth: int) -> str | None:
    """``raw`` (a JSON object's text) as the text to store, when provably unchanged by a
    parse and orjson write and within the limits; None when not proven."""
    if len(raw) > max_bytes or b"\\" in raw:
        return None
    pieces = raw.split(b'"')
    outside = b"".join(pieces[0::2])
    rest = outside.translate(None, _STRUCTURE)
    if rest and rest.replace(b"true", b"").replace(b"false", b"").replace(b"null", b""):
        return None  # whitespace, a fraction or an exponent
    if b"-0" in outside:
        return None
    if len(outside) >= len(_LONG_RUN) and _LONG_RUN in outside.translate(_DIGITS):
        return None
    if len(outside) - len(outside.translate(None, b"{[")) > max_depth:
        return None
    strings = pieces[1::2]
    if len(strings) > 1 and len(set(strings)) < len(strings):
        return None
    try:
        return raw.decode()
    except UnicodeDecodeError:
        return None
