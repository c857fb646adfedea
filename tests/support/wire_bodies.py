"""Random batch bodies for the fast-path differential test (``tests/unit/test_wire.py``).

Each body is JSON text built piece by piece, so it can hold what a parse and re-dump
would hide: several spellings of one value (escapes, whitespace, ``1.50``, ``-0``),
repeated keys, integers beyond 64 bits, numbers too large for a double, invalid UTF-8,
NULs, and values of every type in every field. Most events are valid, so the fast path
is taken often; the rest are near a rule's edge on either side.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from typing import Any

import orjson

from tests.support.events import SERVER_NOW_US

NOW_S = SERVER_NOW_US // 1_000_000


class Text:
    """JSON text used as it stands."""

    def __init__(self, text: str) -> None:
        self.text = text


def encode(value: Any, rng: random.Random, *, style: str | None = None) -> str:
    """``value`` as JSON text in one of several spellings (``Text`` verbatim)."""
    style = style or rng.choice(["orjson", "orjson", "orjson", "ascii", "spaced", "pretty"])
    if isinstance(value, Text):
        return value.text
    if isinstance(value, dict):
        sep, colon = (",", ":") if style in ("orjson", "ascii") else (", ", ": ")
        items = [
            f"{encode(str(k), rng, style=style)}{colon}{encode(v, rng, style=style)}"
            for k, v in value.items()
        ]
        return "{" + sep.join(items) + "}"
    if isinstance(value, list):
        sep = "," if style in ("orjson", "ascii") else ", "
        return "[" + sep.join(encode(v, rng, style=style) for v in value) + "]"
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)  # orjson writes 64 bits at most; JSON integers have one spelling
    if style == "orjson":
        return orjson.dumps(value).decode()
    return json.dumps(value, ensure_ascii=style == "ascii")


TEXTS = [
    "page_view",
    "signup",
    "é",
    "日本語",
    "😀" * 3,
    "a b",
    "a/b",
    "<script>",
    "\u2028",
    "\x7f",
    "tab\there",
    'q"uote',
    "back\\slash",
]


def text(rng: random.Random, limit: int) -> Any:
    roll = rng.random()
    if roll < 0.70:
        return rng.choice(TEXTS) + str(rng.randint(0, 99))
    return rng.choice(
        [
            "x" * limit,
            "x" * (limit + 1),
            "é" * limit,
            "😀" * limit,
            "😀" * (limit + 1),
            "",
            None,
            5,
            1.5,
            True,
            [],
            {},
            "a\x00b",
            Text('"\\u0061bc"'),
            Text('"\\ud800"'),
            Text('"\\ud83d\\ude00"'),
        ]
    )


def leaf(rng: random.Random) -> Any:
    return rng.choice(
        [
            0,
            1,
            -1,
            42,
            2**53,
            2**63 - 1,
            2**63,
            2**64 - 1,
            2**64,
            -(2**63),
            -(2**63) - 1,
            10**30,
            0.1,
            1.5,
            -2.25,
            1e21,
            1e-7,
            True,
            False,
            None,
            "",
            "v",
            "é",
            "😀",
            "a\x00b",
            "line\nbreak",
            "/path",
            Text("-0"),
            Text("1.50"),
            Text("1E5"),
            Text("1e400"),
            Text("-1e400"),
            Text("1e-400"),
            Text('"\\/"'),
            Text('"\\u00e9"'),
            Text('"\\u0000"'),
            Text('"\\ud83d\\u00e9"'),
            Text('"\\ude00"'),
            Text('"\\ud83dx"'),
            Text('"\\ud83d\\uDE00"'),
            Text('"\\ufffe"'),
            Text("123456789012345678"),
            Text("1234567890123456789"),
        ]
    )


def tree(rng: random.Random, depth: int) -> Any:
    if depth <= 1 or rng.random() < 0.3:
        return leaf(rng)
    if rng.random() < 0.7:
        return {f"k{rng.randint(0, 6)}": tree(rng, depth - 1) for _ in range(rng.randint(0, 4))}
    return [tree(rng, depth - 1) for _ in range(rng.randint(0, 3))]


def nested(depth: int) -> Any:
    value: Any = 1
    for level in range(depth - 1):
        value = {"n": value} if level % 2 else [value]
    return {"n": value}


def properties(rng: random.Random, max_bytes: int, max_depth: int) -> Any:
    roll = rng.random()
    if roll < 0.45:
        return {
            "i": rng.randint(0, 1000),
            "path": f"/p/{rng.randint(0, 9)}",
            "title": "Hello world",
        }
    if roll < 0.65:
        return {f"k{i}": tree(rng, 4) for i in range(rng.randint(0, 5))}
    return rng.choice(
        [
            None,
            {},
            [],
            "text",
            3,
            nested(max_depth),
            nested(max_depth + 1),
            nested(max_depth - 1),
            {"pad": "x" * (max_bytes - 10)},
            {"pad": "x" * (max_bytes - 11)},
            {"pad": "x" * (max_bytes - 9)},
            {"pad": "é" * ((max_bytes - 10) // 2)},
            Text('{"a":1,"a":2}'),
            Text('{"a":1,"b":{"a":2}}'),
            Text('{"a":"b","c":"b"}'),
            Text('{ "a" : 1 }'),
            Text('{"a":[1,2 ,3]}'),
            Text('{"a":-0}'),
            Text('{"a":1.0}'),
            Text('{"a":1e400}'),
            Text('{"a":"\\ud800"}'),
            Text('{"a":"\\u0000"}'),
            Text('{"\\u0000":1}'),
            Text('{"a":18446744073709551616}'),
            Text('{"a":-9223372036854775809}'),
            Text('{"a":123456789012345678901234567890}'),
            Text(
                '{"a":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}'
            ),
            Text('{"{[{[":"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}'),
            Text('{"a":true,"b":false,"c":null}'),
            Text('{"a":tru}'),
        ]
    )


def instant(rng: random.Random) -> Any:
    return rng.choice(
        [
            None,
            "2026-05-01T12:00:00Z",
            "2026-05-01T12:00:00.123456+02:00",
            "2026-05-01 12:00:00",
            "2026-05-01",
            "2026-05-01T12:00:00 02:00",
            "  2026-05-01T12:00:00Z ",
            "1899-12-31T23:59:59Z",
            "1900-01-01T00:00:00Z",
            "8999-12-31T23:59:59Z",
            "9999-01-01T00:00:00Z",
            "not a time",
            "",
            "1700000000",
            NOW_S,
            NOW_S + 0.5,
            NOW_S - 3600,
            NOW_S + 3 * 86_400,
            NOW_S + 3600,
            -2_208_988_801,
            0,
            10**20,
            1.7976931348623157e308,
            True,
            [],
            {},
            Text("1e400"),
            Text(f"{NOW_S}.250"),
            Text(f"{NOW_S}e0"),
        ]
    )


Field = Callable[[random.Random, int, int], Any]
FIELDS: dict[str, tuple[float, Field]] = {
    "event_name": (0.97, lambda rng, b, d: text(rng, 255)),
    "event_source": (0.97, lambda rng, b, d: text(rng, 255)),
    "event_id": (
        0.8,
        lambda rng, b, d: text(rng, 128) if rng.random() < 0.2 else f"id-{rng.random()}",
    ),
    "user_id": (0.6, lambda rng, b, d: text(rng, 255)),
    "session_id": (0.3, lambda rng, b, d: text(rng, 255)),
    "properties": (0.8, lambda rng, b, d: properties(rng, b, d)),
    "timestamp": (0.5, lambda rng, b, d: instant(rng)),
    "sent_at": (0.08, lambda rng, b, d: instant(rng)),
    "api_key": (0.03, lambda rng, b, d: "sa_x"),
    "extra": (0.03, lambda rng, b, d: leaf(rng)),
}


VALID_INSTANTS = [
    "2026-02-01T12:00:00Z",
    "2026-02-01 12:00:00.5+02:00",
    "2026-02-01",
    "1990-01-01T00:00:00Z",
    NOW_S,
    NOW_S + 0.5,
    NOW_S - 3600,
    NOW_S + 3600,
]


def clean_value(rng: random.Random, name: str, max_bytes: int, max_depth: int) -> Any:
    """A value the field accepts, at its limits now and then."""
    if name in ("event_name", "event_source", "user_id", "session_id"):
        value: str = rng.choice([*TEXTS, "x" * 255, "😀" * 255, "é" * 255])
        return value if len(value) == 255 else value + str(rng.randint(0, 99))
    if name == "event_id":
        return rng.choice([f"id-{rng.random()}", "x" * 128, "é" * 128, ""])
    if name == "properties":
        return rng.choice(
            [
                {"i": rng.randint(0, 1000), "path": f"/p/{rng.randint(0, 9)}", "t": "Hello world"},
                {"k": {"n": [1, 2, {"deep": None}]}, "b": True, "f": False},
                {f"k{i}": tree(rng, 3) for i in range(rng.randint(0, 4))},
                nested(max_depth),
                {"pad": "x" * (max_bytes - 10)},
                None,
                {},
            ]
        )
    return rng.choice(VALID_INSTANTS)


def event(rng: random.Random, max_bytes: int, max_depth: int, clean: bool) -> str:
    """One event's JSON text; ``clean`` keeps to the usual fields and valid values."""
    pairs: list[tuple[str, Any]] = []
    for name, (chance, make) in FIELDS.items():
        if clean and name in ("api_key", "extra"):
            continue
        if rng.random() < chance:
            if clean:
                value = clean_value(rng, name, max_bytes, max_depth)
            else:
                value = make(rng, max_bytes, max_depth)
            pairs.append((name, value))
    if clean and not any(n == "event_name" for n, _ in pairs):
        pairs.append(("event_name", "ev"))
    if clean and not any(n == "event_source" for n, _ in pairs):
        pairs.append(("event_source", "src"))
    if rng.random() < 0.02 and pairs:
        pairs.append(rng.choice(pairs))  # a repeated key: the last one counts
    style = rng.choice(["orjson", "orjson", "orjson", "ascii", "spaced"])
    colon = ":" if style in ("orjson", "ascii") else ": "
    return (
        "{"
        + ",".join(f"{json.dumps(k)}{colon}{encode(v, rng, style=style)}" for k, v in pairs)
        + "}"
    )


