"""COPY and ADD: choosing sources, placing them at the destination, docker's way.

The rules, from the Dockerfile reference:
- sources are relative to the context (or another stage's rootfs with --from);
  none may leave it; wildcards follow Go's filepath.Match per path component;
- a directory source copies its contents, not itself;
- the destination is a directory when it ends with "/", or when there are
  several sources; a relative destination is relative to WORKDIR;
- files keep their mode; owner is root unless --chown (or, with `keep_owner`,
  the source's owner: COPY --from); --chmod sets the mode of every copied file
  and directory below the destination; missing parents, and the destination
  of a directory's contents, are created 0755 owned by the --chown user (root
  without one), as BuildKit's fsutil copier does; a source that is itself a
  symlink is followed, symlinks inside a copied directory are copied as links,
  hardlinks stay linked.
"""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from builder.frontend.globmatch import BadPatternError, has_wildcards, match_path
from builder.frontend.heredoc import Heredoc, scratch_file_name
from layers.remove import remove_entry
from layers.securepath import resolve_in_root
from oci.errors import DockerfileError, UnsafePathError, WharfieError

__all__ = ["CopyOptions", "copy_into", "copy_tree", "copy_with_parents", "follow_source", "make_parents",
           "on_the_way", "parse_chmod", "reachable", "safe_join", "select_sources", "source_prefixes",
           "write_heredocs"]


@dataclass(frozen=True)
class CopyOptions:
    uid: int = 0
    gid: int = 0
    chmod: int | None = None
    # COPY --from without --chown: entries keep their owners from the source stage or image
    # (created parents are then root's). From the build context they are root's (uid/gid).
    keep_owner: bool = False
    # Paths (relative to the source root) to leave out: .dockerignore and --exclude.
    excluded: Callable[[str], bool] | None = None
    # Hard-link regular files instead of copying them (a read-only view of a tree: the
    # links share the source's inode, so they need keep_owner and no chmod, and the
    # view must only ever be mounted read-only). Falls back to a copy where linking fails.
    link: bool = False


def safe_join(root: Path, path: str, *, follow_last: bool = False) -> Path:
    """`layers.securepath.resolve_in_root` under its old name, kept only for builder/execution's
    sandbox.py and run_mounts.py until they import it from there: one rule, one implementation."""
    return resolve_in_root(root, path, follow_last=follow_last)


def _check_inside(source: str, what: str) -> str:
    cleaned = os.path.normpath(source)
    if cleaned == ".." or cleaned.startswith("../"):
        raise WharfieError(f"{what}: source {source} is outside the build context")
    return os.path.normpath("/" + source).lstrip("/")


def _contained(root: Path, rel: str) -> Path:
    """`root/rel` as named, unless a symlink on its way leads elsewhere than its resolution inside `root`:
    then that resolution (keeping the name lets --parents and .dockerignore see the path as written)."""
    literal = root / rel
    inside = resolve_in_root(root, rel)
    return literal if inside == literal or _same_directory(literal.parent, inside.parent) else inside


def _same_directory(a: Path, b: Path) -> bool:
    try:
        first, second = os.stat(a), os.stat(b)
    except OSError:
        return False
    return (first.st_dev, first.st_ino) == (second.st_dev, second.st_ino)


def select_sources(src_root: Path, patterns: Iterable[str], *, what: str,
                   excluded: Callable[[str], bool] | None = None,
                   match: Callable[[str, str], bool] | None = None) -> list[Path]:
    """Expand each source (wildcards included) to existing paths under `src_root`.

    Symlinks on the way to a source are resolved inside `src_root` (as if it were `/`),
    so a link in the context or in a --from stage never leads to the host's files.
    """
    matcher = match or match_path
    found: list[Path] = []
    for pattern in patterns:
        rel = _check_inside(pattern, what)
        if not has_wildcards(rel):  # BuildKit's test: an escaped wildcard names a file literally
            path = _contained(src_root, rel) if rel else src_root
            if not os.path.lexists(path) or (rel and excluded and excluded(rel)):
                raise WharfieError(f"{what}: {pattern}: no such file or directory in the build context")
            found.append(path)
            continue
        try:
            matches = _glob(src_root, rel, matcher, excluded)
        except BadPatternError as exc:
            raise WharfieError(f"{what}: {pattern}: {exc}") from None
        if not matches:
            raise WharfieError(f"{what}: no source files were specified ({pattern} matches nothing)")
        found.extend(matches)
    return found


