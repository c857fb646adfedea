"""Instants: the one parser for event times, query parameters and command-line options.

The rules, the same everywhere:

- ISO 8601 as ``datetime.fromisoformat`` reads it: ``2024-01-31``,
  ``2024-01-31T12:00:00Z``, ``2024-01-31 12:00:00.123+02:00`` …; a date alone is
  its midnight;
- a time without a zone is UTC; the answer is always an aware UTC datetime;
- a ``+`` that an unencoded query string turned into a space is read as ``+``;
- only years 1900 to 8999 (``MIN_TIME`` ≤ t < ``MAX_TIME``): no analytics event
  is older, and the bound keeps every bucket, partition and clock-skew sum far
  from the calendar's limits.

``InvalidTime`` carries the reason; callers turn it into their own error (a 400
naming the field, a CLI usage error).
"""

from __future__ import annotations

from datetime import UTC, datetime

MIN_TIME = datetime(1900, 1, 1, tzinfo=UTC)
MAX_TIME = datetime(9000, 1, 1, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MIN_US = -2_208_988_800_000_000  # MIN_TIME in epoch microseconds
MAX_US = 221_845_392_000_000_000  # MAX_TIME in epoch microseconds


_TOO_OLD = "is before 1900-01-01; times that old are not accepted"
_TOO_LATE = "is after the year 8999; times that late are not accepted"


class InvalidTime(ValueError):
    """Text that is not an instant under the rules above; ``str()`` says why.

    ``out_of_range`` tells a well-formed time outside the accepted years from bad text.
    """

    def __init__(self, reason: str, *, out_of_range: bool = False) -> None:
        super().__init__(reason)
        self.out_of_range = out_of_range


def to_us(moment: datetime) -> int:
    """Microseconds since the epoch of an aware datetime."""
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(micros: int) -> datetime:
    """Aware UTC datetime from microseconds since the epoch."""
    return datetime.fromtimestamp(micros / 1_000_000, tz=UTC)


def parse_instant(text: str) -> datetime:
    """An ISO 8601 instant as an aware UTC datetime; ``InvalidTime`` otherwise."""
    value = text.strip()
    if "T" in value or ":" in value:
        value = value.replace(" ", "+") if "T" in value else _restore_plus(value)
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidTime(f"{text[:64]!r} is not an ISO 8601 datetime") from exc
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment
    try:
        moment = moment.astimezone(UTC)
    except OverflowError as exc:
        raise InvalidTime(f"{text[:64]!r} is out of range", out_of_range=True) from exc
    check_range(moment)
    return moment


def check_range(moment: datetime) -> datetime:
    """``moment`` when it lies in [MIN_TIME, MAX_TIME); ``InvalidTime`` otherwise."""
    check_range_us(to_us(moment))
    return moment


def check_range_us(micros: int) -> int:
    """``micros`` when it lies in [MIN_US, MAX_US); ``InvalidTime`` otherwise."""
    if micros < MIN_US:
        raise InvalidTime(_TOO_OLD, out_of_range=True)
    if micros >= MAX_US:
        raise InvalidTime(_TOO_LATE, out_of_range=True)
    return micros


def _restore_plus(value: str) -> str:
    """``2024-01-31 12:00:00 02:00`` (a query's lost '+') → ``…12:00:00+02:00``."""
    date, sep, rest = value.partition(" ")
    if sep and " " in rest:
        clock, _, zone = rest.partition(" ")
        return f"{date} {clock}+{zone}"
    return value
