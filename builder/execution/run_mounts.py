"""`RUN --mount`: turning each parsed `Mount` into what the sandbox mounts for one step.

- `type=bind`: a directory or file of the context or of a stage/image, read
  only; with `rw` a scratch copy, so the step's writes are thrown away. The
  context is seen as COPY sees it: paths .dockerignore excludes are absent;
- `type=cache`: a directory under `<cache-dir>/mounts/` (0700) that outlives
  the build, keyed by `id` (default: the target). Inside the step it is
  mounted nosuid,nodev (builder/execution/mount_plan.py); after it, nothing that could
  raise privileges on the host is kept in it (`strip_privileges`: setuid and
  setgid bits cleared, device nodes removed, by a descriptor walk that
  follows no link). Two builds on one runner share it safely through
  `flock`: `shared` takes a shared lock (only `locked` users exclude each
  other), `locked` an exclusive one (waits), `private` takes an exclusive
  lock without waiting and, when the directory is busy, uses another
  instance of its own;
- `type=secret`: the value of `--secret id=NAME` written to a scratch file
  with the mount's mode (0400) and owner, bound read-only at
  `/run/secrets/NAME` (or `target`). The value is never logged and, being a
  mount, never reaches a layer, the config or the history;
- `type=tmpfs`: an empty tmpfs.

`RunMounts` is a context manager: locks are held and secret files exist only
while the step runs.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import posixpath
import re
import shutil
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from builder.context.dockerignore import IgnoreMatcher
from builder.execution.sandbox import Bind, Tmpfs
from builder.frontend import instructions as ins
from builder.steps.copy import copy_tree, safe_join
from oci.errors import WharfieError

__all__ = ["MountError", "ResolvedMounts", "RunMounts", "SecretSource", "cache_dir_for", "parse_secret_flag",
           "strip_privileges"]

_SLUG = re.compile(r"[^A-Za-z0-9_.-]+")


class MountError(WharfieError):
    """A RUN --mount that cannot be set up."""


@dataclass(frozen=True)
class SecretSource:
    """`--secret id=NAME,src=PATH` or `--secret id=NAME,env=VAR`: where a secret's value is read from, never the value."""

    id: str
    path: Path | None = None
    env: str | None = None


def parse_secret_flag(value: str, environ: Mapping[str, str] | None = None) -> SecretSource:
    """`id=NAME,src=PATH` | `id=NAME,env=VAR` (docker's `--secret`; `source`/`type=file|env` accepted too)."""
    fields: dict[str, str] = {}
    for item in value.split(","):
        key, sep, val = item.partition("=")
        if not sep or not val:
            raise MountError(f"--secret {value!r}: expected id=NAME,src=PATH or id=NAME,env=VAR")
        fields[{"source": "src"}.get(key.strip().lower(), key.strip().lower())] = val
    unknown = set(fields) - {"id", "src", "env", "type"}
    if unknown:
        raise MountError(f"--secret {value!r}: unknown key {min(unknown)}")
    if "id" not in fields:
        raise MountError(f"--secret {value!r}: id=NAME is required")
    kind = fields.get("type")
    if "src" in fields and kind != "env":
        return SecretSource(fields["id"], path=Path(fields["src"]))
    env = fields.get("env") or (fields.get("src") if kind == "env" else None) or fields["id"]
    return SecretSource(fields["id"], env=env)


def cache_dir_for(cache_root: Path, cache_id: str) -> Path:
    """`<cache-root>/mounts/<slug>-<hash>`: readable, and distinct for distinct ids."""
    slug = _SLUG.sub("_", cache_id).strip("_.")[:48] or "root"
    return cache_root / "mounts" / f"{slug}-{hashlib.sha256(cache_id.encode()).hexdigest()[:12]}"


@dataclass
class ResolvedMounts:
    binds: list[Bind] = field(default_factory=list)
    tmpfs: list[Tmpfs] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)  # secrets exposed as variables (never in history)


