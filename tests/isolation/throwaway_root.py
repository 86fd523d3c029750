"""A throwaway root for in-place builds: an overlay whose lower dir is the host's `/`, chrooted into.

In-place builds clear and overwrite `/`. Here that `/` is an overlay mounted
in a private mount namespace, with the host's root as its read-only lower
dir and a tmpfs as its upper dir: every change, deletions included, lands
in the tmpfs and vanishes with the namespace. The command only runs if a
sentinel file that exists solely in the upper dir is visible, so a failed
mount can never let a build loose on the real root.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["SENTINEL", "run_in_throwaway_root"]

SENTINEL = ".wharfie-throwaway-root"
_SCRIPT = """\
set -eu
T={base}
mount -t tmpfs -o mode=0755 tmpfs "$T/rw"
mkdir "$T/rw/upper" "$T/rw/work"
mount -t overlay overlay -o "lowerdir=/,upperdir=$T/rw/upper,workdir=$T/rw/work" "$T/merged"
mountpoint -q "$T/merged"
for fs in proc dev sys; do mount --rbind "/$fs" "$T/merged/$fs"; done
# The host's /tmp changes under us (other builds, other tests): a lower dir must not.
mount -t tmpfs -o mode=1777 tmpfs "$T/merged/tmp"
{volumes}
touch "$T/merged/{sentinel}"
{removals}
exec chroot "$T/merged" /bin/sh -c 'test -e /{sentinel} || exit 99; cd "$0"; exec "$@"' {cwd} {command}
"""


def run_in_throwaway_root(args: Sequence[str], *, base: Path, cwd: Path, volumes: Sequence[Path] = (),
                          remove: Sequence[str] = (), env: dict[str, str] | None = None,
                          timeout: int = 600) -> subprocess.CompletedProcess[str]:
    """Run `python -m builder ARGS` as root inside a fresh throwaway root.

    `volumes` are host directories bound in at the same path (as a CI job's volumes);
    `remove` deletes paths inside the throwaway root before the build.
    """
    if os.geteuid() != 0:
        raise RuntimeError("a throwaway root needs root")
    for name in ("rw", "merged"):
        (base / name).mkdir(parents=True, exist_ok=True)
    removals = "\n".join(f'rm -rf "$T/merged/{p.lstrip("/")}"' for p in remove)
    command = " ".join(shlex.quote(a) for a in (sys.executable, "-m", "builder", *args))
    binds = "\n".join(f'mkdir -p "$T/merged{v}" && mount --bind {shlex.quote(str(v))} "$T/merged{v}"'
                      for v in volumes)
    script = _SCRIPT.format(base=shlex.quote(str(base)), sentinel=SENTINEL, removals=removals, volumes=binds,
                            cwd=shlex.quote(str(cwd)), command=command)
    return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                          capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})},
                          check=False)
