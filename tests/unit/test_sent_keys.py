"""The confirm pass's memory of sent events (``analytics.pipeline.confirm.SentKeys``):
bounded, oldest entries forgotten first, a re-sent entry counted once."""

from __future__ import annotations

from analytics.pipeline.confirm import SentKeys


def keys(n: int, tag: str) -> list[tuple[str, str]]:
    return [("p", f"{tag}-{i}") for i in range(n)]


def test_entries_are_kept_until_forgotten() -> None:
    sent = SentKeys(limit=100)
    sent.remember(b"1-0", keys(3, "a"))
    sent.remember(b"2-0", keys(2, "b"))
    assert len(sent) == 5 and sent.get(b"1-0") == keys(3, "a")
    sent.remember(b"1-0", keys(3, "a"))  # sent again (a re-send): not counted twice
    assert len(sent) == 5
    sent.forget([b"1-0", b"9-0"])
    assert sent.get(b"1-0") is None and len(sent) == 2


def test_past_the_limit_the_oldest_entries_go() -> None:
    sent = SentKeys(limit=10)
    for i in range(5):
        sent.remember(f"{i}-0".encode(), keys(4, str(i)))
    assert len(sent) <= 10
    assert sent.get(b"0-0") is None and sent.get(b"4-0") == keys(4, "4")
    assert sent.get(b"3-0") is not None  # 8 kept of 20: the newest two entries
