"""The edge's garbage-collector settings (web.heap)."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from web import heap


@pytest.fixture
def restored_gc() -> Iterator[None]:
    thresholds = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*thresholds)


def test_settle_freezes_startup_objects_and_raises_the_young_threshold(restored_gc: None) -> None:
    made_at_startup = [{"k": i} for i in range(100)]
    gc.unfreeze()
    heap.settle()
    assert gc.get_threshold() == (heap.GEN0, heap.GEN1, heap.GEN2)
    assert heap.GEN0 > 700
    # Everything alive at settle() is in the permanent generation, so no collection walks it.
    assert gc.get_freeze_count() >= len(made_at_startup)
    assert not any(o is made_at_startup for o in gc.get_objects())


def test_cycles_made_after_settle_are_still_collected(restored_gc: None) -> None:
    heap.settle()

    class Node:
        pass

    a, b = Node(), Node()
    a.other, b.other = b, a  # type: ignore[attr-defined]
    gone = weakref.ref(a)
    del a, b
    gc.collect()
    assert gone() is None
