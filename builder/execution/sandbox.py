"""Running one RUN step in the rootfs, in fresh namespaces, through util-linux `unshare`.

The host side: it makes the step's mount plan (builder/mount_plan.py:
docker's /proc, /dev and masks, the host's resolv.conf and hosts as copies,
the step's RUN --mount binds and tmpfs), makes the mount points missing from
the image by descriptor inside the rootfs (builder/mount_points.py), starts
`unshare --mount --pid --ipc --uts --fork` with builder/sandbox_enter.py as
the namespace's first process, streams the step's output, and afterwards
removes the mount points it made, as BuildKit's stub cleaner does, so none
of them ends up in the step's layer.

Nothing here or in the namespace resolves a mount target through a host
path: a symlink in the image, the context or a stage (`/run -> /etc`,
`d/m -> /usr/bin/mount`) is followed inside the rootfs only, and the
clean-up acts on the objects it made, by descriptor, whatever the step did
to the paths. `unshare` is found once at start-up, and the namespace side
runs no program at all before the step's. With `RunSpec.overlay` the step
runs on an overlay whose lower dir is the rootfs, mounted inside the step's
own mount namespace, so it dies with the step (builder/run_step.py).

`-v debug` prints what a step gets: network mode, capability sets, seccomp
profile and every mount with its flags.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from builder.execution.capabilities import describe as describe_capabilities
from builder.execution.capabilities import step_capabilities
from builder.execution.mount_plan import ROOT_ATTRS, PlannedMount, describe_mount, prepared_here, step_mounts
from builder.execution.mount_points import MountPointError, StubMaker, open_mount_point, remove_stubs
from builder.execution.network import StepNetwork, step_resolv_conf
from builder.execution.seccomp import describe as describe_seccomp
from layers.securepath import RootDir
from oci.errors import WharfieError

__all__ = [
    "PACKAGE_ROOT",
    "SANDBOX_IGNORED",
    "Bind",
    "OverlayDirs",
    "RunFailed",
    "RunSpec",
    "SandboxError",
    "Tmpfs",
    "run_in_sandbox",
]

log = logging.getLogger("wharfie")

# Fixed at start-up, before anything of a build is mounted anywhere: never looked up on PATH again.
_UNSHARE = shutil.which("unshare")
_ENTER_MODULE = __name__.rpartition(".")[0] + ".sandbox_enter"
# The directory holding this `builder` package: what a re-executed wharfie imports, never the cwd.
PACKAGE_ROOT = str(Path(sys.modules[__name__.partition(".")[0]].__file__ or "").resolve().parent.parent)

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
    network: str = "default"  # builder/network.py: default (own namespace + slirp4netns) | host | none
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
        self.no_room = False  # the work dir was full when the step ended (builder/execution/run_step.py)
        super().__init__(f"exit {exit_code}")


def _plan(spec: RunSpec, scratch: Path) -> list[PlannedMount]:
    host_files = []
    for rel in _HOST_FILES:
        if os.path.exists(f"/{rel}"):
            copy = scratch / rel.replace("/", "_")
            shutil.copyfile(f"/{rel}", copy)
            if rel == "etc/resolv.conf":
                copy.write_text(step_resolv_conf(spec.network, copy.read_text()))
            host_files.append((str(copy), f"/{rel}"))
    binds = []
    for bind in spec.binds:
        try:
            is_dir = stat.S_ISDIR(os.stat(bind.source).st_mode)
        except OSError as exc:
            raise SandboxError(f"cannot mount {bind.source} at {bind.target}: {exc.strerror}") from None
        binds.append((bind.source, bind.target, bind.readonly, is_dir))
    return step_mounts(host_files, binds, [(t.target, t.size) for t in spec.tmpfs])


def _prepare_mount_points(root: Path, plan: list[PlannedMount], cwd: str, maker: StubMaker) -> None:
    """Make the mount points missing from the image, by descriptor inside it, recording each as a stub."""
    try:
        with RootDir(root, mkdir=maker.mkdir) as rootdir:
            for mount in plan:
                if prepared_here(mount):
                    os.close(open_mount_point(rootdir, mount.target, directory=mount.directory, maker=maker))
            os.close(open_mount_point(rootdir, cwd, directory=True, maker=maker))
    except MountPointError as exc:
        raise SandboxError(str(exc)) from None
    except OSError as exc:
        raise SandboxError(f"cannot make the step's mount points: {exc.strerror or exc}") from None


def _payload(root: Path, spec: RunSpec, plan: list[PlannedMount]) -> dict[str, object]:
    payload: dict[str, object] = {
        "root": str(root), "argv": spec.argv, "env": spec.env, "cwd": spec.cwd, "uid": spec.uid,
        "gid": spec.gid, "groups": spec.groups, "mounts": [asdict(mount) for mount in plan],
        "caps": sorted(step_capabilities(spec.network)),
    }
    if spec.overlay is not None:
        payload["root"] = str(spec.overlay.merged)
        payload["overlay"] = {"lower": str(root), "upper": str(spec.overlay.upper), "work": str(spec.overlay.work),
                              "userxattr": spec.overlay.userxattr}
    return payload


def _log_confinement(spec: RunSpec, plan: list[PlannedMount]) -> None:
    """`-v debug`: what the step gets, in the terms docker's defaults are given in."""
    if not log.isEnabledFor(logging.DEBUG):
        return
    log.debug("sandbox: network: %s", spec.network)
    caps = step_capabilities(spec.network)
    log.debug("sandbox: capabilities: %s", describe_capabilities(spec.uid, caps))
    log.debug("sandbox: seccomp: %s", describe_seccomp(caps))
    root = "overlay" if spec.overlay is not None else "bind"
    log.debug("sandbox: mount / %s %s", root, ",".join(ROOT_ATTRS))
    for mount in plan:
        log.debug("sandbox: mount %s", describe_mount(mount))


