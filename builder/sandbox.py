"""Running one RUN step in the rootfs, in fresh namespaces, through util-linux `unshare`.

The host side: it prepares the mount points a step needs (proc, dev, the
host's resolv.conf and hosts), starts `unshare --mount --pid --ipc --uts
--fork` with builder/sandbox_enter.py as the namespace's first process, streams
the step's output, and afterwards removes every mount point it had to create,
as BuildKit's stub cleaner does, so none of them end up in the step's layer.

Mount targets are resolved inside the rootfs first (`resolve_target`): the
host side creates the mount points, and a symlink planted by an earlier step
(`/run -> /etc`) must not lead it onto the host. With `RunSpec.overlay` the
step runs on an overlay whose lower dir is the rootfs, mounted inside the
step's own mount namespace, so it dies with the step (builder/run_step.py).
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from builder.copy import safe_join
from oci.errors import WharfieError

__all__ = [
    "SANDBOX_IGNORED",
    "Bind",
    "OverlayDirs",
    "RunFailed",
    "RunSpec",
    "SandboxError",
    "Tmpfs",
    "resolve_target",
    "run_in_sandbox",
]

_ENTER = str(Path(__file__).with_name("sandbox_enter.py"))

# Paths that are mounts during a step: their content never belongs in a layer.
SANDBOX_IGNORED = ("proc", "dev", "sys", "etc/resolv.conf", "etc/hosts")

_HOST_FILES = ("etc/resolv.conf", "etc/hosts")


@dataclass(frozen=True)
class Bind:
    source: str
    target: str  # absolute path inside the rootfs
    readonly: bool = True


@dataclass(frozen=True)
class Tmpfs:
    target: str  # absolute path inside the rootfs
    size: int | None = None  # bytes; None: the kernel's default (half the RAM)


@dataclass(frozen=True)
class OverlayDirs:
    """Run on an overlay (lower = the rootfs): the step's changes land in `upper`, the rootfs stays as it was."""

    upper: Path
    work: Path
    merged: Path
    userxattr: bool = False  # inside a user namespace


@dataclass(frozen=True)
class RunSpec:
    root: Path
    argv: list[str]
    env: dict[str, str]
    cwd: str = "/"
    uid: int = 0
    gid: int = 0
    groups: list[int] = field(default_factory=list)
    network: str = "host"
    binds: tuple[Bind, ...] = ()
    tmpfs: tuple[Tmpfs, ...] = ()
    overlay: OverlayDirs | None = None

    def __post_init__(self) -> None:
        # exec refuses a NUL byte anywhere and an '=' in a variable's name; say which before anything starts
        # (a base image's config, from a registry, can hold either).
        # Only names in the message: a value may be a secret (RUN --mount=type=secret,env=...).
        texts = [("command", arg) for arg in self.argv] + [("working directory", self.cwd)]
        texts += [(f"environment variable {key[:60]!r}", f"{key}={value}") for key, value in self.env.items()]
        for what, text in texts:
            if "\0" in text:
                raise SandboxError(f"the step's {what} holds a NUL byte")
        if not self.argv:
            raise SandboxError("the step has no command")
        bad = [key for key in self.env if not key or "=" in key]
        if bad:
            raise SandboxError(f"invalid environment variable name {bad[0][:60]!r}")


class SandboxError(WharfieError):
    """The sandbox could not be set up for a step."""


class RunFailed(WharfieError):
    def __init__(self, exit_code: int, tail: list[str]) -> None:
        self.exit_code_of_step = exit_code
        self.tail = tail
        super().__init__(f"exit {exit_code}")


def resolve_target(root: Path, target: str) -> str:
    """`target` as an absolute path inside `root` with every symlink resolved as the chroot would.

    Mount points are created and mounted on the host side of the sandbox,
    where a symlink in the image (`/run -> /etc`) would otherwise lead them
    out of the rootfs.
    """
    resolved = safe_join(root, target, follow_last=True)
    return "/" + str(resolved.relative_to(root)).lstrip(".").lstrip("/")


def _prepare_stubs(root: Path, points: list[tuple[str, bool]]) -> list[Path]:
    """Create the missing mount points (resolved targets, dir or file); return the ones created."""
    created: list[Path] = []
    for rel, is_dir in points:
        path = root / rel.lstrip("/")
        missing = [p for p in [path, *path.parents] if p != root and root in p.parents and not os.path.lexists(p)]
        for part in reversed(missing):
            try:
                if part == path and not is_dir:
                    part.touch()
                else:
                    part.mkdir()
            except OSError as exc:
                raise SandboxError(f"cannot make mount point {rel}: {exc.strerror}") from None
            created.append(part)
    return created


