"""Distinct-count sketches: exact below the limit, bounded error above it."""

from __future__ import annotations

import random

import pytest

from analytics.counting.sketch import (
    EXACT_LIMIT,
    STANDARD_ERROR,
    Sketch,
    Union,
    member_hash,
    merge_stored,
)


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


def test_stated_error_and_size() -> None:
    assert STANDARD_ERROR == 1.04 / 128  # 0.81 % with 2^14 registers, as the README says
    assert EXACT_LIMIT == 10_000


def test_wire_form() -> None:
    exact = Sketch()
    assert exact.to_bytes() == b"E"
    exact.add_many([3, 1, 2, 2])
    assert exact.to_bytes() == b"E" + b"".join(n.to_bytes(8, "little") for n in (1, 2, 3))
    hll = Sketch()
    hll.add_many(member_hash(f"w{i}") for i in range(EXACT_LIMIT + 1))
    data = hll.to_bytes()
    assert data[:1] == b"H" and len(data) == 1 + 2**14


def test_empty_forms_and_unknown_kinds() -> None:
    assert Sketch.from_bytes(b"").cardinality() == 0
    assert Sketch.from_bytes(b"E").is_exact
    with pytest.raises(ValueError, match="unknown sketch kind"):
        Sketch.from_bytes(b"Xabc")


def test_hll_round_trip_and_replay() -> None:
    ids = [member_hash(f"r{i}") for i in range(25_000)]
    sketch = Sketch()
    sketch.add_many(ids)
    data = sketch.to_bytes()
    again = Sketch.from_bytes(data)
    assert not again.is_exact
    assert again.to_bytes() == data
    assert again.cardinality() == sketch.cardinality()
    again.add_many(ids[:5000])  # a replayed batch
    assert again.to_bytes() == data


def test_merge_is_symmetric_and_leaves_the_other_alone() -> None:
    big, small = Sketch(), Sketch()
    big.add_many(member_hash(f"b{i}") for i in range(20_000))
    small.add_many(member_hash(f"s{i}") for i in range(50))
    big_bytes, small_bytes = big.to_bytes(), small.to_bytes()
    left = Sketch.from_bytes(big_bytes)
    left.merge(small)
    right = Sketch.from_bytes(small_bytes)
    right.merge(big)
    assert left.to_bytes() == right.to_bytes()
    assert not right.is_exact
    assert (big.to_bytes(), small.to_bytes()) == (big_bytes, small_bytes)


def test_exact_merge_past_the_limit_turns_into_hll() -> None:
    a, b = Sketch(), Sketch()
    a.add_many(member_hash(f"a{i}") for i in range(6000))
    b.add_many(member_hash(f"b{i}") for i in range(6000))
    a.merge(b)
    assert not a.is_exact
    assert abs(a.cardinality() - 12_000) <= 3 * STANDARD_ERROR * 12_000


def test_member_hash_is_a_stable_64_bit_number() -> None:
    assert member_hash("user-1") == member_hash("user-1")
    assert member_hash("user-1") != member_hash("user-2")
    assert all(0 <= member_hash(f"h{i}") < 2**64 for i in range(1000))


def test_merging_into_a_stored_sketch_reports_only_changes() -> None:
    sketch = Sketch()
    sketch.add_many([5, 3, 9, 1])
    unordered = sketch.to_bytes(canonical=False)
    assert sorted(unordered[1:][i : i + 8] for i in range(0, 32, 8)) == sorted(
        n.to_bytes(8, "little") for n in (1, 3, 5, 9)
    )
    assert Sketch.from_bytes(unordered).to_bytes() == sketch.to_bytes()
    # The same members again: nothing to rewrite; one new member: the new (sorted) bytes.
    assert merge_stored(unordered, {9, 1}) == (None, 4)
    data, count = merge_stored(unordered, {7, 1})
    assert count == 5 and data == Sketch.from_bytes(b"E" + b"".join(
        n.to_bytes(8, "little") for n in (1, 3, 5, 7, 9))).to_bytes()  # fmt: skip
    # Nothing stored yet: always bytes, even for no member.
    assert merge_stored(None, set()) == (b"E", 0)
    # A HyperLogLog is rewritten only when a register moved.
    hll = Sketch()
    hll.add_many(member_hash(f"h{i}") for i in range(EXACT_LIMIT + 1))
    stored = hll.to_bytes()
    assert merge_stored(stored, {member_hash("h1")}) == (None, hll.cardinality())
    assert merge_stored(None, [member_hash(f"h{i}") for i in range(EXACT_LIMIT + 1)]) == (
        stored,
        hll.cardinality(),
    )


def test_merging_into_a_stored_sketch_equals_the_sketch_merge() -> None:
    rng = random.Random(5)
    pool = [rng.getrandbits(64) for _ in range(30_000)]
    cases = [
        (None, pool[:10]),
        (pool[:10], pool[5:20]),
        (pool[:6_000], pool[4_000:10_000]),  # exactly the limit
        (pool[:6_000], pool[4_000:10_001]),  # one past it
        (pool[:20_000], pool[15_000:30_000]),  # a HyperLogLog gaining members
        (pool[:20_000], pool[:100]),  # a HyperLogLog gaining nothing
        (pool[:3], []),
        ([], pool[:5]),  # an empty stored set
        ([], []),
    ]
    for before, added in cases:
        old = None
        if before is not None:
            start = Sketch()
            start.add_many(before)
            old = start.to_bytes(canonical=False)
        want = Sketch.from_bytes(old)
        want.add_many(added)
        data, count = merge_stored(old, set(added))
        assert count == want.cardinality()
        assert Sketch.from_bytes(data or old).to_bytes() == want.to_bytes()
        assert (data is None) == (
            old is not None and Sketch.from_bytes(old).to_bytes() == want.to_bytes()
        )


def test_a_union_of_stored_sketches_counts_as_merging_them() -> None:
    rng = random.Random(11)
    pool = [rng.getrandbits(64) for _ in range(60_000)]
    cases = [
        [pool[:10], pool[5:20]],  # small exact parts, overlapping
        [pool[:6_000], pool[4_000:10_000]],  # exactly the limit
        [pool[:6_000], pool[4_000:10_001]],  # one past it
        [pool[:30_000], pool[:500]],  # HyperLogLog then exact
        [pool[:500], pool[20_000:60_000], pool[100:9_000]],  # exact, HLL, exact
        [],
    ]
    for parts in cases:
        whole = Sketch()
        union = Union()
        for members in parts:
            part = Sketch()
            part.add_many(members)
            whole.merge(Sketch.from_bytes(part.to_bytes()))
            union.add(part.to_bytes())
        union.add(None)
        assert union.cardinality() == whole.cardinality()
