"""A rootless build re-executes wharfie; the context it is run from must not put code into it.

The usual way to build is `cd project && wharfie build .`: the working
directory is the (untrusted) build context. The `wharfie` console script does
not put the working directory on sys.path, but a rootless build re-executes
itself as `python -m builder` inside a user namespace, and `-m` does: a
context holding a `builder/` package, or a module named like one wharfie
imports (`click.py`, `httpx.py`), ran as the invoking user, with the user's
files (`~/.docker/config.json`, `~/.ssh`) in reach. The host check: the
payload's marker in the user's home was never written, and the build ran.
"""

from __future__ import annotations

import pytest
from attack import REPO_ROOT, Attacker

PAYLOAD = "import pathlib\npathlib.Path({marker!r}).write_text('pwned')\n"


@pytest.mark.parametrize("planted", ["builder/__init__.py", "builder/__main__.py", "click.py", "httpx.py"],
                         ids=["builder-init", "builder-main", "click", "httpx"])
def test_the_working_directory_puts_no_code_into_wharfie(attacker: Attacker, planted: str) -> None:
    if attacker.mode == "root":
        pytest.skip("as root wharfie does not re-execute itself")
    marker = attacker.path("pwned")
    files = {"Dockerfile": "FROM scratch\nCOPY Dockerfile /\n", planted: PAYLOAD.format(marker=str(marker))}
    if planted.startswith("builder/"):
        files["builder/__init__.py" if planted.endswith("__main__.py") else "builder/__main__.py"] = ""
    context = attacker.directory("ctx", files)
    # `-P` starts it as the console script does: the first process never sees the cwd on sys.path.
    result = attacker.user.run(  # type: ignore[attr-defined]
        ["build", ".", "--no-push", "--isolation", "sandbox", "--cache-dir", str(attacker.home / "cache")],
        env={"PYTHONPATH": str(REPO_ROOT)}, cwd=context, python_flags=("-P",))
    assert not marker.exists(), f"{planted} in the working directory ran inside wharfie:\n{result.stderr}"
    assert result.returncode == 0, result.stderr
    assert "rootless" in result.stderr, "the build re-executed itself in a user namespace"
