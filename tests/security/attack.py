"""An attacker's build, run against the real sandbox as root or as a rootless user, and the host it must not reach.

`Attacker` writes a context (files, executables, symlinks), runs
`wharfie build --isolation sandbox` as root or as a throwaway non-root user
(tests/isolation/rootless_user.py), and owns the host paths the attack aims
at: as root somewhere under the test's tmp dir, rootless in the user's own
home (the user's files are what a rootless build must not reach). Tests
assert on those host paths afterwards, not only on wharfie's exit code.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from fixtures.readback import run_wharfie

__all__ = ["REPO_ROOT", "USABLE_TUN", "Attacker", "Exe", "Link", "tun_usable_by_others"]

REPO_ROOT = Path(__file__).resolve().parents[2]

# /dev/net/tun as udev makes it (0666), in the build's private mount namespace only: some machines
# (containers, systems without udev) leave it 0600, which no rootless user-mode network can use.
USABLE_TUN = ("mount -t tmpfs -o mode=0755 tmpfs /mnt && mknod -m 0666 /mnt/tun c 10 200 && "
              "mount --bind /mnt/tun /dev/net/tun\n")


def tun_usable_by_others() -> bool:
    try:
        return os.stat("/dev/net/tun").st_mode & 0o006 == 0o006
    except OSError:
        return False


@dataclass(frozen=True)
class Link:
    target: str


@dataclass(frozen=True)
class Exe:
    text: str


@dataclass
class Attacker:
    mode: Literal["root", "rootless"]
    home: Path  # contexts, caches and the host files under attack live here
    registry_host: str
    uid: int = 0
    gid: int = 0
    user: object | None = None  # rootless_user.BuildUser

    def _own(self, path: Path) -> None:
        if self.mode == "rootless":
            os.chown(path, self.uid, self.gid, follow_symlinks=False)

    def path(self, name: str) -> Path:
        """A fresh host path (not created) under this attacker's home."""
        return self.home / f"{name}-{uuid.uuid4().hex[:8]}"

    def directory(self, name: str, files: Mapping[str, str | bytes | Link | Exe]) -> Path:
        """A host directory holding `files` (text, bytes, symlinks, executables), owned by the builder's user."""
        top = self.path(name)
        top.mkdir()
        self._own(top)
        for rel, content in files.items():
            path = top / rel
            for parent in reversed(path.relative_to(top).parents):
                if not (top / parent).exists():
                    (top / parent).mkdir()
                    self._own(top / parent)
            if isinstance(content, Link):
                path.symlink_to(content.target)
            elif isinstance(content, Exe):
                path.write_text(content.text)
                path.chmod(0o755)
            else:
                path.write_bytes(content.encode() if isinstance(content, str) else content)
            self._own(path)
        return top

    def context(self, dockerfile: str, files: Mapping[str, str | bytes | Link | Exe] | None = None) -> Path:
        return self.directory("ctx", {"Dockerfile": dockerfile, **(files or {})})

    def build(self, context: Path, *extra: str, cache: Path | None = None, push_to: str | None = None,
              env: Mapping[str, str] | None = None, own_network: bool = False) -> subprocess.CompletedProcess[str]:
        """Build `context`; with `push_to` the image is pushed there (to be read back), else nothing is pushed.

        `own_network`: the rootless user gets a usable /dev/net/tun (see USABLE_TUN), so steps get a
        network of their own rather than falling back to a container's."""
        cache = cache or self.home / "cache"
        output = ["--destination", push_to] if push_to else ["--no-push"]
        args = ["build", str(context), *output, "--isolation", "sandbox", "--insecure-registry",
                self.registry_host, "--cache-dir", str(cache), *extra]
        if self.mode == "root":
            return run_wharfie(*args, env=dict(env or {}))
        # The tree under test, not whatever wharfie is installed: the user's python gets it on its path.
        prelude = USABLE_TUN if own_network and not tun_usable_by_others() else ""
        return self.user.run(args, env={"PYTHONPATH": str(REPO_ROOT), **(env or {})},  # type: ignore[attr-defined]
                             prelude=prelude)
