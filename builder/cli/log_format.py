"""kaniko's --log-format and --log-timestamp for wharfie's log lines.

``json`` makes each log line one JSON object, as kaniko's logrus JSONFormatter
does (``{"level": "info", "msg": "...", "time": "2025-01-02T03:04:05+00:00"}``),
for log collectors that parse them. ``color`` is kaniko's logrus TextFormatter
with ``ForceColors``: each line starts with its level's first four letters in
the level's colour, then the seconds since the start (or, with
``--log-timestamp``, the time) in brackets, then the message::

    \\e[36mINFO\\e[0m[0002] COPY a /a

(info cyan, warnings yellow, errors red, debug white, logrus's own colours;
logrus's padding of the message to 44 columns, there to align its key=value
fields, is left out: wharfie's lines have none). ``text``, and no
``--log-format`` at all, keep wharfie's plain lines (``--log-timestamp``
starts each with its time): kaniko's default was ``color``, but an escape
code in every line of a log file or a pipe is noise, and in a GitLab job the
collapsible sections and on a terminal rich's live view
(builder/cli/log_sections.py) already show the build's progress. RUN steps'
own output is not log: it passes through unchanged, as in kaniko.

Colour comes only from an explicit ``--log-format=color``, written whether or
not stderr is a terminal (as logrus's ForceColors does, so a GitLab job log
shows it), and ``NO_COLOR`` does not turn it off: kaniko never read it, and
no-color.org itself lets a flag given on the command line override it.

The escape codes are made by `click.style`, from click, the command-line
library wharfie already stands on: four SGR colours need nothing bigger
(rich, also a dependency, would re-wrap and re-pad lines for a console).
"""

from __future__ import annotations

import datetime as dt
import json
import logging

import click

__all__ = ["ColorLevelFormatter", "JsonLineFormatter", "apply_log_format"]

# Python's level names as logrus spells them.
_LOGRUS_LEVELS = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warning",
                  logging.ERROR: "error", logging.CRITICAL: "fatal"}
# logrus's TextFormatter colours: gray (37) debug, blue (36) info, yellow (33) warning, red (31) error and worse.
_LEVEL_COLOURS = {"debug": "white", "info": "cyan", "warning": "yellow", "error": "red", "fatal": "red"}


def _level(record: logging.LogRecord) -> str:
    return _LOGRUS_LEVELS.get(record.levelno, record.levelname.lower())


def _time(record: logging.LogRecord) -> str:
    return dt.datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="seconds")


class JsonLineFormatter(logging.Formatter):
    """One logrus-style JSON object per record; a message's newlines stay inside its string."""

    def format(self, record: logging.LogRecord) -> str:
        return json.dumps({"level": _level(record), "msg": record.getMessage(), "time": _time(record)},
                          sort_keys=True)


class ColorLevelFormatter(logging.Formatter):
    """``LEVL[0002] message`` with the level coloured, as logrus's TextFormatter with ForceColors writes it."""

    def __init__(self, *, timestamp: bool) -> None:
        super().__init__()
        self._timestamp = timestamp

    def format(self, record: logging.LogRecord) -> str:
        level = _level(record)
        when = _time(record) if self._timestamp else f"{int(record.relativeCreated // 1000):04d}"
        label = click.style(level.upper()[:4], fg=_LEVEL_COLOURS.get(level, "red"))
        return f"{label}[{when}] {record.getMessage()}"


class _TimestampFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return f"{_time(record)} {record.getMessage()}"


def apply_log_format(log_format: str | None, *, timestamp: bool) -> None:
    """Give the root logger's handlers (wharfie logs through them) the format asked for (None: wharfie's own)."""
    if log_format == "json":
        formatter: logging.Formatter = JsonLineFormatter()
    elif log_format == "color":
        formatter = ColorLevelFormatter(timestamp=timestamp)
    elif timestamp:
        formatter = _TimestampFormatter()
    else:
        return  # wharfie's own: the message alone
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter)
