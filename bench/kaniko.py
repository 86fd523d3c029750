"""kaniko as a peer: its executor built from a source tree the user supplies, run in a bubblewrap root of its own.

kaniko's code is not part of wharfie and is never committed here.  Point
``KANIKO_SRC`` at a checkout of GoogleContainerTools/kaniko (v1.23.2 was
measured); the executor is built from it with Go >= 1.22 the way its Makefile
does (static, ``-s -w``, vendored modules), into the bench state dir.  Go's
build cache lives there too, so a later run only relinks (a few seconds).

The executor expects to own ``/``: it unpacks the base image over it and runs
RUN steps in it, as in its own container image (``gcr.io/kaniko-project/executor``:
``/kaniko/executor``, CA certificates under ``/kaniko/ssl/certs``,
``/etc/nsswitch.conf``, ``HOME=/root``, ``DOCKER_CONFIG=/kaniko/.docker/``).
bubblewrap gives it that: a fresh directory bound as ``/`` per build, a fresh
``/proc`` and ``/dev``, the host's ``/sys``, ``/etc/resolv.conf`` and
``/etc/hosts`` read-only (kaniko's ignore list takes every mount point, as it
does in a container), the context read-only at ``/workspace``, new pid/ipc/uts
namespaces and the host's network (the registry is on 127.0.0.1).  As root,
bwrap keeps the capabilities a RUN step such as ``apt-get`` needs.  kaniko
refuses to start where it recognises no container runtime unless given
``--force``, so it is passed.  ``--as-pid-1`` makes the executor the sandbox's
first process: bwrap's own init would otherwise reap it, and GNU time would see
neither its CPU time nor its memory.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Kaniko", "KanikoUnavailable", "build_executor", "find_go"]

GO_CANDIDATES = ("/usr/lib/go-1.23/bin/go", "/usr/lib/go-1.24/bin/go", "/usr/lib/go-1.22/bin/go")
_NSSWITCH = "hosts: files dns\n"
_ENV = {
    "HOME": "/root",
    "USER": "root",
    "PATH": "/usr/local/bin:/kaniko",
    "SSL_CERT_DIR": "/kaniko/ssl/certs",
    "DOCKER_CONFIG": "/kaniko/.docker/",
}


class KanikoUnavailable(RuntimeError):
    """kaniko cannot be benchmarked here; the message says why (printed as ``kaniko skipped: ...``)."""


def _go_version(go: str) -> tuple[int, int] | None:
    result = subprocess.run([go, "version"], capture_output=True, text=True, check=False)
    found = re.search(r"go(\d+)\.(\d+)", result.stdout)
    return (int(found[1]), int(found[2])) if result.returncode == 0 and found else None


def find_go() -> str:
    """A Go toolchain new enough for kaniko v1.23 (go.mod says 1.22): Debian's backports first, then PATH."""
    candidates = [*GO_CANDIDATES, *(path for path in [shutil.which("go")] if path)]
    for go in candidates:
        if os.access(go, os.X_OK) and (_go_version(go) or (0, 0)) >= (1, 22):
            return go
    raise KanikoUnavailable("no Go >= 1.22 (apt-get install -t bookworm-backports golang-1.23-go; "
                            "scripts/bench.sh does it)")


def _source_version(src: Path) -> str:
    makefile = (src / "Makefile").read_text(errors="replace")
    parts = [re.search(rf"^VERSION_{name} \?= (\S+)", makefile, re.MULTILINE) for name in ("MAJOR", "MINOR", "BUILD")]
    return "v" + ".".join(part[1] for part in parts if part) if all(parts) else "unknown"


def build_executor(src: Path | None, state: Path) -> tuple[Path, str]:
    """Build (or relink) ``STATE/kaniko/executor`` from ``src``; return it and kaniko's version."""
    if src is None:
        raise KanikoUnavailable("KANIKO_SRC is not set (a checkout of GoogleContainerTools/kaniko, e.g. v1.23.2)")
    if not (src / "cmd" / "executor").is_dir() or not (src / "vendor").is_dir():
        raise KanikoUnavailable(f"KANIKO_SRC={src} is not a kaniko source tree with vendor/ and cmd/executor")
    go = find_go()
    version = _source_version(src)
    out = state / "kaniko" / "executor"
    out.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CGO_ENABLED": "0", "GOFLAGS": "-mod=vendor", "GOTOOLCHAIN": "local",
           "GOCACHE": str(state / "go-cache"), "GOPATH": str(state / "gopath")}
    ldflags = f"-s -w -X github.com/GoogleContainerTools/kaniko/pkg/version.version={version}"
    result = subprocess.run([go, "build", "-trimpath", "-ldflags", ldflags, "-o", str(out), "./cmd/executor"],
                            cwd=src, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise KanikoUnavailable(f"go build of {src}/cmd/executor failed: {result.stderr.strip()[-500:]}")
    return out, version


@dataclass(frozen=True)
class Kaniko:
    """One built executor; `command` gives the bwrap command line of a build in a prepared root."""

    executor: Path
    version: str
    ca_bundle: Path = Path("/etc/ssl/certs/ca-certificates.crt")

    @staticmethod
    def available() -> str | None:
        """Why kaniko cannot run on this machine (bwrap missing), or None."""
        return None if shutil.which("bwrap") else "bwrap is missing (apt-get install bubblewrap)"

    def prepare_root(self, root: Path) -> None:
        """Lay out the executor's image in ``root``, as ``gcr.io/kaniko-project/executor`` has it."""
        for directory in ("kaniko/ssl/certs", "kaniko/.docker", "etc", "workspace", "root", "tmp"):
            (root / directory).mkdir(parents=True, exist_ok=True)
        os.chmod(root / "tmp", 0o1777)
        shutil.copy2(self.executor, root / "kaniko" / "executor")
        shutil.copyfile(self.ca_bundle, root / "kaniko/ssl/certs/ca-certificates.crt")
        (root / "kaniko/.docker/config.json").write_text("{}\n")
        (root / "etc/nsswitch.conf").write_text(_NSSWITCH)

    def command(self, root: Path, context: Path, destination: str, build_args: dict[str, str]) -> list[str]:
        """bwrap + executor: build ``context`` and push to ``destination`` over plain HTTP."""
        sandbox = ["bwrap", "--bind", str(root), "/", "--proc", "/proc", "--dev", "/dev", "--ro-bind", "/sys", "/sys",
                   "--ro-bind", "/etc/resolv.conf", "/etc/resolv.conf", "--ro-bind", "/etc/hosts", "/etc/hosts",
                   "--ro-bind", str(context), "/workspace", "--unshare-pid", "--as-pid-1", "--unshare-ipc", "--unshare-uts",
                   "--die-with-parent", "--chdir", "/workspace", "--clearenv"]
        for key, value in _ENV.items():
            sandbox += ["--setenv", key, value]
        executor = ["/kaniko/executor", "--context", "dir:///workspace", "--dockerfile", "/workspace/Dockerfile",
                    "--destination", destination, "--insecure", "--skip-tls-verify", "--insecure-pull",
                    "--skip-tls-verify-pull", "--force", "--verbosity", "warn"]
        for key, value in build_args.items():
            executor += ["--build-arg", f"{key}={value}"]
        return [*sandbox, "--", *executor]