def _glob(root: Path, pattern: str, matcher: Callable[[str, str], bool],
          excluded: Callable[[str], bool] | None) -> list[Path]:
    parts = pattern.split("/")
    current = [root]
    matching = False  # BuildKit (fsutil's splitWildcards): literal up to the first wildcard, matched after it
    for part in parts:
        matching = matching or has_wildcards(part)
        nxt = []
        for base in current:
            if not has_wildcards(part) and not (matching and "\\" in part):  # the matcher undoes escapes
                candidate = _contained(root, str((base / part).relative_to(root)))
                if os.path.lexists(candidate):
                    nxt.append(candidate)
                continue
            if base.is_symlink():  # a directory named through a link (`lnk/*`) is listed where it leads, inside root
                base = safe_join(root, str(base.relative_to(root)), follow_last=True)
            if not base.is_dir():
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

    def owner_of(self, st: os.stat_result) -> tuple[int, int]:
        if self.options.keep_owner:
            return st.st_uid, st.st_gid
        return self.options.uid, self.options.gid

    def place(self, src: Path, dest: Path) -> None:
        st = os.lstat(src)
        if stat.S_ISDIR(st.st_mode):
            self.directory(src, dest, st)
        else:
            self.entry(src, dest, st)

    def contents(self, src: Path, dest: Path) -> None:
        """A directory source: its contents into `dest`.

        BuildKit makes a missing `dest` like a missing parent (0755, owned as the
        copy's parents are) and leaves an existing one as it is: the source
        directory's own mode and owner, and --chmod, apply only below it.
        """
        if dest.is_symlink() or (os.path.lexists(dest) and not dest.is_dir()):
            remove_entry(dest)
        if not os.path.lexists(dest):
            uid, gid = self.parent_owner()
            dest.mkdir()
            os.chown(dest, uid, gid)
            os.chmod(dest, 0o755)
        self.children(src, dest)

    def parent_owner(self) -> tuple[int, int]:
        return (0, 0) if self.options.keep_owner else (self.options.uid, self.options.gid)

    def children(self, src: Path, dest: Path) -> None:
        for name in sorted(os.listdir(src)):
            child = src / name
            rel = str(child.relative_to(self.src_root))
            if self.options.excluded and self.options.excluded(rel):
                continue
            self.place(child, dest / name)

    def directory(self, src: Path, dest: Path, st: os.stat_result) -> None:
        if dest.is_symlink() or (os.path.lexists(dest) and not dest.is_dir()):
            remove_entry(dest)
        if not os.path.lexists(dest):
            dest.mkdir()
        # An existing directory below the destination takes the source's metadata (BuildKit's
        # copier passes overwriteTargetMetadata for everything under the top directory).
        os.chown(dest, *self.owner_of(st), follow_symlinks=False)
        os.chmod(dest, self.mode_of(st))
        self.children(src, dest)
        os.utime(dest, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)

    def entry(self, src: Path, dest: Path, st: os.stat_result) -> None:
        remove_entry(dest, missing_ok=True)
        key = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and key in self.links:
            os.link(self.links[key], dest)
            return
        if stat.S_ISREG(st.st_mode) and self.options.link and self._link(src, dest):
            return
        if stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(src), dest)
        elif stat.S_ISREG(st.st_mode):
            shutil.copyfile(src, dest, follow_symlinks=False)
        elif stat.S_ISFIFO(st.st_mode):
            os.mkfifo(dest)
        else:
            raise WharfieError(f"cannot copy {src.relative_to(self.src_root)}: unsupported file type")
        os.chown(dest, *self.owner_of(st), follow_symlinks=False)
        if not stat.S_ISLNK(st.st_mode):
            os.chmod(dest, self.mode_of(st))
        os.utime(dest, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
        if st.st_nlink > 1:
            self.links[key] = dest


    def _link(self, src: Path, dest: Path) -> bool:
        assert self.options.keep_owner and self.options.chmod is None, "a link cannot change its source's metadata"
        try:
            os.link(src, dest, follow_symlinks=False)
        except OSError:
            return False  # another filesystem, or a file we may not link (protected_hardlinks): copy it
        return True


def copy_tree(src_root: Path, source: Path, dest: Path, *, excluded: Callable[[str], bool] | None,
              link: bool) -> None:
    """`source` (under `src_root`) recreated at `dest` as it is, owners and modes kept, less `excluded` paths.

    `excluded` sees paths relative to `src_root`, as COPY's .dockerignore filter does.
    """
    _Copier(src_root, dest.parent, CopyOptions(keep_owner=True, excluded=excluded, link=link)).place(source, dest)


def make_parents(rootfs: Path, dest: Path, *, uid: int = 0, gid: int = 0) -> None:
    """Create the missing parents of `dest` 0755, owned by uid:gid.

    BuildKit creates them with fsutil's MkdirAll(dir, 0755, chown): owned by the
    COPY --chown user (root without one), and by the USER for WORKDIR.
    """
    missing = []
    for parent in dest.parents:
        if parent == rootfs or os.path.lexists(parent):
            break
        missing.append(parent)
    for parent in reversed(missing):
        parent.mkdir()
        os.chown(parent, uid, gid)
        os.chmod(parent, 0o755)


def follow_source(src_root: Path, src: Path, what: str) -> Path:
    """A source that is itself a symlink is followed, inside `src_root` (BuildKit's FollowSymlinks)."""
    if not src.is_symlink():
        return src
    resolved = resolve_in_root(src_root, str(src.relative_to(src_root)), follow_last=True)
    if not os.path.lexists(resolved):
        raise WharfieError(f"{what}: source {src.relative_to(src_root)} is a symlink to nothing")
    return resolved


def copy_into(rootfs: Path, src_root: Path, sources: list[Path], dest: str, *, workdir: str,
              options: CopyOptions, what: str) -> None:
    """Copy `sources` (already selected under `src_root`) to `dest` in the rootfs."""
    dest_abs = dest if dest.startswith("/") else f"{workdir.rstrip('/')}/{dest}"
    to_dir = dest.endswith(("/", "/.")) or dest in (".", "") or len(sources) > 1
    target = resolve_in_root(rootfs, dest_abs, follow_last=True)
    if len(sources) > 1 and os.path.lexists(target) and not target.is_dir():
        raise WharfieError(f"{what}: when using COPY with more than one source file, "
                           "the destination must be a directory and end with a /")
    copier = _Copier(src_root, rootfs, options)
    uid, gid = copier.parent_owner()
    for named in sources:
        src = follow_source(src_root, named, what)
        if src.is_dir() and not src.is_symlink():
            make_parents(rootfs, target, uid=uid, gid=gid)
            copier.contents(src, target)  # a directory's contents, not the directory itself
            continue
        place_at = target / named.name if to_dir or target.is_dir() else target
        make_parents(rootfs, place_at, uid=uid, gid=gid)
        copier.place(src, place_at)


def copy_with_parents(rootfs: Path, src_root: Path, patterns: list[str], dest: str, workdir: str,
                       options: CopyOptions, excluded: Callable[[str], bool] | None) -> None:
    """`COPY --parents`: each source keeps its path under dest, counted from the context root or
    from a `/./` pivot in the pattern (BuildKit's rule)."""
    for pattern in patterns:
        base, pivot, _ = pattern.rpartition("/./")
        start = src_root / os.path.normpath(base).lstrip("/") if pivot else src_root
        for src in select_sources(src_root, [pattern.replace("/./", "/")], what="COPY", excluded=excluded,
                                  match=match_path):
            rel = _below(src_root, start, src, pattern).as_posix()
            target = f"{dest.rstrip('/')}/{rel}" + ("/" if src.is_dir() and not src.is_symlink() else "")
            copy_into(rootfs, src_root, [src], target, workdir=workdir, options=options, what="COPY")


def _below(src_root: Path, start: Path, src: Path, pattern: str) -> PurePosixPath:
    """`src`'s path below the --parents pivot `start`; where a link on the way (`a -> /etc`) led the
    source elsewhere, both are taken as resolved inside `src_root`."""
    if src == start or start in src.parents:
        return PurePosixPath(src.relative_to(start))
    resolved = safe_join(src_root, str(src.relative_to(src_root)))
    pivot = safe_join(src_root, str(start.relative_to(src_root)), follow_last=True)
    if resolved != pivot and pivot not in resolved.parents:
        raise WharfieError(f"COPY --parents: {pattern}: {src.relative_to(src_root)} is not below the pivot "
                           "once links are followed")
    return PurePosixPath(resolved.relative_to(pivot))


def source_prefixes(sources: tuple[str, ...]) -> list[str]:
    """Each source's leading components before any wildcard, cleaned ("" means the whole tree)."""
    prefixes = []
    for source in sources:
        parts = [p for p in os.path.normpath("/" + source).split("/") if p]
        literal = []
        for part in parts:
            if any(ch in part for ch in "*?[\\"):
                break
            literal.append(part)
        prefixes.append("/".join(literal))
    return prefixes


def on_the_way(path: str, prefixes: list[str]) -> bool:
    """Whether `path` is a copied source, inside one, or a directory leading to one."""
    return any(not p or path == p or path.startswith(p + "/") or p.startswith(path + "/") for p in prefixes)


def reachable(root: Path, prefix: str) -> bool:
    """The prefix exists in the partial tree with no symlink on its way (which could lead outside it)."""
    literal = root.joinpath(*[p for p in prefix.split("/") if p])
    try:
        return resolve_in_root(root, prefix, follow_last=True) == literal and os.path.lexists(literal)
    except UnsafePathError:
        return False


def write_heredocs(heredocs: tuple[Heredoc, ...], directory: Path) -> list[str]:
    """`COPY <<EOF /dest`: each heredoc becomes a 0644 file named after it in `directory`; returns the names.

    `directory` is an empty scratch directory wharfie made. The names come from
    the Dockerfile: each must be one component (the parser already refused the
    others) and is created by descriptor, `O_EXCL|O_NOFOLLOW`, so nothing can
    lead the write out of `directory`. A name given twice holds the last body.
    """
    bodies: dict[str, str] = {}
    for doc in heredocs:
        name = scratch_file_name(doc.name)
        if name is None or name != doc.name:
            raise DockerfileError(f"heredoc name {doc.name!r} is not a file name", line=doc.line or None)
        bodies.pop(name, None)
        bodies[name] = doc.text
    dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        for name, text in bodies.items():
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644,
                         dir_fd=dir_fd)
            with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as handle:
                os.fchmod(fd, 0o644)  # whatever the umask
                handle.write(text)
    finally:
        os.close(dir_fd)
    order = list(dict.fromkeys(doc.name for doc in heredocs))
    return order


def parse_chmod(value: str | None, line: int) -> int | None:
    """The mode of `--chmod=0755` (octal only, as BuildKit's stable syntax)."""
    if value is None:
        return None
    try:
        mode = int(value, 8)
    except ValueError:
        raise DockerfileError(f"invalid --chmod={value}: expected an octal mode such as 0755", line=line) from None
    if mode > 0o7777:
        raise DockerfileError(f"invalid --chmod={value}: mode out of range", line=line)
    return mode
