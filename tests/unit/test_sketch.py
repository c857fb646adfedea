"""Distinct-count sketches: exact below the limit, bounded error above it."""

from __future__ import annotations

import random

from analytics.counting.sketch import EXACT_LIMIT, STANDARD_ERROR, Sketch, member_hash


def test_exact_up_to_the_limit_and_idempotent() -> None:
    sketch = Sketch()
    ids = [member_hash(f"user-{i}") for i in range(EXACT_LIMIT)]
    sketch.add_many(ids)
    sketch.add_many(ids[:500])  # a replay adds nothing
    assert sketch.is_exact
    assert sketch.cardinality() == EXACT_LIMIT
    again = Sketch.from_bytes(sketch.to_bytes())
    assert again.is_exact and again.cardinality() == EXACT_LIMIT


def test_turns_into_hll_past_the_limit() -> None:
    sketch = Sketch()
    sketch.add_many(member_hash(f"u{i}") for i in range(EXACT_LIMIT + 1))
    assert not sketch.is_exact
    assert abs(sketch.cardinality() - (EXACT_LIMIT + 1)) <= 3 * STANDARD_ERROR * EXACT_LIMIT


def test_one_million_distinct_users_within_the_stated_error() -> None:
    sketch = Sketch()
    n = 1_000_000
    sketch.add_many(member_hash(f"user-{i}") for i in range(n))
    estimate = sketch.cardinality()
    # 3 standard errors: the bound the README states (0.81 % each, 2.4 % in all).
    assert abs(estimate - n) / n <= 3 * STANDARD_ERROR, estimate


def test_no_bias_across_the_middle_range() -> None:
    # Where the classic estimator over-counts (2.5 to 5 times the register count).
    for n in (12_000, 30_000, 50_000, 80_000, 200_000):
        sketch = Sketch()
        sketch.add_many(member_hash(f"mid-{n}-{i}") for i in range(n))
        assert abs(sketch.cardinality() - n) / n <= 3 * STANDARD_ERROR, (n, sketch.cardinality())


def test_merge_of_parts_equals_the_whole() -> None:
    rng = random.Random(7)
    ids = [member_hash(str(rng.random())) for _ in range(30_000)]
    whole = Sketch()
    whole.add_many(ids)
    parts = [Sketch() for _ in range(3)]
    for i, h in enumerate(ids):
        parts[i % 3].add_many([h])
    merged = Sketch()
    for part in parts:
        merged.merge(Sketch.from_bytes(part.to_bytes()))
    assert merged.to_bytes() == whole.to_bytes()
    small = Sketch()
    small.add_many(ids[:100])
    small.merge(whole)  # exact into HLL
    assert small.cardinality() == whole.cardinality()


def test_empty_and_overlapping_exact_merge() -> None:
    a, b = Sketch(), Sketch()
    a.add_many([1, 2, 3])
    b.add_many([3, 4])
    a.merge(b)
    assert a.cardinality() == 4
    assert Sketch.from_bytes(None).cardinality() == 0
