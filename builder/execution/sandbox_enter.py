"""The in-namespace half of the sandbox: mount the plan, pivot into the rootfs, confine, exec.

Runs as PID 1 of fresh mount/pid/ipc/uts namespaces made by util-linux
`unshare` (see builder/sandbox.py), before the step's command, with every
capability of its user namespace: so it never runs another program and
never mounts onto a path. Each mount of the plan (builder/mount_plan.py) is
made with syscalls (builder/mount_api.py) onto a descriptor of its mount
point, found inside the rootfs right before that mount by secure resolution
(builder/mount_points.py): a symlink in the image, the context, a stage or
an earlier mount is followed as the chroot would, never out of the rootfs.
A mount point missing from the image was made by the host side; one inside
an earlier mount (a tmpfs, /dev, a bind) is made here, and one that would
have to be made in the image through an earlier mount's symlink is refused.

Then, as runc does: pivot_root, a fresh session keyring (builder/keyring.py),
the five capability sets and no_new_privs (builder/capabilities.py), and
docker's seccomp profile (builder/seccomp.py) as the last thing before exec.

It reads one JSON spec on stdin (argv is readable by anyone in /proc) and
gives the step /dev/null instead. Everything it needs is imported before the
pivot: the host's Python library is out of reach afterwards.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import sys
from typing import Any

import pyseccomp  # type: ignore[import-untyped]

from builder.execution import mount_api
from builder.execution.capabilities import NO_NEW_PRIVS, apply_step_capabilities, last_cap
from builder.execution.keyring import join_fresh_session_keyring
from builder.execution.mount_api import attributes
from builder.execution.mount_plan import ROOT_ATTRS, PlannedMount
from builder.execution.mount_points import MountPointError, StubMaker, mount_id, open_mount_point
from builder.execution.seccomp import build_filter
from layers.securepath import RootDir
from oci.errors import WharfieError

__all__ = ["main"]

_SETUP_FAILED = 125


def _mount_root(spec: dict[str, Any]) -> int:
    """Make the step's root a mount of its own (an overlay on the rootfs, or the rootfs bound on itself).

    Returns a descriptor of the new mount's root: everything after is resolved from it.
    """
    root = str(spec["root"])
    attrs = attributes(ROOT_ATTRS)
    overlay = spec.get("overlay")
    if isinstance(overlay, dict):
        options: dict[str, str | None] = {"lowerdir": overlay["lower"], "upperdir": overlay["upper"],
                                          "workdir": overlay["work"]}
        if overlay["userxattr"]:
            options["userxattr"] = None
        else:
            options.update({"redirect_dir": "off", "metacopy": "off", "index": "off"})
        mount_fd = mount_api.new_filesystem("overlay", options, attrs)
    else:
        mount_fd = mount_api.clone_tree(root)
        mount_api.set_attributes(mount_fd, attrs)
    target = os.open(root, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)  # wharfie's own work directory
    try:
        mount_api.attach(mount_fd, target)
    finally:
        os.close(target)
    return mount_fd


def _make_symlink(root: RootDir, mount: PlannedMount, maker: StubMaker) -> None:
    parent, _, name = mount.target.rpartition("/")
    parent_fd = open_mount_point(root, parent or "/", directory=True, maker=maker)
    try:
        os.symlink(mount.source, name, dir_fd=parent_fd)
    finally:
        os.close(parent_fd)


def _new_mount(mount: PlannedMount, target_fd: int, attrs: int) -> int:
    """A detached mount for `mount`, its flags already set."""
    if mount.kind == "bind":
        mount_fd = mount_api.clone_tree(mount.source)
    elif mount.kind == "readonly":
        mount_fd = mount_api.clone_tree_at(target_fd)
    elif mount.kind == "mask" and stat.S_ISDIR(os.fstat(target_fd).st_mode):
        return mount_api.new_filesystem("tmpfs", {"size": "0"}, attrs)
    elif mount.kind == "mask":
        mount_fd = mount_api.clone_tree("/dev/null")
    elif mount.kind == "proc":
        try:
            return mount_api.new_filesystem("proc", dict(mount.options), attrs)
        except OSError as exc:
            if exc.errno != errno.EPERM:
                raise
            # In a user namespace inside a container the kernel refuses a fresh proc while the
            # container's has masked paths (mount_too_revealing): the container's, masks included,
            # is bound instead. Its processes belong to the parent user namespace, where the step
            # holds no capability to read their environ or memory.
            mount_fd = mount_api.clone_tree("/proc", recursive=True)
    else:
        return mount_api.new_filesystem(mount.kind, dict(mount.options), attrs)
    try:
        mount_api.set_attributes(mount_fd, attrs)
    except BaseException:
        os.close(mount_fd)
        raise
    return mount_fd


def _mount_one(root: RootDir, mount: PlannedMount, maker: StubMaker) -> None:
    if mount.kind == "symlink":
        _make_symlink(root, mount, maker)
        return
    try:
        target_fd = open_mount_point(root, mount.target, directory=mount.directory,
                                     maker=None if mount.optional else maker)
    except MountPointError:
        if mount.optional:
            return
        raise
    try:
        mount_fd = _new_mount(mount, target_fd, attributes(mount.attrs))
        try:
            mount_api.attach(mount_fd, target_fd)
        finally:
            os.close(mount_fd)
    except OSError as exc:
        raise MountPointError(f"cannot mount {mount.target}: {exc.strerror or exc}") from None
    finally:
        os.close(target_fd)


def _mount_plan(root_fd: int, plan: list[PlannedMount]) -> None:
    root_mount = mount_id(root_fd)

    def refuse(parent_fd: int, name: str) -> str | None:
        if mount_id(parent_fd) == root_mount:
            return (f"mount point {name!r} is missing from the image and reached through a symlink "
                    "inside an earlier mount: refused")
        return None

    maker = StubMaker(record=False, refuse=refuse)
    with RootDir(f"/proc/self/fd/{root_fd}", mkdir=maker.mkdir) as root:
        for mount in plan:
            _mount_one(root, mount, maker)


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
        sys.exit(_SETUP_FAILED)


def _setgroups_allowed() -> bool:
    try:
        with open("/proc/self/setgroups") as handle:
            return handle.read().strip() != "deny"
    except OSError:
        return True


def _await_network(sync: dict[str, int] | None) -> None:
    """Tell the host our network namespace exists; wait until slirp4netns has configured it (builder/execution/network.py)."""
    if sync is None:
        return
    os.write(sync["ready_fd"], b"1")
    os.close(sync["ready_fd"])
    up = os.read(sync["go_fd"], 1)
    os.close(sync["go_fd"])
    if up != b"1":
        print("wharfie: the step's network could not be set up", file=sys.stderr)
        sys.exit(125)
    # The step has no net_raw here (builder/execution/capabilities.py): root's ping goes through ICMP
    # datagram sockets, which this namespace's sysctl allows group 0 (podman's default). Best effort: a
    # job container's /proc/sys is read-only, and ping is not worth failing a step for.
    try:
        with open("/proc/sys/net/ipv4/ping_group_range", "w") as handle:
            handle.write("0 0\n")
    except OSError:
        pass


def _confine(spec: dict[str, Any]) -> pyseccomp.SyscallFilter:
    """Everything up to, not including, loading the seccomp filter."""
    # Built while the host's files are reachable; loaded last, just before exec.
    caps = frozenset(spec["caps"])
    seccomp_filter = build_filter(caps, no_new_privs=NO_NEW_PRIVS)
    top = last_cap()
    pivot_root_nr = pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, "pivot_root")
    mount_api.make_rprivate()
    root_fd = _mount_root(spec)
    try:
        _mount_plan(root_fd, [PlannedMount.from_json(mount) for mount in spec["mounts"]])
        os.fchdir(root_fd)
    finally:
        os.close(root_fd)
    mount_api.pivot_root_here(pivot_root_nr)
    join_fresh_session_keyring()
    os.chdir(spec["cwd"])
    apply_step_capabilities(top, lambda: _switch_user(spec), caps)
    return seccomp_filter


def main() -> None:
    spec = json.load(sys.stdin)  # the spec comes on stdin; the step itself gets /dev/null
    _await_network(spec.get("network_sync"))
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    try:
        seccomp_filter = _confine(spec)
    except (OSError, WharfieError) as exc:
        print(f"wharfie: sandbox set-up failed: {exc}", file=sys.stderr)
        sys.exit(_SETUP_FAILED)
    os.closerange(3, 1 << 16)  # nothing of the set-up reaches the step, even by mistake
    seccomp_filter.load()
    argv = spec["argv"]
    try:
        os.execvpe(argv[0], argv, spec["env"])
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte, should one ever get past RunSpec's checks
        print(f"wharfie: cannot run {argv[0]!r}: {getattr(exc, 'strerror', None) or exc}", file=sys.stderr)
        sys.exit(127)


if __name__ == "__main__":
    main()