def _remove_stubs(created: list[Path]) -> None:
    for path in reversed(created):
        parent_stat = path.parent.stat()
        try:
            if path.is_dir() and not path.is_symlink():
                path.rmdir()
            elif path.stat().st_size == 0:
                path.unlink()
            else:
                continue
        except OSError:
            continue  # the step put something there: it is the step's now
        os.utime(path.parent, ns=(parent_stat.st_atime_ns, parent_stat.st_mtime_ns))


def _mounts(root: Path, spec: RunSpec, scratch: Path) -> tuple[list[dict[str, object]], list[tuple[str, bool]]]:
    """The mounts for sandbox_enter (resolved targets), and the mount points they need."""
    mounts: list[dict[str, object]] = []
    for rel in _HOST_FILES:
        if os.path.exists(f"/{rel}"):
            # A writable copy, as docker gives: a step may append to /etc/hosts,
            # and the change dies with the step.
            copy = scratch / rel.replace("/", "_")
            shutil.copyfile(f"/{rel}", copy)
            mounts.append({"kind": "bind", "source": str(copy), "target": f"/{rel}", "readonly": False})
    for bind in spec.binds:
        mounts.append({"kind": "bind", "source": bind.source, "target": bind.target, "readonly": bind.readonly})
    for tmpfs in spec.tmpfs:
        mounts.append({"kind": "tmpfs", "target": tmpfs.target, "size": tmpfs.size})
    points: list[tuple[str, bool]] = [("/proc", True), ("/dev", True)]
    for mount in mounts:
        mount["target"] = resolve_target(root, str(mount["target"]))
        if str(mount["target"]).startswith("/dev/"):
            continue  # lands in the step's own /dev tmpfs: sandbox_enter makes the mount point there
        is_dir = mount["kind"] == "tmpfs" or os.path.isdir(str(mount["source"]))
        points.append((str(mount["target"]), is_dir))
    return mounts, points


def _payload(root: Path, spec: RunSpec, mounts: list[dict[str, object]], cwd: str) -> dict[str, object]:
    payload: dict[str, object] = {
        "root": str(root), "argv": spec.argv, "env": spec.env, "cwd": cwd, "uid": spec.uid,
        "gid": spec.gid, "groups": spec.groups, "mounts": mounts,
    }
    if spec.overlay is not None:
        payload["root"] = str(spec.overlay.merged)
        payload["overlay"] = {"lower": str(root), "upper": str(spec.overlay.upper), "work": str(spec.overlay.work),
                              "userxattr": spec.overlay.userxattr}
    return payload


def run_in_sandbox(spec: RunSpec, *, output: Callable[[str], None] | None = None) -> None:
    """Run the step; raise `RunFailed` with the last lines of output when it exits non-zero."""
    root = spec.root.resolve()
    scratch = Path(tempfile.mkdtemp(prefix="wharfie-run-"))
    created: list[Path] = []
    try:
        mounts, points = _mounts(root, spec, scratch)
        cwd = resolve_target(root, spec.cwd)
        created = _prepare_stubs(root, [*points, (cwd, True)])
        command = ["unshare", "--mount", "--pid", "--ipc", "--uts", "--fork", "--kill-child"]
        if spec.network == "none":
            command.append("--net")
        command += [sys.executable, "-I", _ENTER]
        # On stdin, not argv: the step's environment may hold a secret, and argv is public in /proc.
        code, tail = _stream(command, json.dumps(_payload(root, spec, mounts, spec.cwd)).encode(), output)
    finally:
        _remove_stubs(created)
        shutil.rmtree(scratch, ignore_errors=True)
    if code != 0:
        raise RunFailed(code, tail)


def follow_output(proc: subprocess.Popen[bytes], output: Callable[[str], None] | None) -> tuple[int, list[str]]:
    """Pass a step's output on line by line; returns its exit code and last lines (for the error)."""
    assert proc.stdout is not None
    tail: collections.deque[str] = collections.deque(maxlen=20)
    for raw in proc.stdout:
        line = raw.decode(errors="replace").rstrip("\n")
        tail.append(line)
        if output is not None:
            output(line)
    return proc.wait(), list(tail)


def _stream(command: list[str], payload: bytes, output: Callable[[str], None] | None) -> tuple[int, list[str]]:
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")}) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(payload)
            proc.stdin.close()
        except BrokenPipeError:
            pass  # it died before reading: its output says why
        return follow_output(proc, output)
