"""The in-namespace half of the sandbox: set up mounts, pivot into the rootfs, drop privileges, exec.

Runs as PID 1 of fresh mount/pid/ipc/uts namespaces made by util-linux
`unshare` (see builder/sandbox.py), before the step's command. The few things no
command-line tool can do from inside the new root (pivot_root, umount2 of the
old root, dropping capabilities from the bounding set) are single syscalls made
through ctypes; everything else uses `mount`.

It reads one JSON spec on argv[1]; it must import everything it needs before
the pivot, because the host's Python library is out of reach afterwards.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import platform
import subprocess
import sys

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "ppc64le": 203, "s390x": 217, "riscv64": 41}
_MNT_DETACH = 2
_PR_CAPBSET_DROP = 24
# Docker's default capability set for RUN; everything else is dropped so a step
# running as root cannot mount, load modules or reach the host.
_KEEP_CAPS = {0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 27, 29, 31}  # chown dac_override fowner fsetid kill setgid setuid setpcap net_bind_service net_raw sys_chroot mknod audit_write setfcap
_DEVICES = ("null", "zero", "full", "random", "urandom", "tty")


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _setup_dev(root: str) -> None:
    dev = os.path.join(root, "dev")
    _mount("-t", "tmpfs", "-o", "nosuid,mode=0755,size=65536k", "tmpfs", dev)
    for name in _DEVICES:
        target = os.path.join(dev, name)
        open(target, "w").close()
        _mount("--bind", f"/dev/{name}", target)
    for sub in ("pts", "shm"):
        os.mkdir(os.path.join(dev, sub))
    _mount("-t", "devpts", "-o", "newinstance,ptmxmode=0666,mode=0620,nosuid,noexec", "devpts", os.path.join(dev, "pts"))
    _mount("-t", "tmpfs", "-o", "nosuid,nodev,mode=1777", "shm", os.path.join(dev, "shm"))
    for link, target in (("ptmx", "pts/ptmx"), ("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"),
                         ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")):
        os.symlink(target, os.path.join(dev, link))


def _bind(root: str, bind: dict[str, object]) -> None:
    target = os.path.join(root, str(bind["target"]).lstrip("/"))
    _mount("--bind", str(bind["source"]), target)
    if bind.get("readonly"):
        _mount("-o", "remount,bind,ro", target)


def _pivot(root: str) -> None:
    # runc's trick: pivot_root(".", ".") stacks the old root on the new one, then
    # a lazy unmount of "." removes it, leaving no path back to the host.
    os.chdir(root)
    _check(_libc.syscall(_SYS_PIVOT_ROOT[platform.machine()], b".", b"."), "pivot_root")
    _check(_libc.umount2(b".", _MNT_DETACH), "umount old root")
    os.chdir("/")


def _drop_capabilities() -> None:
    for cap in range(0, 64):
        if cap not in _KEEP_CAPS and _libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            if ctypes.get_errno() == 22:  # EINVAL: past the kernel's last capability
                break


def main() -> None:
    spec = json.loads(sys.argv[1])
    root = spec["root"]
    _mount("--make-rprivate", "/")
    # The rootfs is bind-mounted onto itself first so that everything mounted
    # below it (proc, dev, binds) lands inside the mount that pivot_root moves.
    _mount("--rbind", root, root)
    _mount("-t", "proc", "-o", "nosuid,nodev,noexec", "proc", os.path.join(root, "proc"))
    _setup_dev(root)
    for bind in spec["binds"]:
        _bind(root, bind)
    _pivot(root)
    _drop_capabilities()
    os.chdir(spec["cwd"])
    os.setgroups(spec["groups"])
    os.setgid(spec["gid"])
    os.setuid(spec["uid"])
    argv = spec["argv"]
    try:
        os.execvpe(argv[0], argv, spec["env"])
    except OSError as exc:
        print(f"wharfie: cannot run {argv[0]!r}: {exc.strerror}", file=sys.stderr)
        sys.exit(127)


if __name__ == "__main__":
    main()
