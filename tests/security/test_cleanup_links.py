"""Issue #10 point 9: removing the mount points wharfie made never follows a link the step planted.

With the walk snapshotter the step's rootfs is the host directory itself: a
step that moves the directory holding its mount points and puts a symlink
to a host directory in its place made the stub clean-up remove that host
directory's empty files and directories. tests/security/cleanup_step.py runs
such a step, as root and as a rootless user; the host directory must be as
it was, and the step's layer holds what the step did (its /moved and its
/d link), not wharfie's stubs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from attack import REPO_ROOT, Attacker

HERE = Path(__file__).resolve().parent


def test_cleanup_does_not_follow_a_planted_link(attacker: Attacker) -> None:
    victim = attacker.directory("victim", {"y": ""})
    (victim / "x").mkdir()
    if attacker.mode == "rootless":
        os.chown(victim / "x", attacker.uid, attacker.gid)
    work = attacker.path("work")
    work.mkdir()
    env = {"PYTHONPATH": f"{REPO_ROOT}:{HERE}"}
    args = [str(work), str(victim)]
    if attacker.mode == "root":
        result = subprocess.run([sys.executable, "-m", "cleanup_step", *args], capture_output=True, text=True,
                                env={**os.environ, **env}, timeout=300, check=False)
    else:
        os.chown(work, attacker.uid, attacker.gid)
        # The step's module and the packages it imports are copied where the build user can read them: a
        # clone may sit under a private directory (mktemp -d is 0700), which that user cannot search.
        shutil.copy(HERE / "cleanup_step.py", attacker.home / "cleanup_step.py")
        for package in ("builder", "layers", "oci", "registry"):
            shutil.copytree(REPO_ROOT / package, attacker.home / package,
                            ignore=shutil.ignore_patterns("__pycache__"))
        env["PYTHONPATH"] = str(attacker.home)
        result = attacker.user.run(args, env=env, module="cleanup_step")  # type: ignore[attr-defined]
    assert result.returncode == 0, result.stdout + result.stderr
    assert (victim / "x").is_dir() and (victim / "y").is_file(), "the clean-up removed host files via the link"
    changes = next(line for line in result.stdout.splitlines() if line.startswith("changes:")).split()[1:]
    assert "d" in changes and "moved" in changes
    assert not os.path.lexists(work / "rootfs" / "moved" / "x"), "wharfie's stub stayed behind"
    assert os.path.islink(work / "rootfs" / "d")
