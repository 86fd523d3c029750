"""A few generated Dockerfiles built for real: `python -m builder build --no-push`, in a fresh process.

The in-process fuzzers replace RUN and the registry; these runs replace
nothing, so the CLI's error handling, the sandbox and the clean-up are under
test too. Every base is `scratch` (no registry, no network) and the budget is
small and fixed: each build costs a process start. Checked: exit 0, or exit 1
with stderr ending in one `wharfie: error: Dockerfile:LINE: ...` line, no
traceback anywhere, and nothing left in $TMPDIR.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from dockerfile_strategies import dockerfiles
from fuzz_support import CONTEXT_FILES, fuzz_settings, outcome
from hypothesis import assume, example, given

from fixtures.readback import run_wharfie

pytestmark = pytest.mark.slow

_FROM = re.compile(rb"^(FROM\s+(?:--\S+\s+)*)\S+", re.IGNORECASE | re.MULTILINE)


def on_scratch(text: bytes) -> bytes:
    """Every FROM names scratch: the build needs no registry."""
    return _FROM.sub(rb"\1scratch", text)


def build_for_real(root: Path, dockerfile: bytes) -> tuple[int, str]:
    context = root / "context"
    tmp = root / "tmp"
    for directory in (context, tmp):
        directory.mkdir(parents=True, exist_ok=True)
    for rel, data in CONTEXT_FILES.items():
        (context / rel).parent.mkdir(parents=True, exist_ok=True)
        (context / rel).write_bytes(data)
    (context / "Dockerfile").write_bytes(dockerfile)
    result = run_wharfie("build", str(context), "--no-push", "--cache-dir", str(root / "cache"),
                         env={"TMPDIR": str(tmp), "SOURCE_DATE_EPOCH": "0"})
    left = sorted(p.name for p in tmp.iterdir())
    assert not left, f"the build left {left} in $TMPDIR"
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    if result.returncode == 0:
        assert result.stdout.startswith("built sha256:"), result.stdout
        return 0, ""
    assert result.returncode == 1, (result.returncode, result.stderr)
    last = [line for line in result.stderr.splitlines() if line.strip()][-1]
    assert last.startswith("wharfie: error: "), result.stderr
    return 1, last


@pytest.mark.parametrize(("dockerfile", "line"), [
    (b"FROM scratch\nRUN echo a\x00b\n", 2),  # issue 17: reached os.execvpe ("embedded null byte")
    (b"FROM scratch\nADD http://[::1 /x\n", 2),  # issue 17: "ValueError: Invalid IPv6 URL" with a traceback
    (b"FROM scratch\nENV A=ab\n" + b"ENV A=$A$A\n" * 40, 21),  # a variable that doubles
    (b"FROM scratch\nCOPY a.txt " + b"x" * 300 + b"\n", 2),  # a file name too long for the filesystem
], ids=["nul-in-run", "bad-ipv6-url", "doubling", "name-too-long"])
def test_known_bugs_are_one_line_errors(tmp_path: Path, dockerfile: bytes, line: int) -> None:
    code, last = build_for_real(tmp_path, dockerfile)
    assert code == 1 and last.startswith(f"wharfie: error: Dockerfile:{line}: "), last


@fuzz_settings(6)
@given(dockerfiles())
@example(b"FROM scratch\nCOPY a.txt dir /d/\nENV A=1\nLABEL b=$A\nWORKDIR /w\nCOPY <<EOF f\n$A\nEOF\n")
def test_generated_dockerfiles_for_real(tmp_path_factory: pytest.TempPathFactory, dockerfile: bytes) -> None:
    # ONBUILD and --from may name images, URLs need a network: the in-process fuzzers cover those.
    assume(not re.search(rb"--from|from=|https?://|ONBUILD", dockerfile, re.IGNORECASE))
    code, _ = build_for_real(tmp_path_factory.mktemp("real"), on_scratch(dockerfile))
    outcome(f"exit {code}")
