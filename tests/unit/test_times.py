"""The one time parser (``analytics.events.times``): ISO 8601 in, aware UTC datetime out.

Rules from the module: a date alone is its midnight, a naive time is UTC, a ``+`` that a
query string turned into a space is read back as ``+``, and only 1900-01-01 <= t < 9000-01-01
is accepted (``out_of_range`` tells such a refusal from unreadable text).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from analytics.events.times import (
    MAX_TIME,
    MAX_US,
    MIN_TIME,
    MIN_US,
    InvalidTime,
    check_range_us,
    from_us,
    parse_instant,
    to_us,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-01-31T12:00:00Z", datetime(2024, 1, 31, 12, tzinfo=UTC)),
        ("2024-01-31T12:00:00+02:00", datetime(2024, 1, 31, 10, tzinfo=UTC)),
        ("2024-01-31T12:00:00-05:30", datetime(2024, 1, 31, 17, 30, tzinfo=UTC)),
        ("2024-01-31T01:00:00+02:00", datetime(2024, 1, 30, 23, tzinfo=UTC)),  # day before
        ("2024-01-31T12:00:00", datetime(2024, 1, 31, 12, tzinfo=UTC)),  # naive = UTC
        ("2024-01-31 12:00:00", datetime(2024, 1, 31, 12, tzinfo=UTC)),
        ("2024-01-31 12:00", datetime(2024, 1, 31, 12, tzinfo=UTC)),
        ("2024-01-31", datetime(2024, 1, 31, tzinfo=UTC)),  # date alone = midnight UTC
        ("2024-01-31T12:00:00.250Z", datetime(2024, 1, 31, 12, 0, 0, 250_000, tzinfo=UTC)),
        ("  2024-01-31T12:00:00Z \n", datetime(2024, 1, 31, 12, tzinfo=UTC)),
    ],
)
def test_iso_8601_forms(text: str, expected: datetime) -> None:
    parsed = parse_instant(text)
    assert parsed == expected
    assert parsed.utcoffset() == timedelta(0)


@pytest.mark.parametrize(
    "text",
    [
        "2024-01-31T12:00:00 02:00",  # ?t=2024-01-31T12:00:00+02:00 sent unencoded
        "2024-01-31 12:00:00 02:00",
        "2024-01-31T12:00:00+02:00",  # the same instant, properly encoded
    ],
)
def test_a_plus_lost_in_a_query_string_is_restored(text: str) -> None:
    assert parse_instant(text) == datetime(2024, 1, 31, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    "text", ["", "yesterday", "2024-13-01", "2024-02-30T00:00:00Z", "12:00", "2024-01-31T25:00"]
)
def test_unreadable_text_is_refused_as_invalid(text: str) -> None:
    with pytest.raises(InvalidTime) as caught:
        parse_instant(text)
    assert caught.value.out_of_range is False


def test_a_long_bad_value_is_cut_in_the_message() -> None:
    with pytest.raises(InvalidTime) as caught:
        parse_instant("x" * 500)
    assert len(str(caught.value)) < 150


@pytest.mark.parametrize(
    "text",
    [
        "1900-01-01T00:00:00Z",
        "1900-01-01",
        "1900-01-01T01:00:00+01:00",  # exactly the lower bound in UTC
        "8999-12-31T23:59:59.999999Z",
    ],
)
def test_the_accepted_years_include_their_bounds(text: str) -> None:
    assert MIN_TIME <= parse_instant(text) < MAX_TIME


@pytest.mark.parametrize(
    "text",
    [
        "1899-12-31T23:59:59Z",
        "1899-12-31",
        "1900-01-01T00:30:00+01:00",  # 1899-12-31T23:30 in UTC
        "0001-01-01T00:00:00Z",
        "0001-01-01T00:00:00+01:00",  # not even representable in UTC
        "9000-01-01T00:00:00Z",
        "8999-12-31T23:30:00-01:00",  # 9000-01-01T00:30 in UTC
        "9999-12-31T23:59:59-01:00",  # not representable in UTC
    ],
)
def test_times_outside_1900_to_8999_are_out_of_range(text: str) -> None:
    with pytest.raises(InvalidTime) as caught:
        parse_instant(text)
    assert caught.value.out_of_range is True


def test_microsecond_conversions_agree_with_the_bounds() -> None:
    assert to_us(MIN_TIME) == MIN_US
    assert to_us(MAX_TIME) == MAX_US
    assert to_us(datetime(1970, 1, 1, tzinfo=UTC)) == 0
    assert to_us(datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)) == -1
    moment = datetime(2024, 1, 31, 12, 0, 0, 123_456, tzinfo=UTC)
    assert to_us(moment) == 1_706_702_400_123_456
    assert from_us(to_us(moment)) == moment


def test_microsecond_range_check() -> None:
    assert check_range_us(MIN_US) == MIN_US
    assert check_range_us(MAX_US - 1) == MAX_US - 1
    for outside in (MIN_US - 1, MAX_US):
        with pytest.raises(InvalidTime) as caught:
            check_range_us(outside)
        assert caught.value.out_of_range
