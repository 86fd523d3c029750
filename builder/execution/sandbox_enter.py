"""The in-namespace half of the sandbox: set up mounts, pivot into the rootfs, drop privileges, exec.

Runs as PID 1 of fresh mount/pid/ipc/uts namespaces made by util-linux
`unshare` (see builder/sandbox.py), before the step's command. The few things no
command-line tool can do from inside the new root (pivot_root, umount2 of the
old root, dropping capabilities from the bounding set) are single syscalls made
through ctypes; everything else uses `mount`.

It reads one JSON spec on stdin (argv is readable by anyone in /proc) and
gives the step /dev/null instead. It must import everything it needs before
the pivot, because the host's Python library is out of reach afterwards.

Hardening beyond the namespaces, as docker does it: the rootfs and /dev are
mounted `nodev` (CAP_MKNOD is kept, but a device node the step makes cannot
be opened), /proc's kernel knobs are read-only or masked, and capabilities
outside docker's default set are dropped from the bounding set.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import platform
import subprocess
import sys
from typing import Any

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "ppc64le": 203, "s390x": 217, "riscv64": 41}
_MNT_DETACH = 2
_PR_CAPBSET_DROP = 24
# Docker's default capability set for RUN; everything else is dropped so a step
# running as root cannot mount, load modules or reach the host.
_KEEP_CAPS = {0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 27, 29, 31}  # chown dac_override fowner fsetid kill setgid setuid setpcap net_bind_service net_raw sys_chroot mknod audit_write setfcap
_DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
_PROC_READONLY = ("bus", "fs", "irq", "sys", "sysrq-trigger")
_PROC_MASKED = ("acpi", "kcore", "keys", "latency_stats", "timer_list", "timer_stats", "sched_debug", "scsi")


def _mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _setup_dev(root: str) -> None:
    dev = os.path.join(root, "dev")
    _mount("-t", "tmpfs", "-o", "nosuid,nodev,mode=0755,size=65536k", "tmpfs", dev)
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


def _mount_one(root: str, mount: dict[str, object]) -> None:
    target = os.path.join(root, str(mount["target"]).lstrip("/"))
    if str(mount["target"]).startswith("/dev/") and not os.path.lexists(target):
        # Inside the step's /dev tmpfs (a heredoc script at /dev/pipes/NAME, as BuildKit puts it).
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if mount["kind"] == "tmpfs" or os.path.isdir(str(mount.get("source", ""))):
            os.mkdir(target)
        else:
            open(target, "w").close()
    if mount["kind"] == "tmpfs":
        size = f",size={mount['size']}" if mount.get("size") else ""
        _mount("-t", "tmpfs", "-o", f"nosuid,nodev{size}", "tmpfs", target)
        return
    _mount("--bind", str(mount["source"]), target)
    if mount.get("readonly"):
        _mount("-o", "remount,bind,ro", target)


def _mount_proc(proc: str) -> None:
    """A fresh /proc; in a user namespace inside a container, the container's own, bound with its masks.

    The kernel refuses a new proc mount in a user namespace while the container's /proc has masked
    paths (mount_too_revealing). Its /proc then shows the container's processes, but those belong to
    the parent user namespace, where the step holds no capability to read their environ or memory.
    """
    fresh = subprocess.run(["mount", "-t", "proc", "-o", "nosuid,nodev,noexec", "proc", proc],
                           stderr=subprocess.DEVNULL, check=False)
    if fresh.returncode != 0:
        _mount("--rbind", "/proc", proc)


def _mask_proc(proc: str) -> None:
    """Docker's masked and read-only /proc paths: a root step must not reach the host kernel through them."""
    for rel in _PROC_READONLY:
        path = os.path.join(proc, rel)
        if os.path.exists(path):
            _mount("--bind", path, path)
            _mount("-o", "remount,bind,ro,nosuid,nodev,noexec", path)
    for rel in _PROC_MASKED:
        path = os.path.join(proc, rel)
        if os.path.isdir(path):
            _mount("-t", "tmpfs", "-o", "ro,nosuid,nodev,noexec,size=0", "tmpfs", path)
        elif os.path.exists(path):
            _mount("--bind", "/dev/null", path)


