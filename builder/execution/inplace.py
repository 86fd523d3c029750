"""In-place builds (kaniko's way): the stage's filesystem is this container's own `/`.

For CI containers that allow no namespace at all. The base image is
extracted over `/`, RUN executes directly, and snapshots walk `/`. What must
survive and never be captured is the ignore list: the kernel's filesystems,
wharfie's own interpreter, code and state (in wharfie's image: /wharfie and the
paths /wharfie/etc/own-paths names), the build context, every mounted
volume (from /proc/self/mountinfo), the files the runtime bind-mounts
(/etc/hosts, /etc/resolv.conf, /etc/hostname, /var/run/secrets) and
`--ignore-path`. Clearing `/` between stages removes everything else.

No mount can be made here, so RUN --mount is emulated: a secret is a file
written at its target for the step's duration; cache, bind and tmpfs
targets become symlinks to the cache directory, a copy of the source, or an
empty scratch directory. Their targets are ignored by the step's snapshot.
"""

from __future__ import annotations

import errno
import functools
import logging
import os
import shutil
import stat
import subprocess
import sys
import tarfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import builder
from builder.execution.credential_guard import StepCapabilities, in_place_step_capabilities
from builder.execution.sandbox import RunFailed, RunSpec, follow_output
from layers.compress import open_decompressed
from layers.extract import extract_layer
from layers.walk import mount_points
from oci.errors import WharfieError
from oci.layer import Layer

__all__ = ["InPlaceRunner", "clear_root", "extract_filtered", "in_place_ignore", "is_ignored"]

log = logging.getLogger("wharfie")

_ALWAYS_IGNORED = ("proc", "sys", "dev", "etc/hosts", "etc/resolv.conf", "etc/hostname", "var/run/secrets",
                   "run/secrets/kubernetes.io", ".dockerenv", "run/.containerenv")


def _mount_points() -> list[str]:
    """Every mount of this container below `/`: never cleared, extracted over or captured."""
    try:
        return mount_points(Path("/"))
    except OSError as exc:
        raise WharfieError(f"in place: cannot read the mount table (/proc/self/mountinfo): {exc.strerror}; "
                           "without it mounted volumes could be emptied") from None


# Where images keep their own files: wharfie's files there hide the image's (see _tool_paths).
_IMAGE_AREAS = ("/usr/", "/lib", "/bin/", "/sbin/", "/etc/", "/var/")
OWN_PATHS_FILE = "etc/own-paths"


@functools.cache
def _tool_paths() -> tuple[str, ...]:
    """wharfie's own code, its interpreter and the libraries it has loaded, and what its installation owns.

    wharfie's image keeps all of it under /wharfie, and names in /wharfie/etc/own-paths the few
    paths it also owns for kaniko's users (/kaniko, /busybox). Installed elsewhere (pip on a
    distribution's Python) its files sit where images keep theirs, which the build must then leave
    alone: the built image loses its own files there, and a warning says so.
    """
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.dirname(builder.__file__))}
    paths.update(p for p in sys.path if p and os.path.isdir(p) and p not in ("/", "/usr", "/usr/lib", "/usr/local"))
    try:
        owned = Path(sys.prefix, OWN_PATHS_FILE).read_text().split()
    except OSError:
        owned = []
    paths.update(p for p in owned if p.startswith("/"))
    kept = tuple(sorted(p for p in paths if p not in ("/", "/usr", "/usr/local")))
    shadowed = [p for p in kept if p.startswith(_IMAGE_AREAS)]
    if shadowed:
        log.warning("warning: in place, wharfie's own files at %s are kept as they are and never captured, so the "
                    "built image's own files there are lost; wharfie's image keeps everything under /wharfie",
                    ", ".join(shadowed))
    return kept


def in_place_ignore(*, work_dir: Path, cache_dir: Path, context: Path, extra: Iterable[str] = ()) -> tuple[str, ...]:
    """Relative paths of `/` that in-place builds never clear, extract over, or capture."""
    paths = [*_ALWAYS_IGNORED, *_tool_paths(), *_mount_points(), str(work_dir), str(cache_dir), str(context), *extra]
    cleaned = {os.path.normpath("/" + p).lstrip("/") for p in paths}
    return tuple(sorted(p for p in cleaned if p))


