"""One example pipeline's GitLab project for the tests: registry path, API, project directory, job variables."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fixtures.gitlab_api import GitLabAPIServer
from fixtures.registry import Registry

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "gitlab-ci"
BUILDS_DIR = "/builds"
SHA = "9c1f0e5d4b3a29180716f5e4d3c2b1a098f7e6d5"
PROJECT_IDS = {"default-branch": 101, "merge-request": 102, "release-tags": 103, "remote-cache": 104,
               "several-images": 105, "multi-arch": 106, "scheduled-cleanup": 107, "deploy-token-pull": 108,
               "from-kaniko": 109}


@dataclass
class GitLabJobBed:
    """One example's GitLab project: its registry path, API, checkout and job variables."""

    example: str
    name: str  # the GitLab project's name, below group/project
    registry: Registry
    api: GitLabAPIServer
    builds: Path  # this host's directory that jobs see as BUILDS_DIR, the runner's builds volume
    job_token: str
    deploy_user: str
    deploy_password: str
    project_variables: dict[str, str] = field(default_factory=dict)  # the project's CI/CD variables
    file_variables: dict[str, str] = field(default_factory=dict)  # its CI/CD variables of type File: their content

    @property
    def project_path(self) -> str:
        return f"group/project/{self.name}"

    @property
    def project_dir(self) -> Path:
        """The project's checkout on this host; the job sees it at `$CI_PROJECT_DIR`."""
        return self.builds / self.project_path

    @property
    def image(self) -> str:
        return f"{self.registry.host}/{self.project_path}"

    def variables(self, **pipeline: str) -> dict[str, str]:
        """A job's predefined variables, for a pipeline described by `pipeline` (branch, tag, source...)."""
        ref = pipeline.get("CI_COMMIT_TAG") or pipeline.get("CI_COMMIT_BRANCH") or pipeline.get(
            "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME", "")
        base = {
            "CI": "true", "GITLAB_CI": "true", "CI_SERVER_HOST": "gitlab.example.com",
            "CI_API_V4_URL": self.api.url, "CI_PROJECT_ID": str(PROJECT_IDS[self.example]),
            "CI_PROJECT_PATH": self.project_path, "CI_BUILDS_DIR": BUILDS_DIR,
            "CI_PROJECT_DIR": f"{BUILDS_DIR}/{self.project_path}",
            "CI_REGISTRY": self.registry.host, "CI_REGISTRY_IMAGE": self.image,
            "CI_REGISTRY_USER": "gitlab-ci-token", "CI_REGISTRY_PASSWORD": self.job_token,
            "CI_JOB_TOKEN": self.job_token, "CI_DEPLOY_USER": self.deploy_user,
            "CI_DEPLOY_PASSWORD": self.deploy_password, "CI_COMMIT_SHA": SHA, "CI_COMMIT_SHORT_SHA": SHA[:8],
            "CI_DEFAULT_BRANCH": "main", "CI_PIPELINE_SOURCE": "push", "CI_COMMIT_REF_NAME": ref,
        }
        return {**base, **self.project_variables, **pipeline}
