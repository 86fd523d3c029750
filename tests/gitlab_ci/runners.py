"""Where an example job's script runs: in wharfie's image under podman, as a runner runs it, or on this host.

`PodmanRunner` needs the session fixture `wharfie_image` (tests/image/conftest.py
builds the image with scripts/image.sh); while that fixture is not visible to
these tests, `HostRunner` runs the same script with a clean environment and
this checkout's `wharfie` on PATH (a shim for `python -m builder`). Either way
the job gets only its CI_* variables, `HOME`, and `SSL_CERT_FILE` naming the
test CA (as a runner with a private CA sets it).
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from job_bed import GitLabJobBed
from pipeline import Job

__all__ = ["HostRunner", "JobRunner", "PodmanRunner"]

# As tests/image/image_jobs.py runs the image: runc (crun refuses these hosts' hybrid cgroups), limits under
# the hard ones, the host network (the fixture registries listen on 127.0.0.1), the entrypoint cleared as a
# job's `entrypoint: [""]` does.
_PODMAN_RUN = ("podman", "run", "--rm", "--runtime", "runc", "--ulimit", "nofile=20000:20000",
               "--ulimit", "nproc=4096:4096", "--network", "host", "--entrypoint", "")


class JobRunner(Protocol):
    where: str  # said in failures: "on the host" or "in IMAGE under podman"

    def run(self, job: Job, variables: Mapping[str, str], bed: GitLabJobBed) -> subprocess.CompletedProcess[str]: ...


def _script(job: Job) -> str:
    """The job's lines in one shell that stops at the first failing line, in the project directory."""
    return 'set -e\ncd "$CI_PROJECT_DIR"\n' + "\n".join(job.script) + "\n"


def _base_environment(bed: GitLabJobBed) -> dict[str, str]:
    env = {"HOME": str(bed.home), "LANG": "C.UTF-8", "SSL_CERT_FILE": str(bed.registry.ca_file)}
    mark = os.environ.get("WHARFIE_TEST_SESSION")  # processes the session starts carry it (tests/conftest.py)
    if mark:
        env["WHARFIE_TEST_SESSION"] = mark
    return env


@dataclass(frozen=True)
class HostRunner:
    path_dir: Path  # holds the `wharfie` shim
    where: str = "on the host (this checkout's wharfie)"

    def run(self, job: Job, variables: Mapping[str, str], bed: GitLabJobBed) -> subprocess.CompletedProcess[str]:
        env = {**_base_environment(bed), "PATH": f"{self.path_dir}:/usr/local/bin:/usr/bin:/bin",
               "TMPDIR": os.environ.get("TMPDIR", "/tmp"), **variables, **job.variables}
        return subprocess.run(["/bin/sh", "-c", _script(job)], env=env, cwd=bed.project_dir, capture_output=True,
                              text=True, timeout=600, check=False)


@dataclass(frozen=True)
class PodmanRunner:
    image: Any  # tests/image's WharfieImage: `.ref` is what podman runs
    where: str = "in wharfie's image under podman"

    def run(self, job: Job, variables: Mapping[str, str], bed: GitLabJobBed) -> subprocess.CompletedProcess[str]:
        env = {**_base_environment(bed), **variables, **job.variables}
        args = [*_PODMAN_RUN]
        for directory in (bed.project_dir, bed.home, bed.registry.ca_file.parent):
            args += ["--volume", f"{directory}:{directory}"]
        for name in env:
            args += ["--env", name]  # by name: values (the job token) never on a command line
        return subprocess.run([*args, self.image.ref, "sh", "-c", _script(job)], env={**os.environ, **env},
                              capture_output=True, text=True, timeout=900, check=False)
