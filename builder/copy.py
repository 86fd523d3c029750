"""COPY and ADD: choosing sources, placing them at the destination, docker's way.

The rules, from the Dockerfile reference:
- sources are relative to the context (or another stage's rootfs with --from);
  none may leave it; wildcards follow Go's filepath.Match per path component;
- a directory source copies its contents, not itself;
- the destination is a directory when it ends with "/", or when there are
  several sources; a relative destination is relative to WORKDIR;
- files keep their mode; owner is root unless --chown; --chmod sets the mode of
  every copied file and directory; parent directories that must be created are
  root-owned 0755; symlinks are copied as links, hardlinks stay linked.
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable, Iterable

from oci.errors import WharfieError

__all__ = ["CopyOptions", "select_sources", "copy_into", "safe_join", "has_wildcard"]


@dataclass(frozen=True)
class CopyOptions:
    uid: int = 0
    gid: int = 0
    chmod: int | None = None
    # Paths (relative to the source root) to leave out: .dockerignore and --exclude.
    excluded: Callable[[str], bool] | None = None


def has_wildcard(path: str) -> bool:
    return any(ch in path for ch in "*?[")


def safe_join(root: Path, path: str, *, follow_last: bool = False) -> Path:
    """`root/path`, resolving `..` and symlinks as if `root` were `/`, like a chroot would.

    The result never leaves `root`. The last component is followed only when it
    is a symlink and `follow_last` is set (a destination that links to a directory).
    """
    pending = list(PurePosixPath("/" + path).parts[1:])
    resolved: list[str] = []
    links = 0
    while pending:
        part = pending.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        candidate = root.joinpath(*resolved, part)
        if candidate.is_symlink() and (pending or follow_last):
            links += 1
            if links > 40:
                raise WharfieError(f"too many levels of symbolic links in {path}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                resolved = []
            pending = target.split("/") + pending
            continue
        resolved.append(part)
    return root.joinpath(*resolved)


def _check_inside(source: str, what: str) -> str:
    if os.path.normpath(source).startswith(".."):
        raise WharfieError(f"{what}: source {source} is outside the build context")
    return os.path.normpath("/" + source).lstrip("/")


def select_sources(src_root: Path, patterns: Iterable[str], *, what: str,
                   excluded: Callable[[str], bool] | None = None,
                   match: Callable[[str, str], bool] | None = None) -> list[Path]:
    """Expand each source (wildcards included) to existing paths under `src_root`."""
    from builder.globmatch import match_path

    matcher = match or match_path
    found: list[Path] = []
    for pattern in patterns:
        rel = _check_inside(pattern, what)
        if not has_wildcard(rel):
            path = src_root / rel if rel else src_root
            if not os.path.lexists(path) or (rel and excluded and excluded(rel)):
                raise WharfieError(f"{what}: {pattern}: no such file or directory in the build context")
            found.append(path)
            continue
        matches = _glob(src_root, rel, matcher, excluded)
        if not matches:
            raise WharfieError(f"{what}: no source files were specified ({pattern} matches nothing)")
        found.extend(matches)
    return found


def _glob(root: Path, pattern: str, matcher: Callable[[str, str], bool],
          excluded: Callable[[str], bool] | None) -> list[Path]:
    parts = pattern.split("/")
    current = [root]
    for part in parts:
        nxt = []
        for base in current:
            if not has_wildcard(part):
                if os.path.lexists(base / part):
                    nxt.append(base / part)
                continue
            if not base.is_dir() or base.is_symlink():
                continue
            for name in sorted(os.listdir(base)):
                if matcher(part, name):
                    nxt.append(base / name)
        current = nxt
    return [p for p in current if not (excluded and excluded(str(p.relative_to(root))))]


class _Copier:
    def __init__(self, src_root: Path, rootfs: Path, options: CopyOptions) -> None:
        self.src_root = src_root
        self.rootfs = rootfs
        self.options = options
        self.links: dict[tuple[int, int], Path] = {}

    def mode_of(self, st: os.stat_result) -> int:
        if self.options.chmod is not None:
            return self.options.chmod
        return stat.S_IMODE(st.st_mode)

    def place(self, src: Path, dest: Path) -> None:
        st = os.lstat(src)
        if stat.S_ISDIR(st.st_mode):
            self.directory(src, dest, st)
        else:
            self.entry(src, dest, st)

    def directory(self, src: Path, dest: Path, st: os.stat_result) -> None:
        if dest.is_symlink() or (os.path.lexists(dest) and not dest.is_dir()):
            _remove(dest)
        if not os.path.lexists(dest):
            dest.mkdir()
            os.chown(dest, self.options.uid, self.options.gid, follow_symlinks=False)
            os.chmod(dest, self.mode_of(st))
        for name in sorted(os.listdir(src)):
            child = src / name
            rel = str(child.relative_to(self.src_root))
            if self.options.excluded and self.options.excluded(rel):
                continue
            self.place(child, dest / name)
        os.utime(dest, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)

    def entry(self, src: Path, dest: Path, st: os.stat_result) -> None:
        if os.path.lexists(dest):
            if dest.is_dir() and not dest.is_symlink():
                shutil.rmtree(dest)
            else:
                dest.unlink()
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in self.links:
            os.link(self.links[key], dest)
            return
        if stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(src), dest)
        elif stat.S_ISREG(st.st_mode):
            shutil.copyfile(src, dest, follow_symlinks=False)
        elif stat.S_ISFIFO(st.st_mode):
            os.mkfifo(dest)
        else:
            raise WharfieError(f"cannot copy {src.relative_to(self.src_root)}: unsupported file type")
        os.chown(dest, self.options.uid, self.options.gid, follow_symlinks=False)
        if not stat.S_ISLNK(st.st_mode):
            os.chmod(dest, self.mode_of(st))
        os.utime(dest, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
        if st.st_nlink > 1:
            self.links[key] = dest


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()


def make_parents(rootfs: Path, dest: Path) -> None:
    """Create missing parents of `dest` root-owned 0755, as docker does."""
    missing = []
    for parent in dest.parents:
        if parent == rootfs or os.path.lexists(parent):
            break
        missing.append(parent)
    for parent in reversed(missing):
        parent.mkdir()
        os.chown(parent, 0, 0)
        os.chmod(parent, 0o755)


def copy_into(rootfs: Path, src_root: Path, sources: list[Path], dest: str, *, workdir: str,
              options: CopyOptions, what: str) -> None:
    """Copy `sources` (already selected under `src_root`) to `dest` in the rootfs."""
    dest_abs = dest if dest.startswith("/") else f"{workdir.rstrip('/')}/{dest}"
    to_dir = dest.endswith(("/", "/.")) or dest in (".", "") or len(sources) > 1
    target = safe_join(rootfs, dest_abs, follow_last=True)
    if len(sources) > 1 and os.path.lexists(target) and not target.is_dir():
        raise WharfieError(f"{what}: when using COPY with more than one source file, "
                           "the destination must be a directory and end with a /")
    copier = _Copier(src_root, rootfs, options)
    for src in sources:
        if src.is_dir() and not src.is_symlink():
            place_at = target  # a directory's contents, not the directory itself
        elif to_dir or target.is_dir():
            place_at = target / src.name
        else:
            place_at = target
        make_parents(rootfs, place_at)
        copier.place(src, place_at)
