"""kaniko's --log-format color|text (issue #12): colour on the level of each log line for color, none for text.

The builds run `python -m builder` in a subprocess, stderr a pipe (as in a CI
job): ``color`` colours whether or not a terminal shows it, as logrus's
ForceColors does; ``json`` is proven in tests/e2e/test_kaniko_cli.py.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from builder.cli.log_format import ColorLevelFormatter

UNSET = ("CI", "GITLAB_CI", "KANIKO_NO_PUSH", "KANIKO_DIR", "KANIKO_REGISTRY_MAP", "KANIKO_REGISTRY_MIRROR",
         "CI_REGISTRY_IMAGE", "NO_COLOR")
# logrus's TextFormatter with colours: the level's 4 letters in its SGR colour, reset, [seconds or time], message.
COLOURED = re.compile(r"^\x1b\[(?P<colour>3[1367])m(?P<level>INFO|DEBU|WARN|ERRO|FATA)\x1b\[0m\[(?P<when>[^\]]+)\] "
                      r"(?P<message>.*)$")


def build(tmp_path: Path, *flags: str, env: dict[str, str] | None = None) -> list[str]:
    """Build FROM scratch + COPY without pushing; the stderr lines (the log) of the run."""
    context = tmp_path / "ctx"
    if not context.exists():
        context.mkdir()
        (context / "Dockerfile").write_text("FROM scratch\nCOPY a /a\n")
        (context / "a").write_text("a\n")
    clean = {name: value for name, value in os.environ.items() if name not in UNSET}
    result = subprocess.run([sys.executable, "-m", "builder", "build", str(context), "--no-push",
                             "--cache-dir", str(tmp_path / "cache"), *flags],
                            capture_output=True, text=True, env={**clean, **(env or {})}, timeout=300, check=False)
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout, "the result on stdout is never coloured"
    return result.stderr.splitlines()


def test_color_colours_the_level_of_every_log_line(tmp_path: Path) -> None:
    lines = build(tmp_path, "--log-format=color", "-v", "debug")
    matches = [COLOURED.match(line) for line in lines]
    assert all(matches), [line for line, match in zip(lines, matches, strict=True) if not match]
    seen = {(m["level"], m["colour"]) for m in matches if m}
    assert seen == {("INFO", "36"), ("DEBU", "37")}, seen
    assert all(re.fullmatch(r"\d{4}", m["when"]) for m in matches if m), "seconds since the start, as logrus"
    assert ("INFO", "COPY a /a") in [(m["level"], m["message"]) for m in matches if m]


def test_color_ignores_no_color_and_takes_the_timestamp(tmp_path: Path) -> None:
    lines = build(tmp_path, "--log-format", "color", "--log-timestamp", env={"NO_COLOR": "1"})
    assert lines, "a build logs"
    for line in lines:
        match = COLOURED.match(line)
        assert match, line
        assert dt.datetime.fromisoformat(match["when"]).tzinfo is not None, line


@pytest.mark.parametrize("flags", [("--log-format=text",), (), ("--log-format=text", "--log-timestamp")],
                         ids=["text", "no flag", "text with time"])
def test_text_and_the_default_stay_plain(tmp_path: Path, flags: tuple[str, ...]) -> None:
    lines = build(tmp_path, *flags, "-v", "debug")
    assert not [line for line in lines if "\x1b" in line]
    messages = [line.split(" ", 1)[1] if "--log-timestamp" in flags else line for line in lines]
    assert "COPY a /a" in messages


@pytest.mark.parametrize(("level", "expected"), [
    (logging.DEBUG, "\x1b[37mDEBU\x1b[0m[0001] m"),
    (logging.INFO, "\x1b[36mINFO\x1b[0m[0001] m"),
    (logging.WARNING, "\x1b[33mWARN\x1b[0m[0001] m"),
    (logging.ERROR, "\x1b[31mERRO\x1b[0m[0001] m"),
    (logging.CRITICAL, "\x1b[31mFATA\x1b[0m[0001] m"),
])
def test_logrus_level_colours(level: int, expected: str) -> None:
    record = logging.LogRecord("wharfie", level, __file__, 1, "m", None, None)
    record.relativeCreated = 1500.0
    assert ColorLevelFormatter(timestamp=False).format(record) == expected
