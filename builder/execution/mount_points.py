"""Mount points inside a rootfs: found, made and removed by file descriptor, never by host path.

A step's rootfs is untrusted: its symlinks, the context's and a stage's
were all written by the build. A mount target is resolved with the one
path-containment rule of the project, layers/securepath's `RootDir`: each
component opened with `O_NOFOLLOW` relative to its parent's descriptor,
symlinks followed as the chroot would (an absolute target from the root,
the last component too, as docker resolves a mount destination), nothing
ever outside the root. The result is an `O_PATH` descriptor of the mount
point itself, which builder/mount_api.py mounts onto, so no path is looked
up again between the check and the use.

A missing mount point is made relative to its resolved parent's descriptor
(`mkdirat`, `openat(O_CREAT|O_EXCL|O_NOFOLLOW)`). `StubMaker` records each
one it makes as a `Stub`: the parent's descriptor (kept open), the name and
the (device, inode) made (and a file's ctime). `remove_stubs` removes
exactly those objects, relative to the kept descriptor and only while the
name still names the inode made, so a step that moves the directory away and plants a symlink in
its place cannot steer the clean-up anywhere, let alone onto the host.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field

from layers.securepath import MAX_SYMLINKS, RootDir
from oci.errors import UnsafePathError, WharfieError

__all__ = ["MountPointError", "Stub", "StubMaker", "mount_id", "open_mount_point", "remove_stubs"]

_PATH_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC


class MountPointError(WharfieError):
    """A mount target that cannot be found or made inside the rootfs."""


@dataclass(frozen=True)
class Stub:
    """A mount point wharfie made: removed after the step, if it is still the object made and still empty."""

    parent_fd: int  # O_PATH descriptor of the directory it was made in, owned by the stub
    name: str
    dev: int
    ino: int
    ctime_ns: int  # a file's: a new empty file of the step's that reuses the inode number is not ours
    directory: bool
    parent_times: tuple[int, int]  # the parent's (atime_ns, mtime_ns) before, put back after removal


@dataclass
class StubMaker:
    """Makes missing mount points by descriptor; `record` keeps them as stubs, `refuse` may veto one first."""

    record: bool = True
    refuse: Callable[[int, str], str | None] | None = None  # (parent fd, name) -> why not, or None
    stubs: list[Stub] = field(default_factory=list)

    def mkdir(self, parent_fd: int, name: str) -> None:
        self._make(parent_fd, name, directory=True)

    def make(self, parent_fd: int, name: str, *, directory: bool) -> None:
        self._make(parent_fd, name, directory=directory)

    def _make(self, parent_fd: int, name: str, *, directory: bool) -> None:
        why = self.refuse(parent_fd, name) if self.refuse is not None else None
        if why is not None:
            raise MountPointError(why)
        before = os.stat(parent_fd)
        if directory:
            os.mkdir(name, 0o755, dir_fd=parent_fd)
        else:
            os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644,
                             dir_fd=parent_fd))
        if self.record:
            made = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
            self.stubs.append(Stub(os.dup(parent_fd), name, made.st_dev, made.st_ino, made.st_ctime_ns, directory,
                                   (before.st_atime_ns, before.st_mtime_ns)))


def _components(target: str) -> list[str]:
    return [part for part in target.split("/") if part not in ("", ".")]


def open_mount_point(root: RootDir, target: str, *, directory: bool | None, maker: StubMaker | None) -> int:
    """An O_PATH descriptor of the mount point `target` names inside `root` (made when missing and `maker`).

    `directory`: what it must be (None: anything; then it is never made). The caller owns the
    descriptor. `root` must have been opened with `mkdir=maker.mkdir` for missing parent directories
    to be made the same way.
    """
    parts = _components(target)
    links = 0
    try:
        while True:
            if not parts or parts[-1] == "..":
                fd, _ = root.resolve_dir(parts, create=False, name=target)
                return fd if fd != root.fd else os.dup(fd)
            found = _open_last(root, parts, target, directory, maker)
            if isinstance(found, int):
                return found
            links += 1
            if links > MAX_SYMLINKS:
                raise MountPointError(f"mount point {target}: too many levels of symlinks")
            parts = found
    except UnsafePathError as exc:
        raise MountPointError(f"mount point {target}: {exc}") from None
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise MountPointError(f"mount point {target}: {exc.strerror or exc}") from None


def _open_last(root: RootDir, parts: list[str], target: str, directory: bool | None,
               maker: StubMaker | None) -> int | list[str]:
    """The mount point's descriptor, or the components to resolve next when the last one is a symlink."""
    parent_fd, resolved = root.resolve_dir(parts[:-1], create=maker is not None and directory is not None, name=target)
    name = parts[-1]
    try:
        try:
            st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        except FileNotFoundError:
            if maker is None or directory is None:
                raise
            maker.make(parent_fd, name, directory=directory)
            st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            link = os.readlink(name, dir_fd=parent_fd)
            return _components(link) if link.startswith("/") else [*resolved, *_components(link)]
        fd = os.open(name, _PATH_FLAGS, dir_fd=parent_fd)
        if directory is not None and stat.S_ISDIR(os.fstat(fd).st_mode) != directory:
            os.close(fd)
            kind = "a directory" if directory else "a file"
            raise MountPointError(f"mount point {target}: {'/'.join([*resolved, name])} is not {kind}")
        return fd
    finally:
        if parent_fd != root.fd:
            os.close(parent_fd)


def mount_id(fd: int) -> int:
    """The id of the mount that `fd`'s object is on (from /proc/self/fdinfo)."""
    with open(f"/proc/self/fdinfo/{fd}") as info:
        for line in info:
            if line.startswith("mnt_id:"):
                return int(line.split()[1])
    raise OSError(f"no mnt_id for descriptor {fd}")


def remove_stubs(stubs: list[Stub]) -> None:
    """Remove the stubs (last made first) that are still what was made, empty; close their descriptors."""
    for stub in reversed(stubs):
        try:
            if _still_ours(stub):
                if stub.directory:
                    os.rmdir(stub.name, dir_fd=stub.parent_fd)
                else:
                    os.unlink(stub.name, dir_fd=stub.parent_fd)
                # Put the parent's times back, so a walk snapshot does not see it changed.
                os.utime(f"/proc/self/fd/{stub.parent_fd}", ns=stub.parent_times)
        except OSError:
            pass  # the step put something there: it is the step's now
        finally:
            os.close(stub.parent_fd)
    stubs.clear()


def _still_ours(stub: Stub) -> bool:
    try:
        st = os.stat(stub.name, dir_fd=stub.parent_fd, follow_symlinks=False)
    except OSError:
        return False
    if (st.st_dev, st.st_ino) != (stub.dev, stub.ino):
        return False
    if stub.directory:  # its ctime moves with every entry made in it; rmdir refuses it unless empty
        return stat.S_ISDIR(st.st_mode)
    return stat.S_ISREG(st.st_mode) and st.st_size == 0 and st.st_ctime_ns == stub.ctime_ns