def _mount_root(spec: dict[str, Any]) -> str:
    """Make the step's root a mount of its own (an overlay on the rootfs, or the rootfs bound on itself)."""
    root = str(spec["root"])
    overlay = spec.get("overlay")
    if isinstance(overlay, dict):
        options = f"lowerdir={overlay['lower']},upperdir={overlay['upper']},workdir={overlay['work']}"
        options += ",userxattr" if overlay["userxattr"] else ",redirect_dir=off,metacopy=off,index=off"
        _mount("-t", "overlay", "-o", options + ",nodev", "overlay", root)
    else:
        # Bound onto itself so that everything mounted below it (proc, dev, binds)
        # lands inside the mount that pivot_root moves.
        _mount("--rbind", root, root)
        # nodev: a device node the step makes (CAP_MKNOD is kept, as docker does)
        # cannot be opened, so root in the step cannot reach the host's disks.
        _mount("-o", "remount,bind,nodev", root)
    return root


def _pivot(root: str) -> None:
    # runc's trick: pivot_root(".", ".") stacks the old root on the new one, then
    # a lazy unmount of "." removes it, leaving no path back to the host.
    os.chdir(root)
    _check(_libc.syscall(_SYS_PIVOT_ROOT[platform.machine()], b".", b"."), "pivot_root")
    _check(_libc.umount2(b".", _MNT_DETACH), "umount old root")
    os.chdir("/")


def _drop_capabilities() -> None:
    for cap in range(64):
        ok = cap in _KEEP_CAPS or _libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) == 0
        if not ok and ctypes.get_errno() == 22:  # EINVAL: past the kernel's last capability
            break


def _switch_user(spec: dict[str, Any]) -> None:
    groups = [int(g) for g in spec["groups"]]
    try:
        os.setgroups(groups)
    except PermissionError:
        # A user namespace with one mapped id denies setgroups: nothing to switch to.
        if groups and _setgroups_allowed():
            raise
    try:
        os.setgid(int(spec["gid"]))
        os.setuid(int(spec["uid"]))
    except OSError as exc:
        print(f"wharfie: cannot switch to uid {spec['uid']} gid {spec['gid']}: {exc.strerror} "
              "(is that id mapped in this user namespace?)", file=sys.stderr)
        sys.exit(125)


def _setgroups_allowed() -> bool:
    try:
        with open("/proc/self/setgroups") as handle:
            return handle.read().strip() != "deny"
    except OSError:
        return True


def _await_network(sync: dict[str, int] | None) -> None:
    """Tell the host our network namespace exists; wait until slirp4netns has configured it (builder/network.py)."""
    if sync is None:
        return
    os.write(sync["ready_fd"], b"1")
    os.close(sync["ready_fd"])
    up = os.read(sync["go_fd"], 1)
    os.close(sync["go_fd"])
    if up != b"1":
        print("wharfie: the step's network could not be set up", file=sys.stderr)
        sys.exit(125)


def main() -> None:
    spec = json.load(sys.stdin)  # the spec comes on stdin; the step itself gets /dev/null
    _await_network(spec.get("network_sync"))
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    _mount("--make-rprivate", "/")
    root = _mount_root(spec)
    proc = os.path.join(root, "proc")
    _mount_proc(proc)
    _mask_proc(proc)
    _setup_dev(root)
    for mount in spec["mounts"]:
        _mount_one(root, mount)
    _pivot(root)
    _drop_capabilities()
    os.chdir(spec["cwd"])
    _switch_user(spec)
    argv = spec["argv"]
    try:
        os.execvpe(argv[0], argv, spec["env"])
    except OSError as exc:
        print(f"wharfie: cannot run {argv[0]!r}: {exc.strerror}", file=sys.stderr)
        sys.exit(127)


if __name__ == "__main__":
    main()
