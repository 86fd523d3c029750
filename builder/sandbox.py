"""Running one RUN step in the rootfs, in fresh namespaces, through util-linux `unshare`.

The host side: it prepares the mount points a step needs (proc, dev, the
host's resolv.conf and hosts), starts `unshare --mount --pid --ipc --uts
--fork` with builder/sandbox_enter.py as the namespace's first process, streams
the step's output, and afterwards removes every mount point it had to create,
as BuildKit's stub cleaner does, so none of them end up in the step's layer.
"""

from __future__ import annotations

import collections
import json
import os
import shutil
import subprocess
import tempfile
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from oci.errors import WharfieError

__all__ = ["Bind", "RunSpec", "RunFailed", "run_in_sandbox", "SANDBOX_IGNORED"]

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


class RunFailed(WharfieError):
    def __init__(self, exit_code: int, tail: list[str]) -> None:
        self.exit_code_of_step = exit_code
        self.tail = tail
        super().__init__(f"exit {exit_code}")


def _prepare_stubs(root: Path, spec: RunSpec) -> list[Path]:
    """Create missing mount points; return the ones created, deepest last."""
    created: list[Path] = []

    def make(rel: str, is_dir: bool) -> None:
        path = root / rel.lstrip("/")
        missing = [p for p in [path, *path.parents] if p != root and root in p.parents and not os.path.lexists(p)]
        for p in reversed(missing):
            if p == path and not is_dir:
                p.touch()
            else:
                p.mkdir()
            created.append(p)

    for rel in ("proc", "dev"):
        make(rel, True)
    for rel in _HOST_FILES:
        if os.path.exists(f"/{rel}"):
            make(rel, False)
    for bind in spec.binds:
        make(bind.target, os.path.isdir(bind.source))
    make(spec.cwd, True)
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


def _binds(spec: RunSpec, scratch: Path) -> list[dict[str, object]]:
    binds: list[dict[str, object]] = []
    for rel in _HOST_FILES:
        if os.path.exists(f"/{rel}"):
            # A writable copy, as docker gives: a step may append to /etc/hosts,
            # and the change dies with the step.
            copy = scratch / rel.replace("/", "_")
            shutil.copyfile(f"/{rel}", copy)
            binds.append({"source": str(copy), "target": f"/{rel}", "readonly": False})
    for bind in spec.binds:
        binds.append({"source": bind.source, "target": bind.target, "readonly": bind.readonly})
    return binds


def run_in_sandbox(spec: RunSpec, *, output: Callable[[str], None] | None = None) -> None:
    """Run the step; raise `RunFailed` with the last lines of output when it exits non-zero."""
    root = spec.root.resolve()
    created = _prepare_stubs(root, spec)
    scratch = Path(tempfile.mkdtemp(prefix="wharfie-run-"))
    payload = {
        "root": str(root), "argv": spec.argv, "env": spec.env, "cwd": spec.cwd, "uid": spec.uid,
        "gid": spec.gid, "groups": spec.groups, "binds": _binds(spec, scratch),
    }
    command = ["unshare", "--mount", "--pid", "--ipc", "--uts", "--fork", "--kill-child"]
    if spec.network == "none":
        command.append("--net")
    command += [sys.executable, "-I", _ENTER, json.dumps(payload)]
    tail: collections.deque[str] = collections.deque(maxlen=20)
    try:
        with subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")}) as proc:
            assert proc.stdout is not None
            for raw in proc.stdout:
                line = raw.decode(errors="replace").rstrip("\n")
                tail.append(line)
                if output is not None:
                    output(line)
            code = proc.wait()
    finally:
        _remove_stubs(created)
        shutil.rmtree(scratch, ignore_errors=True)
    if code != 0:
        raise RunFailed(code, list(tail))