def _enter_command(network: StepNetwork) -> list[str]:
    if _UNSHARE is None:
        raise SandboxError("the sandbox needs util-linux's unshare, which is not installed")
    command = [_UNSHARE, "--mount", "--pid", "--ipc", "--uts", "--fork", "--kill-child", *network.unshare_flags]
    # -I: no PYTHONPATH, no user site; the package root is put first explicitly.
    start = f"import sys; sys.path.insert(0, {PACKAGE_ROOT!r}); from {_ENTER_MODULE} import main; main()"
    return [*command, sys.executable, "-I", "-c", start]


def run_in_sandbox(spec: RunSpec, *, output: Callable[[str], None] | None = None) -> None:
    """Run the step; raise `RunFailed` with the last lines of output when it exits non-zero."""
    root = spec.root.resolve()
    scratch = Path(tempfile.mkdtemp(prefix="wharfie-run-"))
    stubs = StubMaker()
    try:
        plan = _plan(spec, scratch)
        _prepare_mount_points(root, plan, spec.cwd, stubs)
        _log_confinement(spec, plan)
        with StepNetwork(spec.network) as network:
            # On stdin, not argv: the step's environment may hold a secret, and argv is public in /proc.
            payload = {**_payload(root, spec, plan), **network.enter_spec}
            code, tail = _stream(_enter_command(network), json.dumps(payload).encode(), output, network)
    finally:
        remove_stubs(stubs.stubs)
        shutil.rmtree(scratch, ignore_errors=True)
    if code != 0:
        raise RunFailed(code, tail)


def follow_output(proc: subprocess.Popen[bytes], output: Callable[[str], None] | None) -> tuple[int, list[str]]:
    """Pass a step's output on line by line; returns its exit code and last lines (for the error).

    `proc` must lead a process group of its own (`start_new_session=True`): it is killed whole if we stop early.
    """
    assert proc.stdout is not None
    tail: collections.deque[str] = collections.deque(maxlen=20)
    try:
        for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            tail.append(line)
            if output is not None:
                output(line)
        return proc.wait(), list(tail)
    except BaseException:
        _kill_step(proc)
        raise


def _kill_step(proc: subprocess.Popen[bytes]) -> None:
    """End a step we stop early (cancelled, or failing around it): it must not outlive us.

    It leads a session of its own, so its process group is all of it; in the
    sandbox, unshare's --kill-child then takes the step's pid namespace down too.
    """
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _stream(command: list[str], payload: bytes, output: Callable[[str], None] | None,
            network: StepNetwork) -> tuple[int, list[str]]:
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, pass_fds=network.pass_fds,
                          start_new_session=True) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(payload)
            proc.stdin.close()
        except BrokenPipeError:
            pass  # it died before reading: its output says why
        try:
            network.attach(proc.pid)
        except BaseException:
            _kill_step(proc)
            raise
        return follow_output(proc, output)