class RunMounts:
    """Resolves one step's mounts on entry; releases locks and removes secret copies on exit."""

    def __init__(self, mounts: tuple[ins.Mount, ...], *, workdir: str, context: Path, cache_root: Path,
                 secrets: Mapping[str, SecretSource], stage_root: Callable[[str], Path], scratch: Path,
                 ignore: IgnoreMatcher | None = None) -> None:
        self._mounts = mounts
        self._workdir = workdir
        self._context = context
        self._cache_root = cache_root
        self._secrets = secrets
        self._stage_root = stage_root
        self._scratch = scratch
        # The context's .dockerignore: ignored paths are hidden from binds of the context.
        self._context_excluded = ignore.matches if ignore is not None and ignore.patterns else None
        self._locks: list[int] = []
        self._caches: list[Path] = []
        self._count = 0

    def __enter__(self) -> ResolvedMounts:
        resolved = ResolvedMounts()
        try:
            for mount in self._mounts:
                self._resolve(mount, resolved)
        except BaseException:
            self._release()
            raise
        return resolved

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._release()

    def _release(self) -> None:
        # While the locks are still held, so a `locked` user of the cache never sees them.
        for directory in self._caches:
            strip_privileges(directory)
        self._caches.clear()
        for fd in self._locks:
            os.close(fd)  # closing drops the flock
        self._locks.clear()
        for made in (self._scratch / "secrets", self._scratch / "binds"):
            if made.exists():
                shutil.rmtree(made, ignore_errors=True)

    def _target(self, mount: ins.Mount) -> str:
        if not mount.target:
            raise MountError(f"RUN --mount type={mount.type}: target is required")
        return posixpath.normpath(posixpath.join(self._workdir, mount.target))

    def _resolve(self, mount: ins.Mount, out: ResolvedMounts) -> None:
        if mount.type == "bind":
            out.binds.append(Bind(self._bind_source(mount), self._target(mount), readonly=mount.readonly))
        elif mount.type == "cache":
            target = self._target(mount)
            out.binds.append(Bind(str(self._cache(mount, target)), target, readonly=mount.readonly))
        elif mount.type == "tmpfs":
            out.tmpfs.append(Tmpfs(self._target(mount), mount.size))
        elif mount.type == "secret":
            self._secret(mount, out)
        else:
            raise MountError(f"RUN --mount type={mount.type} is not supported")

    def _bind_source(self, mount: ins.Mount) -> str:
        """What a bind mounts: the source itself, or a view of it without what the step may not see.

        The context is seen as COPY sees it, .dockerignore applied (BuildKit sends
        the context filtered, so ignored files are absent from a bind too). When
        something below the source is ignored, a read-only bind gets a view of
        hard links in the scratch dir (cheap: no data is copied); a `rw` bind
        always gets a copy, so that the step's writes are discarded with it.
        """
        root = self._stage_root(mount.from_) if mount.from_ else self._context
        where = f"stage {mount.from_}" if mount.from_ else "the build context"
        excluded = None if mount.from_ else self._context_excluded
        source = safe_join(root, mount.source or "/", follow_last=True)
        rel = source.relative_to(root).as_posix()
        if not os.path.lexists(source) or (excluded is not None and rel != "." and excluded(rel)):
            raise MountError(f"RUN --mount type=bind: {mount.source or '/'} not found in {where}")
        if mount.readonly and not (excluded is not None and _excludes_below(root, source, excluded)):
            return str(source)
        views = self._scratch / "binds"
        views.mkdir(mode=0o700, exist_ok=True)
        self._count += 1
        view = views / str(self._count)
        copy_tree(root, source, view, excluded=excluded, link=mount.readonly)
        return str(view)

    def _cache(self, mount: ins.Mount, target: str) -> Path:
        if mount.from_:
            raise MountError("RUN --mount type=cache,from=... is not supported")
        base = cache_dir_for(self._cache_root, mount.id or target)
        base.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        if stat.S_IMODE(base.parent.stat().st_mode) & 0o077:
            base.parent.chmod(0o700)  # no other host user reaches a cache while a step writes into it
        sharing = mount.sharing or "shared"
        if sharing == "private":
            directory = self._private_instance(base)
        else:
            fd = self._lock(base.with_name(base.name + ".lock"), exclusive=sharing == "locked", wait=True)
            assert fd is not None
            directory = base
        if not directory.exists():
            directory.mkdir(mode=0o755)
            os.chmod(directory, mount.mode if mount.mode is not None else 0o755)
            os.chown(directory, mount.uid or 0, mount.gid or 0)
        self._caches.append(directory)
        return directory

    def _private_instance(self, base: Path) -> Path:
        index = 0
        while True:
            candidate = base if index == 0 else base.with_name(f"{base.name}.private-{index}")
            if self._lock(candidate.with_name(candidate.name + ".lock"), exclusive=True, wait=False) is not None:
                return candidate
            index += 1

    def _lock(self, path: Path, *, exclusive: bool, wait: bool) -> int | None:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        flags = (fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH) | (0 if wait else fcntl.LOCK_NB)
        try:
            fcntl.flock(fd, flags)
        except BlockingIOError:
            os.close(fd)
            return None
        self._locks.append(fd)
        return fd

    def _secret(self, mount: ins.Mount, out: ResolvedMounts) -> str | None:
        secret_id = mount.id or (posixpath.basename(mount.target) if mount.target else None)
        if not secret_id:
            raise MountError("RUN --mount type=secret: id or target is required")
        source = self._secrets.get(secret_id)
        value = _secret_value(source) if source is not None else None
        if value is None:
            if mount.required:
                raise MountError(f"secret {secret_id} is required but was not given (--secret id={secret_id},...)")
            return None
        if mount.env:
            out.env[mount.env] = value.decode(errors="replace")
            if not mount.target:
                return None
        target = self._target(mount) if mount.target else f"/run/secrets/{secret_id}"
        out.binds.append(Bind(str(self._secret_file(value, mount)), target, readonly=True))
        return target

    def _secret_file(self, value: bytes, mount: ins.Mount) -> Path:
        directory = self._scratch / "secrets"
        directory.mkdir(mode=0o700, exist_ok=True)
        self._count += 1
        path = directory / str(self._count)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            view = memoryview(value)
            while view:
                view = view[os.write(fd, view):]
            os.fchown(fd, mount.uid or 0, mount.gid or 0)
            os.fchmod(fd, mount.mode if mount.mode is not None else 0o400)
        finally:
            os.close(fd)
        return path


