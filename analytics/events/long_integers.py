"""Whether JSON text may hold an integer of 19 or more digits.

Such an integer can lie outside [-2^63, 2^64), which orjson reads inexactly (as a float),
so every reader that relies on orjson looks first. Every digit mapped to "0" and
everything else to " ", one C pass and one substring search answer (~1 ns a byte, a
fifth of orjson's parse); a run inside a string also answers yes, which only costs the
caller a slower, exact path.
"""

from __future__ import annotations

_DIGITS = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_RUN = b"0" * 19


def may_hold_long_integer(text: bytes) -> bool:
    """True when ``text`` has a run of 19 or more digits anywhere."""
    return len(text) >= len(_RUN) and _RUN in text.translate(_DIGITS)
