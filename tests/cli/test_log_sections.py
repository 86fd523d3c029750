"""GitLab's collapsible log sections around the pull, each step and the push; rich's live view on a terminal."""

from __future__ import annotations

import io
import os
import pty
import re
import select
import subprocess
import sys
from pathlib import Path

import pytest

from builder.cli.log_sections import GitLabSections, wants_sections
from builder.engine.phases import listening, phase
from fixtures.registry import Registry

START = re.compile(r"^\x1b\[0Ksection_start:(\d+):([A-Za-z0-9_.-]+)(\[collapsed=true\])?\r\x1b\[0K(.*)$")
END = re.compile(r"^\x1b\[0Ksection_end:(\d+):([A-Za-z0-9_.-]+)\r\x1b\[0K$")
UNSET = ("CI", "GITLAB_CI", "KANIKO_NO_PUSH", "KANIKO_DIR", "KANIKO_REGISTRY_MAP", "KANIKO_REGISTRY_MIRROR",
         "CI_REGISTRY_IMAGE")


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def sections(text: str) -> list[tuple[str, str, bool, str]]:
    """("start"|"end", name, collapsed, title) per marker line, checking each line's exact form."""
    out = []
    for line in text.split("\n"):  # not splitlines(): the markers hold a \r of their own
        if "section_" not in line:
            continue
        if match := START.match(line):
            out.append(("start", match.group(2), bool(match.group(3)), match.group(4)))
        elif match := END.match(line):
            out.append(("end", match.group(2), False, ""))
        else:
            raise AssertionError(f"malformed section marker: {line!r}")
    return out


def test_markers_are_gitlabs_format_numbered_and_nested_in_order() -> None:
    out = io.StringIO()
    with listening(GitLabSections(out, clock=lambda: 1700000000.5)):
        with phase("pull", "FROM debian:bookworm"):
            pass
        with phase("step", "RUN echo one \\\n    && echo two"):
            out.write("one\n")
        with pytest.raises(RuntimeError), phase("push", "push reg/app:1"):
            raise RuntimeError("refused")
    lines = out.getvalue().split("\n")[:-1]
    assert lines == [
        "\x1b[0Ksection_start:1700000000:wharfie_pull_1[collapsed=true]\r\x1b[0KFROM debian:bookworm",
        "\x1b[0Ksection_end:1700000000:wharfie_pull_1\r\x1b[0K",
        "\x1b[0Ksection_start:1700000000:wharfie_step_2\r\x1b[0KRUN echo one \\ && echo two",
        "one",
        "\x1b[0Ksection_end:1700000000:wharfie_step_2\r\x1b[0K",
        "\x1b[0Ksection_start:1700000000:wharfie_push_3[collapsed=true]\r\x1b[0Kpush reg/app:1",
        "\x1b[0Ksection_end:1700000000:wharfie_push_3\r\x1b[0K",
    ]


def test_a_hostile_title_cannot_forge_a_marker() -> None:
    out = io.StringIO()
    with listening(GitLabSections(out)), phase("step", "RUN x\x1b[0Ksection_end:1:wharfie_step_1\x1b[0K"):
        pass
    first = out.getvalue().split("\n")[0]
    assert first.count("\x1b") == 2, "only the marker's own escapes"
    assert first.endswith("RUN x?[0Ksection_end:1:wharfie_step_1?[0K")


def test_no_listener_no_output() -> None:
    with phase("step", "RUN true"):
        pass  # nothing listens: nothing happens


def test_sections_only_in_ci_without_a_terminal() -> None:
    assert wants_sections({"CI": "true"}, io.StringIO(), io.StringIO())
    assert not wants_sections({}, io.StringIO(), io.StringIO())
    assert not wants_sections({"CI": "true"}, Tty(), io.StringIO())
    assert not wants_sections({"CI": "true"}, io.StringIO(), Tty())


def _clean_env(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if k not in UNSET}, **extra}


def test_a_ci_build_log_folds_per_phase(registry_open: Registry, busybox_ref: str, tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {busybox_ref}\nRUN echo step-output\nCOPY a /a\nENV X=1\n")
    (context / "a").write_text("a\n")
    dest = f"{registry_open.host}/sections/app:1"
    result = subprocess.run([sys.executable, "-m", "builder", "build", str(context), "-d", dest, "--insecure-registry",
                             registry_open.host, "--cache-dir", str(tmp_path / "cache")],
                            capture_output=True, env=_clean_env(CI="true"), timeout=600, check=False)
    stderr = result.stderr.decode()  # bytes: universal newlines would turn the markers' \r into line ends
    assert result.returncode == 0, stderr
    found = sections(stderr)
    starts = [(name, collapsed, title) for kind, name, collapsed, title in found if kind == "start"]
    assert starts == [("wharfie_pull_1", True, f"FROM {busybox_ref}"),
                      ("wharfie_step_2", False, "RUN echo step-output"),
                      ("wharfie_step_3", False, "COPY a /a"),
                      ("wharfie_step_4", False, "ENV X=1"),
                      ("wharfie_push_5", True, f"push {dest}")]
    assert [kind for kind, *_ in found] == ["start", "end"] * 5, "each section closed before the next opens"
    assert [name for kind, name, *_ in found if kind == "end"] == [name for name, *_ in starts]
    lines = stderr.split("\n")
    start, end = (next(i for i, line in enumerate(lines) if f"{k}:" in line and "wharfie_step_2" in line)
                  for k in ("section_start", "section_end"))
    assert "step-output" in lines[start + 1:end], "the step's output is inside its section"
    plain = subprocess.run([sys.executable, "-m", "builder", "build", str(context), "--no-push",
                            "--cache-dir", str(tmp_path / "cache")],
                           capture_output=True, text=True, env=_clean_env(), timeout=600, check=False)
    assert plain.returncode == 0 and "section_" not in plain.stderr, "outside CI: no markers"


def test_on_a_terminal_rich_draws_the_phases(tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM scratch\nCOPY a /a\n")
    (context / "a").write_text("a\n")
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen([sys.executable, "-m", "builder", "build", str(context), "--no-push",
                                    "--cache-dir", str(tmp_path / "cache")],
                                   stdout=subprocess.PIPE, stderr=terminal, env=_clean_env(TERM="xterm", CI="true"))
        os.close(terminal)
        shown = b""
        while True:
            ready, _, _ = select.select([controller], [], [], 60)
            if not ready:
                break
            try:
                chunk = os.read(controller, 65536)
            except OSError:
                break  # the terminal's other side closed: the build is over
            if not chunk:
                break
            shown += chunk
        stdout = process.communicate(timeout=60)[0].decode()
    finally:
        os.close(controller)
    assert process.returncode == 0, shown.decode(errors="replace")
    text = shown.decode(errors="replace")
    assert stdout.startswith("built sha256:")
    assert "section_" not in text, "a terminal gets the live view, not markers, even with CI=true"
    assert "\x1b[?25l" in text and "\x1b[?25h" in text, "rich hid the cursor while drawing and showed it again"
    assert "COPY a /a" in text and "Traceback" not in text
