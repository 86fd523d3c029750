"""One RUN step on the walk snapshotter that moves its mount points' directory and plants a link there.

Run as `python -m cleanup_step WORKDIR VICTIM` (tests/security on the path):
as root directly, as a non-root user it first re-enters itself in a user
namespace the way a rootless build does (builder/execution/rootless.py). It makes a
small rootfs under WORKDIR, mounts a directory and a file at /d/x and /d/y
(wharfie makes /d, /d/x and /d/y: the image has none), and the step runs
`mv /d /moved && ln -s VICTIM /d`. A clean-up that removed its stubs by path
would then remove VICTIM/x and VICTIM/y on the host. Prints the step's
layer paths, one per line, after `changes:`.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from builder.execution.isolation import Isolation
from builder.execution.rootless import unshare_command
from builder.execution.run_step import run_step
from builder.execution.sandbox import SANDBOX_IGNORED, Bind, RunSpec

_INSIDE = "WHARFIE_CLEANUP_STEP_INSIDE"


def _rootfs(root: Path) -> None:
    (root / "bin").mkdir(parents=True)
    shutil.copy2("/bin/busybox", root / "bin" / "busybox")
    for applet in ("sh", "mv", "ln"):
        (root / "bin" / applet).symlink_to("busybox")


def main(work: Path, victim: str) -> None:
    root, scratch, sources = work / "rootfs", work / "scratch", work / "sources"
    _rootfs(root)
    scratch.mkdir()
    (sources / "dir").mkdir(parents=True)
    (sources / "file").write_text("mounted\n")
    spec = RunSpec(root=root, argv=["/bin/sh", "-c", f"mv /d /moved && ln -s {victim} /d"], env={"PATH": "/bin"},
                   network="none", binds=(Bind(str(sources / "dir"), "/d/x"), Bind(str(sources / "file"), "/d/y")))
    with run_step(spec, isolation=Isolation("sandbox", snapshotter="walk"), scratch=scratch,
                  ignore=SANDBOX_IGNORED, snapshot_mode="redo", output=print) as outcome:
        print("changes:", *sorted(change.path for change in outcome.changes))


if __name__ == "__main__":
    if os.geteuid() != 0 and not os.environ.get(_INSIDE):
        command = [*unshare_command(), sys.executable, "-m", "cleanup_step", *sys.argv[1:]]
        os.execvpe(command[0], command, {**os.environ, _INSIDE: "1"})
    main(Path(sys.argv[1]), sys.argv[2])
