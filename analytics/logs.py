"""Log output for every process: one JSON object per line, or readable text.

``LOG_FORMAT=json`` (the compose file sets it) makes each record one line on stderr with
``ts`` (UTC, ISO 8601, milliseconds), ``level``, ``logger``, ``message``, ``exc`` (the
formatted traceback, when there is one) and every field passed with ``extra=``; anything
else is text. The edge and ``make run`` call ``configure`` at start-up. The faust worker
sets up logging itself when it starts (it clears the root handlers and installs its own),
so ``configure_worker`` hands faust the JSON formatter through its ``logging_config``
instead: faust then installs exactly one handler, ours, and no line is written twice.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import orjson

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"

# Attributes every LogRecord has; whatever else a record carries came from ``extra=``.
_STANDARD = frozenset(
    vars(logging.LogRecord("x", logging.INFO, "x", 0, "x", None, None)).keys()
) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines inside values are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and key not in out:
                out[key] = value
        return orjson.dumps(out, default=repr).decode()


def _formatter(fmt: str) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT)


def configure(level: str, fmt: str) -> None:
    """Send every record at ``level`` or above to stderr, as JSON lines or as text.

    Replaces the root logger's handlers, so calling it twice does not duplicate lines, and
    routes Python warnings (and, for JSON, an uncaught exception) through the same handler.
    ``level`` is a name (``info``, ``DEBUG``); ``fmt`` is ``json`` or anything else for text.
    """
    # The process's real stderr: faust's command runner may have redirected sys.stderr
    # into the logging system, and a handler writing there would feed itself.
    handler = logging.StreamHandler(sys.__stderr__)
    handler.setFormatter(_formatter(fmt))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level.upper())
    # Python warnings and a crash's traceback would otherwise bypass the handler as raw text.
    logging.captureWarnings(True)
    if fmt == "json":
        sys.excepthook = _log_uncaught


def _log_uncaught(
    kind: type[BaseException], value: BaseException, tb: TracebackType | None
) -> None:
    logging.getLogger("analytics").critical("uncaught exception", exc_info=(kind, value, tb))


def faust_logging_config() -> dict[str, Any]:
    """faust's ``logging_config`` for JSON lines: our formatter on faust's one handler.

    ``merge`` keeps what faust derives from ``-l LEVEL`` (the root level) and replaces only
    its ``default`` handler (coloured text) with ours. The stream is the real stderr, bound
    before faust redirects stdout/stderr into the logging system.
    """
    return {
        "version": 1,
        "merge": True,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
    }


class RepeatFilter(logging.Filter):
    """Lets one record of a kind through per ``window`` seconds and counts the rest.

    A kind is (logger, level, message template). A client library that logs every failed
    reconnect (aiokafka while the broker is down: about 150 lines a second) then writes one
    line per kind and window, and the next line it lets through says how many it held back.
    """

    def __init__(self, window: float = 10.0) -> None:
        super().__init__()
        self.window = window
        self._seen: dict[tuple[str, int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        kind = (record.name, record.levelno, str(record.msg))
        last, held = self._seen.get(kind, (0.0, 0))
        if record.created - last < self.window:
            self._seen[kind] = (last, held + 1)
            return False
        self._seen[kind] = (record.created, 0)
        if held:
            note = f" ({held} more like this in the last {self.window:.0f} s were not logged)"
            record.msg = f"{record.msg}{note}"  # the note holds no %: safe with or without args
        return True


def quiet_repeats(prefix: str, window: float = 10.0) -> None:
    """Put one ``RepeatFilter`` on every logger named ``prefix`` or under it.

    A logger's filters see only its own records, so the filter goes on each existing
    logger of the package (they exist once the package is imported).
    """
    shared = RepeatFilter(window)
    names = [n for n in logging.Logger.manager.loggerDict if n.startswith(prefix + ".")]
    for name in [prefix, *names]:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RepeatFilter) for f in logger.filters):
            logger.addFilter(shared)


def configure_worker(app: Any, fmt: str) -> None:
    """Make the faust worker ``app`` log JSON lines when ``fmt`` is ``json`` (else faust's text)."""
    if fmt == "json":
        app.conf.logging_config = faust_logging_config()
