"""The shared look for integers orjson may read inexactly (``analytics.events.long_integers``)."""

from __future__ import annotations

from analytics.events.long_integers import may_hold_long_integer


def test_a_run_of_19_digits_anywhere_counts() -> None:
    assert not may_hold_long_integer(b'{"n": 123456789012345678}')  # 18 digits
    assert may_hold_long_integer(b'{"n": 1234567890123456789}')  # 19
    assert may_hold_long_integer(b'{"s": "x1234567890123456789"}')  # inside a string too
    assert not may_hold_long_integer(b"1234567890 123456789")  # two runs, neither long
    assert not may_hold_long_integer(b"")
