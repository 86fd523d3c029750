"""A throwaway non-root user for rootless builds, and a way to run wharfie as that user.

The user is made with `useradd` (subordinate ids granted or explicitly not),
given a work directory of its own under /tmp, and removed afterwards with its
/etc/subuid and /etc/subgid lines. This machine's Python may live under a
root-only home (/root is 0700): the command runs in a private mount
namespace where /root is an empty tmpfs with only the interpreter's
directory bound back, so nothing on the host changes mode. The tree under
test may sit in a directory the user cannot search (a clone under
`mktemp -d`, 0700): it is bound at /run/wharfie-tree in that namespace, and a
PYTHONPATH naming the tree names it there, so the user runs this tree's
wharfie, never silently the one the editable install points at.
"""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["SESSION_MARK", "BuildUser", "throwaway_user", "userns_forbidden_reason"]

SESSION_MARK = "WHARFIE_TEST_SESSION"
TREE = Path(__file__).resolve().parents[2]  # the tree under test
_TREE_SEEN_AT = "/run/wharfie-tree"


@dataclass(frozen=True)
class BuildUser:
    name: str
    uid: int
    gid: int
    home: Path  # a 0755 directory the user owns: contexts, caches and outputs go here
    subids: tuple[int, int] | None

    @property
    def tmpdir(self) -> Path:
        """The $TMPDIR of this user's builds: nothing of wharfie's may stay there after one."""
        return self.home / "tmp"

    def run(self, args: Sequence[str], *, env: dict[str, str] | None = None, timeout: int = 600,
            prelude: str = "", module: str = "builder", cwd: Path | None = None,
            python_flags: Sequence[str] = ()) -> subprocess.CompletedProcess[str]:
        """Run `python -m builder ARGS` (or another module) as this user, from its home or `cwd` (`prelude`:
        shell run as root first, in the command's private mount namespace; `python_flags`: e.g. `-P`, to
        start as the `wharfie` console script does, without the cwd on sys.path)."""
        prefix = Path(sys.prefix)
        inner = ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--init-groups", "--",
                 sys.executable, *python_flags, "-m", module, *args]
        script = "set -e\n" + prelude
        script += f"mkdir -p {_TREE_SEEN_AT} && mount --bind {shlex.quote(str(TREE))} {_TREE_SEEN_AT}\n"
        if str(prefix).startswith("/root/"):
            keep = Path("/root") / prefix.relative_to("/root").parts[0]
            script += (f"mkdir -p /run/wharfie-keep && mount --bind {keep} /run/wharfie-keep\n"
                       "mount -t tmpfs -o mode=0755 tmpfs /root\n"
                       f"mkdir -p {keep} && mount --bind /run/wharfie-keep {keep}\n")
        script += f"cd {shlex.quote(str(cwd or self.home))}\nexec " + " ".join(shlex.quote(a) for a in inner)
        clean_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.home),
                     "USER": self.name, "LANG": "C.UTF-8", "TMPDIR": str(self.tmpdir), **(env or {})}
        if "PYTHONPATH" in clean_env:
            clean_env["PYTHONPATH"] = ":".join(_TREE_SEEN_AT if entry == str(TREE) else entry
                                               for entry in clean_env["PYTHONPATH"].split(":"))
        if SESSION_MARK in os.environ:  # so the session's leftover check finds its processes (tests/conftest.py)
            clean_env[SESSION_MARK] = os.environ[SESSION_MARK]
        return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
                              capture_output=True, text=True, env=clean_env, timeout=timeout, check=False)


def _free_subid_start(count: int) -> int:
    used: list[tuple[int, int]] = []
    for path in ("/etc/subuid", "/etc/subgid"):
        for line in Path(path).read_text().splitlines():
            fields = line.split(":")
            if len(fields) == 3 and fields[1].isdigit() and fields[2].isdigit():
                used.append((int(fields[1]), int(fields[2])))
    start = 400000
    while any(s < start + count and start < s + c for s, c in used):
        start += count
    return start


def _drop_subid_lines(name: str) -> None:
    for path in ("/etc/subuid", "/etc/subgid"):
        file = Path(path)
        lines = [line for line in file.read_text().splitlines() if not line.startswith(f"{name}:")]
        file.write_text("".join(f"{line}\n" for line in lines))


@contextmanager
def throwaway_user(*, subids: bool) -> Iterator[BuildUser]:
    """A fresh user; with `subids`, 65536 subordinate uids and gids of its own."""
    name = f"wharfie-t{uuid.uuid4().hex[:8]}"
    subprocess.run(["useradd", "-M", "-s", "/bin/sh", "-K", "SUB_UID_COUNT=0", "-K", "SUB_GID_COUNT=0", name],
                   check=True, capture_output=True)
    home = Path(f"/tmp/{name}")
    try:
        entry = pwd.getpwnam(name)
        ids = None
        if subids:
            start = _free_subid_start(65536)
            for path in ("/etc/subuid", "/etc/subgid"):
                with open(path, "a") as handle:
                    handle.write(f"{name}:{start}:65536\n")
            ids = (start, 65536)
        home.mkdir(mode=0o755)
        os.chown(home, entry.pw_uid, entry.pw_gid)
        user = BuildUser(name, entry.pw_uid, entry.pw_gid, home, ids)
        user.tmpdir.mkdir(mode=0o700)
        os.chown(user.tmpdir, entry.pw_uid, entry.pw_gid)
        yield user
        left = [entry for entry in os.listdir(user.tmpdir) if entry.startswith("wharfie")]
        assert not left, f"a rootless build left {left} in its $TMPDIR"
    finally:
        subprocess.run(["userdel", name], capture_output=True, check=False)
        _drop_subid_lines(name)
        # Files the build's subordinate ids own need root to remove.
        shutil.rmtree(home, ignore_errors=True)


def userns_forbidden_reason() -> str | None:
    """Why an unprivileged user namespace cannot be made here, or None when it can."""
    probe = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--",
                            "unshare", "--user", "--map-root-user", "true"], capture_output=True, text=True,
                           check=False)
    if probe.returncode == 0:
        return None
    return f"the kernel forbids unprivileged user namespaces here: {probe.stderr.strip()}"
