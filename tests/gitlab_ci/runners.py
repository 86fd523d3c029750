"""Where an example job's script runs: in wharfie's image under podman, as a GitLab runner's docker executor runs it.

The image is the session's one build (fixture `wharfie_image`,
fixtures/wharfie_image.py); podman runs it as a runner does (runc, default
seccomp profile and capabilities, no --privileged; the host network, as the
fixture registries listen on 127.0.0.1). As the runner does, its builds
volume is mounted at `/builds`, holding the project's checkout
(`$CI_PROJECT_DIR`) and, beside it in `$CI_PROJECT_DIR.tmp`, one file per
variable of type File, which names it; the script runs in the checkout with
the job's variables and nothing of the host's environment.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass

from job_bed import BUILDS_DIR, GitLabJobBed
from pipeline import Job

from fixtures.wharfie_image import WharfieImage, run_job

__all__ = ["PodmanRunner"]


def _script(job: Job) -> str:
    """The job's lines in one shell that stops at the first failing line, in the project directory."""
    return 'set -e\ncd "$CI_PROJECT_DIR"\n' + "\n".join(job.script) + "\n"


def _write_file_variables(bed: GitLabJobBed, variables: Mapping[str, str]) -> dict[str, str]:
    """Each File variable's content in `$CI_PROJECT_DIR.tmp/NAME`, as GitLab's runner writes it; NAME: that path."""
    where = bed.project_dir.with_name(bed.project_dir.name + ".tmp")
    where.mkdir(exist_ok=True)
    for name, content in bed.file_variables.items():
        (where / name).write_text(content)
    return {name: f"{variables['CI_PROJECT_DIR']}.tmp/{name}" for name in bed.file_variables}


@dataclass(frozen=True)
class PodmanRunner:
    image: WharfieImage
    where: str = "in wharfie's image under podman"

    def run(self, job: Job, variables: Mapping[str, str], bed: GitLabJobBed) -> subprocess.CompletedProcess[str]:
        env = {**variables, **job.variables, **_write_file_variables(bed, variables)}
        mark = os.environ.get("WHARFIE_TEST_SESSION")  # processes the session starts carry it (tests/conftest.py)
        if mark:
            env["WHARFIE_TEST_SESSION"] = mark
        return run_job(self.image, _script(job), volumes=[(bed.builds, BUILDS_DIR)], env=env, timeout=900)
