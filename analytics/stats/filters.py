"""``filters``: ``visit:country==DE;event:page==/pricing|/about``.

``;`` joins filters with AND; within one filter ``|`` lists alternatives (OR). The
operators are ``==`` (is), ``!=`` (is not) and ``~`` (contains, case-insensitive).
A value may hold ``\\|`` or ``\\;`` for a literal bar or semicolon.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from analytics.errors import BadRequest
from analytics.stats.properties import NONE, Property, parse_property

MAX_FILTERS = 20
MAX_VALUES = 50
_OPERATORS = ("==", "!=", "~")
_SPLIT_AND = re.compile(r"(?<!\\);")
_SPLIT_OR = re.compile(r"(?<!\\)\|")


@dataclass(frozen=True, slots=True)
class Filter:
    prop: Property
    op: str
    values: tuple[str, ...]


def _bad(detail: str) -> BadRequest:
    return BadRequest(f"filters: {detail}", code="filters_invalid", field="filters")


def _unescape(text: str) -> str:
    return text.replace("\\|", "|").replace("\\;", ";")


def parse_filters(text: str | None) -> list[Filter]:
    """The filters of a request (400 naming ``filters`` when one is malformed)."""
    if not text:
        return []
    parts = [p for p in _SPLIT_AND.split(text) if p.strip()]
    if len(parts) > MAX_FILTERS:
        raise _bad(f"at most {MAX_FILTERS} filters")
    out: list[Filter] = []
    for part in parts:
        found = None
        for op in _OPERATORS:
            at = part.find(op)
            if at > 0 and (found is None or at < found[1]):
                found = (op, at)
        if found is None:
            raise _bad(f"{part[:60]!r} needs an operator: ==, != or ~")
        op, at = found
        name = part[:at].strip()
        try:
            prop = parse_property(name, "filters")
        except BadRequest as error:
            raise _bad(error.detail.removeprefix("filters: ")) from None
        values = tuple(_unescape(v) for v in _SPLIT_OR.split(part[at + len(op) :]))
        if not values or any(v == "" for v in values):
            raise _bad(f"{part[:60]!r} has an empty value")
        if len(values) > MAX_VALUES:
            raise _bad(f"at most {MAX_VALUES} values in one filter")
        out.append(Filter(prop, op, values))
    return out


def is_none(value: str) -> bool:
    """The value that stands for 'no value' (a NULL column)."""
    return value == NONE