def body(rng: random.Random, max_bytes: int, max_depth: int) -> bytes:
    """A batch body: mostly well formed, sometimes broken at the envelope or byte level."""
    clean = rng.random() < 0.6
    events = [event(rng, max_bytes, max_depth, clean) for _ in range(rng.randint(0, 12))]
    parts = ['"events":[' + ",".join(events) + "]"]
    if rng.random() < 0.15:
        parts.append('"sent_at":' + encode(instant(rng), rng))
    if rng.random() < 0.05:
        parts.append('"api_key":' + encode(rng.choice(["sa_key", 5, None]), rng))
    if rng.random() < 0.03:
        parts.append('"other":1')
    if rng.random() < 0.02:
        parts.append('"events":[]')
    rng.shuffle(parts)
    text_ = "{" + ",".join(parts) + "}"
    if rng.random() < 0.1:
        text_ = " \n" + text_.replace(",", " ,\t") + "\r\n"
    raw = text_.encode()
    roll = rng.random()
    if roll < 0.02:
        raw = raw.replace(b"e", b"\xff", 1)
    elif roll < 0.03:
        raw = raw + b"x"
    elif roll < 0.04:
        raw = b'{"events":{}}'
    elif roll < 0.05:
        raw = b'[{"events":[]}]'
    elif roll < 0.06:
        raw = b'{"events":[null,1,"x"]}'
    elif roll < 0.065:
        raw = raw.replace(b"a", b"\xed\xa0\x80", 1)
    elif roll < 0.08:
        # A member a later one of the same key replaces, holding what orjson refuses.
        hidden = rng.choice([b'"properties"', b'"propertie\\u0073"'])
        raw = raw.replace(b'"event_name":', hidden + b':{"h":1e400},"event_name":', 1)
    return raw