def _excludes_below(root: Path, source: Path, excluded: Callable[[str], bool]) -> bool:
    """Whether some path below the directory `source` is excluded (a walk of names only: no stat)."""
    if not source.is_dir() or source.is_symlink():
        return False
    for directory, dirs, files in os.walk(source):
        base = Path(directory).relative_to(root).as_posix()
        for name in (*dirs, *files):
            if excluded(name if base == "." else f"{base}/{name}"):
                return True
    return False


def strip_privileges(directory: Path) -> None:
    """Clear setuid/setgid bits of regular files and remove device nodes under `directory`.

    A step wrote them (as root, or as root of a rootless build): kept in a cache directory on the
    host, a setuid file would make any host user who reaches it that owner. os.fwalk walks by
    descriptor and never follows a symlink; each file is opened with O_NOFOLLOW relative to its
    directory's descriptor and changed through that descriptor.
    """
    for _, _, files, dir_fd in os.fwalk(directory, follow_symlinks=False):
        for name in files:
            try:
                st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                    os.unlink(name, dir_fd=dir_fd)
                elif stat.S_ISREG(st.st_mode) and st.st_mode & (stat.S_ISUID | stat.S_ISGID):
                    _clear_set_id(dir_fd, name, st)
            except FileNotFoundError:
                continue


def _clear_set_id(dir_fd: int, name: str, seen: os.stat_result) -> None:
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        st = os.fstat(fd)
        if (st.st_dev, st.st_ino) == (seen.st_dev, seen.st_ino):
            os.fchmod(fd, stat.S_IMODE(st.st_mode) & ~(stat.S_ISUID | stat.S_ISGID))
    finally:
        os.close(fd)


def _secret_value(source: SecretSource) -> bytes | None:
    if source.path is not None:
        try:
            return source.path.read_bytes()
        except OSError as exc:
            raise MountError(f"secret {source.id}: cannot read {source.path}: {exc.strerror}") from None
    if source.env is not None and source.env in os.environ:
        return os.environ[source.env].encode()
    return None