def is_ignored(rel: str, ignore: Sequence[str]) -> bool:
    return any(rel == p or rel.startswith(p + "/") for p in ignore)


def _has_ignored_below(rel: str, ignore: Sequence[str]) -> bool:
    prefix = rel + "/" if rel else ""
    return any(p.startswith(prefix) for p in ignore)


def clear_root(root: Path, ignore: Sequence[str]) -> None:
    """Delete everything under `root` except ignored paths and the directories leading to them."""
    pending = [""]
    while pending:
        rel_dir = pending.pop()
        try:
            with os.scandir(os.path.join(root, rel_dir)) as entries:
                names = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in entries]
        except FileNotFoundError:
            continue
        for name, is_dir in names:
            rel = f"{rel_dir}/{name}" if rel_dir else name
            if is_ignored(rel, ignore):
                continue
            if is_dir and _has_ignored_below(rel, ignore):
                pending.append(rel)
            else:
                _remove_gone_ok(os.path.join(root, rel), is_dir)


def _remove_gone_ok(path: str, is_dir: bool) -> None:
    """Remove `path`; another process of the container removing it first is fine."""
    try:
        if is_dir:
            shutil.rmtree(path, onerror=_tolerate_vanished)
        else:
            os.unlink(path)
    except FileNotFoundError:
        pass


def _tolerate_vanished(function: object, path: str, excinfo: tuple[type[BaseException], BaseException, object]) -> None:
    error = excinfo[1]
    if isinstance(error, FileNotFoundError):
        return
    if isinstance(error, OSError) and error.errno == errno.ENOTEMPTY:
        log.warning("warning: %s: another process wrote into it while / was cleared; left in place", path)
        return
    raise error


def extract_filtered(layer: Layer, root: Path, ignore: Sequence[str], scratch: Path) -> None:
    """Extract `layer` onto `root`, leaving out entries (and whiteouts) at ignored paths."""
    filtered = scratch / "filtered.tar"
    with layer.open_compressed() as blob, open_decompressed(blob, "auto") as stream, \
            tarfile.open(fileobj=stream, mode="r|", errors="surrogateescape") as source, \
            tarfile.open(filtered, "w", format=tarfile.PAX_FORMAT, errors="surrogateescape") as out:
        for member in source:
            rel = os.path.normpath("/" + member.name).lstrip("/")
            name = rel.rpartition("/")[2]
            target = rel[: -len(name)] + name[4:] if name.startswith(".wh.") and name != ".wh..wh..opq" else rel
            if rel and is_ignored(target, ignore):
                continue
            if rel and not member.isdir() and _has_ignored_below(rel, ignore):
                log.warning("warning: in place, %s stays a directory (it holds %s)", rel, "an ignored path")
                continue
            out.addfile(member, source.extractfile(member) if member.isreg() else None)
            source.members = []  # type: ignore[attr-defined]  # forget read members: memory stays flat
    try:
        with open(filtered, "rb") as handle:
            extract_layer(handle, root, compression="none")
    finally:
        filtered.unlink()


