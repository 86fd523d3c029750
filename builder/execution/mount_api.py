"""Linux's mount syscalls, called through ctypes: no `mount` program is ever run.

The sandbox mounts onto file descriptors, never onto paths: a target is
opened by secure resolution inside the rootfs (builder/mount_points.py) and
the new mount is attached to exactly that object with the mount API of
Linux 5.2+ (`open_tree` clones a bind source, `fsopen`/`fsconfig`/`fsmount`
make a new filesystem, `move_mount` attaches either to a descriptor).
Flags are set on the detached mount (`mount_setattr`, Linux 5.12+) before
it becomes visible, so a read-only bind is never writable for a moment and,
in a user namespace, the flags the kernel locks are left as they are rather
than having to be repeated as `mount -o remount` needs.

Python's `os` has none of these calls. Running util-linux `mount` instead
would mean running a program found by path with every capability, in a
mount namespace the build is filling: the hole builder/sandbox.py closes.
The syscall numbers below are the same on every architecture (the calls
came after the numbering was unified at 403); `pivot_root`'s is not.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterable, Mapping

__all__ = [
    "ATTR_NAMES", "MountAttr", "attach", "attributes", "clone_tree", "clone_tree_at", "make_rprivate", "new_filesystem",
    "pivot_root_here", "set_attributes",
]

_libc = ctypes.CDLL("libc.so.6", use_errno=True)
_libc.syscall.restype = ctypes.c_long

_SYS_OPEN_TREE = 428
_SYS_MOVE_MOUNT = 429
_SYS_FSOPEN = 430
_SYS_FSCONFIG = 431
_SYS_FSMOUNT = 432
_SYS_MOUNT_SETATTR = 442

_AT_FDCWD = -100
_AT_SYMLINK_NOFOLLOW = 0x100
_AT_EMPTY_PATH = 0x1000
_AT_RECURSIVE = 0x8000
_OPEN_TREE_CLONE = 1
_OPEN_TREE_CLOEXEC = os.O_CLOEXEC
_MOVE_MOUNT_F_EMPTY_PATH = 0x4
_MOVE_MOUNT_T_EMPTY_PATH = 0x40
_FSOPEN_CLOEXEC = 1
_FSMOUNT_CLOEXEC = 1
_FSCONFIG_SET_FLAG = 0
_FSCONFIG_SET_STRING = 1
_FSCONFIG_CMD_CREATE = 6
_MS_REC = 0x4000
_MS_PRIVATE = 1 << 18
_MNT_DETACH = 2


class MountAttr:
    """`MOUNT_ATTR_*` bits of mount_setattr(2) and fsmount(2)."""

    RDONLY = 0x1
    NOSUID = 0x2
    NODEV = 0x4
    NOEXEC = 0x8


ATTR_NAMES = {"ro": MountAttr.RDONLY, "nosuid": MountAttr.NOSUID, "nodev": MountAttr.NODEV,
              "noexec": MountAttr.NOEXEC}


class _MountAttrStruct(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def attributes(names: Iterable[str]) -> int:
    """`["ro", "nosuid"]` -> the MOUNT_ATTR bits."""
    bits = 0
    for name in names:
        bits |= ATTR_NAMES[name]
    return bits


def _check(result: int, what: str) -> int:
    if result < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def clone_tree(source: str, *, recursive: bool = False) -> int:
    """A detached bind mount of `source` (a host path wharfie chose; its last component must not be a symlink)."""
    flags = _OPEN_TREE_CLONE | _OPEN_TREE_CLOEXEC | _AT_SYMLINK_NOFOLLOW | (_AT_RECURSIVE if recursive else 0)
    fd = _libc.syscall(_SYS_OPEN_TREE, ctypes.c_int(_AT_FDCWD), os.fsencode(source), ctypes.c_uint(flags))
    return _check(fd, f"bind {source}")


def clone_tree_at(dir_fd: int) -> int:
    """A detached bind mount of the object `dir_fd` refers to (an O_PATH descriptor)."""
    flags = _OPEN_TREE_CLONE | _OPEN_TREE_CLOEXEC | _AT_EMPTY_PATH
    return _check(_libc.syscall(_SYS_OPEN_TREE, ctypes.c_int(dir_fd), b"", ctypes.c_uint(flags)), "bind onto itself")


def set_attributes(mount_fd: int, attrs: int) -> None:
    """Set (never clear) MOUNT_ATTR bits on the mount `mount_fd` refers to."""
    if not attrs:
        return
    attr = _MountAttrStruct(attr_set=attrs)
    _check(_libc.syscall(_SYS_MOUNT_SETATTR, ctypes.c_int(mount_fd), b"", ctypes.c_uint(_AT_EMPTY_PATH),
                         ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr))), "mount_setattr")


def new_filesystem(fstype: str, options: Mapping[str, str | None], attrs: int) -> int:
    """A detached mount of a new `fstype` filesystem; an option of value None is a flag."""
    fs_fd = _check(_libc.syscall(_SYS_FSOPEN, fstype.encode(), ctypes.c_uint(_FSOPEN_CLOEXEC)), f"fsopen {fstype}")
    try:
        for key, value in options.items():
            if value is None:
                result = _libc.syscall(_SYS_FSCONFIG, ctypes.c_int(fs_fd), ctypes.c_uint(_FSCONFIG_SET_FLAG),
                                       key.encode(), None, ctypes.c_int(0))
            else:
                result = _libc.syscall(_SYS_FSCONFIG, ctypes.c_int(fs_fd), ctypes.c_uint(_FSCONFIG_SET_STRING),
                                       key.encode(), value.encode(), ctypes.c_int(0))
            _check(result, f"{fstype} option {key}")
        _check(_libc.syscall(_SYS_FSCONFIG, ctypes.c_int(fs_fd), ctypes.c_uint(_FSCONFIG_CMD_CREATE), None, None,
                             ctypes.c_int(0)), f"create {fstype}")
        return _check(_libc.syscall(_SYS_FSMOUNT, ctypes.c_int(fs_fd), ctypes.c_uint(_FSMOUNT_CLOEXEC),
                                    ctypes.c_uint(attrs)), f"fsmount {fstype}")
    finally:
        os.close(fs_fd)


def attach(mount_fd: int, target_fd: int) -> None:
    """Attach the detached mount `mount_fd` on top of the object `target_fd` (an O_PATH descriptor) refers to."""
    flags = _MOVE_MOUNT_F_EMPTY_PATH | _MOVE_MOUNT_T_EMPTY_PATH
    _check(_libc.syscall(_SYS_MOVE_MOUNT, ctypes.c_int(mount_fd), b"", ctypes.c_int(target_fd), b"",
                         ctypes.c_uint(flags)), "move_mount")


def make_rprivate() -> None:
    """No mount made in this namespace propagates back to the one it was copied from."""
    _check(_libc.mount(None, b"/", None, ctypes.c_ulong(_MS_REC | _MS_PRIVATE), None), "make / private")


def pivot_root_here(pivot_root_nr: int) -> None:
    """runc's pivot: the cwd (a mount) becomes `/`, the old root is stacked on it and lazily detached."""
    _check(_libc.syscall(pivot_root_nr, b".", b"."), "pivot_root")
    _check(_libc.umount2(b".", ctypes.c_int(_MNT_DETACH)), "detach the old root")
    os.chdir("/")
