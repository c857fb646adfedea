"""Structured logging: the JSON formatter, and ``configure`` in a process of its own."""

from __future__ import annotations

import io
import logging
import subprocess
import sys

import orjson

from analytics import logs


def test_json_formatter_fields() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("tests.logs.formatter")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("two\nlines %s", "here", extra={"project": "p1", "events": 3})
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (orjson.loads(line) for line in lines)
    assert first["message"] == "two\nlines here"
    assert first["level"] == "WARNING" and first["logger"] == "tests.logs.formatter"
    assert first["project"] == "p1" and first["events"] == 3
    assert first["ts"].endswith("+00:00") and "exc" not in first
    assert second["level"] == "ERROR" and "ValueError: boom" in second["exc"]


SCRIPT = """
import logging, sys, warnings
from analytics import logs
logs.configure("info", sys.argv[1])
logs.configure("info", sys.argv[1])  # twice: still one handler
logging.getLogger("probe").debug("hidden")
logging.getLogger("probe").info("hello %s", "you")
warnings.warn("careful")
raise SystemError("crash")
"""


def run_configured(fmt: str) -> list[str]:
    """stderr lines of a process that calls ``configure(fmt)``, logs, warns and crashes."""
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, fmt], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1 and result.stdout == ""
    return [line for line in result.stderr.splitlines() if line.strip()]


def test_configure_json_and_text() -> None:
    records = [orjson.loads(line) for line in run_configured("json")]
    assert [(r["logger"], r["level"]) for r in records] == [
        ("probe", "INFO"), ("py.warnings", "WARNING"), ("analytics", "CRITICAL"),
    ]  # fmt: skip
    assert records[0]["message"] == "hello you"
    assert "careful" in records[1]["message"]
    assert "SystemError: crash" in records[2]["exc"]

    text = run_configured("text")
    assert text[0].endswith("INFO    probe: hello you") and not text[0].startswith("{")
    assert "hidden" not in "\n".join(text)


def test_repeat_filter_lets_one_record_of_a_kind_through_per_window() -> None:
    from analytics.logs import RepeatFilter

    flt = RepeatFilter(window=10.0)

    def record(at: float, msg: str = "Unable connect to node %s") -> logging.LogRecord:
        rec = logging.LogRecord("aiokafka.conn", logging.ERROR, "x", 1, msg, (111,), None)
        rec.created = at
        return rec

    assert flt.filter(record(100.0))
    assert not flt.filter(record(101.0))
    assert not flt.filter(record(109.0))
    assert flt.filter(record(100.5, "another message %s"))  # another kind is not held back
    later = record(110.5)
    assert flt.filter(later)
    assert later.getMessage() == (
        "Unable connect to node 111 (2 more like this in the last 10 s were not logged)"
    )
    quiet = record(121.0)
    assert flt.filter(quiet)
    assert quiet.getMessage() == "Unable connect to node 111"  # nothing was held back since
