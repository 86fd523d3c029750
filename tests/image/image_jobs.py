"""Running wharfie's image as a CI runner runs a job's image (podman, runc, default profile, no --privileged)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["PODMAN_RUN", "WharfieImage", "run_job"]

# podman on these machines: runc (crun refuses the hybrid cgroups) and limits under the hard ones.
PODMAN_RUN = ("podman", "run", "--rm", "--runtime", "runc", "--ulimit", "nofile=20000:20000",
              "--ulimit", "nproc=4096:4096", "--network", "host", "--entrypoint", "")


@dataclass(frozen=True)
class WharfieImage:
    ref: str
    build_seconds: float
    compressed_bytes: int  # config and layers as the registry stores them


def run_job(image: WharfieImage, script: str, *, volumes: Sequence[tuple[Path, str]] = (),
            env: Mapping[str, str] | None = None, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    """`sh -c SCRIPT` in the image as a CI job; `env` reaches the job by name, its values never on a command line."""
    args = [*PODMAN_RUN]
    for source, target in volumes:
        args += ["--volume", f"{source}:{target}"]
    for name in env or {}:
        args += ["--env", name]
    return subprocess.run([*args, image.ref, "sh", "-c", script], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, check=False)