class InPlaceRunner:
    """Runs a step's command directly in `/` (no namespaces), with RUN --mount emulated."""

    def __init__(self, ignore: Sequence[str], scratch: Path) -> None:
        self.ignore = tuple(ignore)
        self._scratch = scratch
        self._warned = False

    def mount_ignores(self, spec: RunSpec) -> tuple[str, ...]:
        """The step's mount targets, and where what was there is put aside: never in its layer."""
        out: list[str] = []
        for target in [b.target for b in spec.binds] + [t.target for t in spec.tmpfs]:
            rel = os.path.normpath("/" + target).lstrip("/")
            parent, _, name = rel.rpartition("/")
            out += [rel, f"{parent}/.wharfie-aside-{name}" if parent else f".wharfie-aside-{name}"]
        return tuple(out)

    def _say_once(self, capabilities: StepCapabilities) -> None:
        if self._warned:
            return
        self._warned = True
        if capabilities.marker is None:
            log.warning("warning: in place, RUN steps hold every capability this job's processes hold, so a step "
                        "can read their environment (/proc/PID/environ): build in a sandbox, or keep credentials "
                        "out of the job's environment")
        else:
            log.debug("in place: RUN steps get docker's capabilities without %s, so they cannot read the "
                      "environment or memory of this job's processes", capabilities.marker)

    def __call__(self, spec: RunSpec, output: Callable[[str], None] | None) -> None:
        if spec.network == "none":
            log.warning("warning: RUN --network=none cannot be honoured in place (no network namespace)")
        capabilities = in_place_step_capabilities()
        self._say_once(capabilities)
        placed = _Placements(spec.root, self._scratch)
        try:
            for bind in spec.binds:
                placed.put(bind.target, bind.source)
            for index, tmpfs in enumerate(spec.tmpfs):
                empty = self._scratch / f"tmpfs-{index}"
                empty.mkdir(mode=0o1777)
                placed.put(tmpfs.target, str(empty))
            code, tail = _execute(spec, output, capabilities)
        finally:
            placed.undo()
        if code != 0:
            raise RunFailed(code, tail)


def _execute(spec: RunSpec, output: Callable[[str], None] | None,
             capabilities: StepCapabilities) -> tuple[int, list[str]]:
    try:
        # preexec_fn: two kinds of prctl through a function looked up beforehand, nothing that takes
        # a lock another thread could hold at the fork (builder/execution/credential_guard.py).
        proc = subprocess.Popen(spec.argv, cwd=spec.cwd, env=spec.env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, user=spec.uid, group=spec.gid,
                                extra_groups=spec.groups, start_new_session=True,
                                preexec_fn=capabilities.apply)  # noqa: PLW1509
    except subprocess.SubprocessError as exc:
        return 126, [f"wharfie: cannot start the step: {exc}"]
    except OSError as exc:
        return 127, [f"wharfie: cannot run {spec.argv[0]!r}: {exc.strerror}"]
    with proc:
        return follow_output(proc, output)


class _Placements:
    """Puts a mount's content at its target for one step, and puts back what was there."""

    def __init__(self, root: Path, scratch: Path) -> None:
        self._root = root
        self._scratch = scratch
        self._undo: list[Callable[[], None]] = []

    def put(self, target: str, source: str) -> None:
        """A file is copied (a secret keeps its mode and owner); a directory becomes a symlink."""
        path = self._root / target.lstrip("/")
        self._keep_times(next(p for p in [path.parent, *path.parents] if os.path.lexists(p)))
        self._make_parents(path.parent)
        self._keep_times(path.parent)
        if os.path.lexists(path):
            aside = path.with_name(f".wharfie-aside-{path.name}")
            os.rename(path, aside)
            self._undo.append(lambda: os.rename(aside, path))
        if os.path.isfile(source):
            shutil.copy2(source, path)
            st = os.stat(source)
            os.chown(path, st.st_uid, st.st_gid)
        else:
            os.symlink(source, path)
        self._undo.append(lambda: _remove(path))

    def _keep_times(self, directory: Path) -> None:
        st = os.stat(directory)
        self._undo.append(lambda: os.utime(directory, ns=(st.st_atime_ns, st.st_mtime_ns)))

    def _make_parents(self, directory: Path) -> None:
        missing = [p for p in [directory, *directory.parents] if not os.path.lexists(p)]
        for part in reversed(missing):
            part.mkdir()
            self._undo.append(_rmdir_if_empty(part))

    def undo(self) -> None:
        while self._undo:
            try:
                self._undo.pop()()
            except OSError as exc:
                log.warning("warning: could not undo a RUN --mount emulation: %s", exc)


def _rmdir_if_empty(directory: Path) -> Callable[[], None]:
    def undo() -> None:
        if not any(directory.iterdir()):
            directory.rmdir()

    return undo


def _remove(path: Path) -> None:
    st = os.lstat(path)
    if stat.S_ISDIR(st.st_mode):
        shutil.rmtree(path)
    else:
        os.unlink(path)


def refuse_real_host(root: Path) -> None:
    """A last guard: in-place builds only ever target `/`."""
    if root != Path("/"):
        raise WharfieError(f"in-place builds work on / only, not {root}")
