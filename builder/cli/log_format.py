"""kaniko's --log-format and --log-timestamp for wharfie's log lines.

``json`` makes each log line one JSON object, as kaniko's logrus JSONFormatter
does (``{"level": "info", "msg": "...", "time": "2025-01-02T03:04:05+00:00"}``),
for log collectors that parse them. RUN steps' own output is not log: it
passes through unchanged, as in kaniko. ``text`` and ``color`` keep wharfie's
plain lines; ``--log-timestamp`` starts each with its time.
"""

from __future__ import annotations

import datetime as dt
import json
import logging

__all__ = ["JsonLineFormatter", "apply_log_format"]

# Python's level names as logrus spells them.
_LOGRUS_LEVELS = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warning",
                  logging.ERROR: "error", logging.CRITICAL: "fatal"}


def _time(record: logging.LogRecord) -> str:
    return dt.datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="seconds")


class JsonLineFormatter(logging.Formatter):
    """One logrus-style JSON object per record; a message's newlines stay inside its string."""

    def format(self, record: logging.LogRecord) -> str:
        level = _LOGRUS_LEVELS.get(record.levelno, record.levelname.lower())
        return json.dumps({"level": level, "msg": record.getMessage(), "time": _time(record)}, sort_keys=True)


class _TimestampFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{_time(record)} {record.getMessage()}"


def apply_log_format(log_format: str, *, timestamp: bool) -> None:
    """Give the root logger's handlers (wharfie logs through them) the format asked for."""
    if log_format == "json":
        formatter: logging.Formatter = JsonLineFormatter()
    elif timestamp:
        formatter = _TimestampFormatter()
    else:
        return  # wharfie's own: the message alone
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter)
