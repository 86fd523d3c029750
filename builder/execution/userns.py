"""Root that may not make mount namespaces (a CI job's container): the build re-run in a user namespace of its own.

A GitLab job container (docker's or podman's default profile) gives root
docker's capabilities, without CAP_SYS_ADMIN: no mount namespace can be made,
so steps could only run in place. But such a container allows user
namespaces, and inside one the build is root with every capability over
namespaces it makes itself: the sandbox works there.

util-linux's `unshare --map-users` would need the setuid `newuidmap` and a
/etc/subuid entry; root needs neither, since it may write a child's id maps
itself (it holds CAP_SETUID and CAP_SETGID over its own namespace). So the
build forks; the child makes the user and mount namespaces and waits; the
parent writes the child's maps: ids 0..N-1 onto the same ids (N = the ids
this namespace has, at most 65536), so files keep their owners inside and out;
the child then executes the same wharfie command. The parent waits and exits
as the child did, passing on SIGTERM and SIGINT.

unshare(2) through ctypes: Python 3.11's `os` has no `unshare`.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from oci.errors import WharfieError

__all__ = ["MAX_IDS", "mappable_ids", "run_in_own_user_namespace"]

_CLONE_NEWNS = 0x00020000
_CLONE_NEWUSER = 0x10000000
MAX_IDS = 65536  # the range docker and podman give a container's user namespace


def mappable_ids(uid_map: str) -> int:
    """How many ids, from 0 up without a gap, this namespace has (from its uid_map), at most MAX_IDS."""
    rows = sorted((int(inside), int(count)) for inside, _, count in
                  (line.split() for line in uid_map.splitlines() if line.strip()))
    reach = 0
    for inside, count in rows:
        if inside > reach:
            break
        reach = max(reach, inside + count)
    return min(reach, MAX_IDS)


def _child(command: Sequence[str], env: dict[str, str], ready: int, go: int) -> NoReturn:
    """In the fork: make the namespaces, say so, wait for the maps, execute the command. Never returns."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.unshare(_CLONE_NEWUSER | _CLONE_NEWNS) != 0:
            os.write(2, f"wharfie: cannot make a user namespace: {os.strerror(ctypes.get_errno())}\n".encode())
            os._exit(125)
        os.write(ready, b"1")
        if os.read(go, 1) != b"1":
            os._exit(125)
        os.execve(command[0], list(command), env)
    except OSError as exc:
        os.write(2, f"wharfie: cannot re-run in a user namespace: {exc}\n".encode())
    finally:
        os._exit(125)  # whatever happened, nothing may unwind into the parent's code in the fork


def _write_maps(pid: int, count: int) -> None:
    for name in ("uid_map", "gid_map"):
        Path(f"/proc/{pid}/{name}").write_text(f"0 0 {count}\n")


def run_in_own_user_namespace(command: Sequence[str], env: dict[str, str]) -> NoReturn:
    """Run `command` in a new user and mount namespace with ids mapped onto themselves; exit as it exits."""
    count = mappable_ids(Path("/proc/self/uid_map").read_text())
    ready_r, ready_w = os.pipe()
    go_r, go_w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.close(ready_r)
        os.close(go_w)
        _child(command, env, ready_w, go_r)
    os.close(ready_w)
    os.close(go_r)
    try:
        if os.read(ready_r, 1) != b"1":
            raise WharfieError("the build's user namespace could not be made")
        _write_maps(pid, count)
        os.write(go_w, b"1")
    except (OSError, WharfieError) as exc:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise WharfieError(f"cannot re-run the build in a user namespace: {exc}") from None
    finally:
        os.close(ready_r)
        os.close(go_w)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda number, _frame: os.kill(pid, number))
    _, status = os.waitpid(pid, 0)
    sys.exit(os.WEXITSTATUS(status) if os.WIFEXITED(status) else 128 + os.WTERMSIG(status))
