"""One example pipeline's GitLab project for the tests: registry path, API, project directory, job variables."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fixtures.gitlab_api import GitLabAPIServer
from fixtures.registry import Registry

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples" / "gitlab-ci"
SHA = "9c1f0e5d4b3a29180716f5e4d3c2b1a098f7e6d5"
PROJECT_IDS = {"default-branch": 101, "merge-request": 102, "release-tags": 103, "remote-cache": 104,
               "several-images": 105, "multi-arch": 106, "scheduled-cleanup": 107, "deploy-token-pull": 108}


@dataclass
class GitLabJobBed:
    """One example's GitLab project: its registry path, API, project directory and job variables."""

    example: str
    name: str  # the GitLab project's name, below group/project
    registry: Registry
    api: GitLabAPIServer
    project_dir: Path
    job_token: str
    deploy_user: str
    deploy_password: str
    home: Path  # the job's $HOME

    @property
    def project_path(self) -> str:
        return f"group/project/{self.name}"

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
            "CI_PROJECT_PATH": self.project_path, "CI_PROJECT_DIR": str(self.project_dir),
            "CI_REGISTRY": self.registry.host, "CI_REGISTRY_IMAGE": self.image,
            "CI_REGISTRY_USER": "gitlab-ci-token", "CI_REGISTRY_PASSWORD": self.job_token,
            "CI_JOB_TOKEN": self.job_token, "CI_DEPLOY_USER": self.deploy_user,
            "CI_DEPLOY_PASSWORD": self.deploy_password, "CI_COMMIT_SHA": SHA, "CI_COMMIT_SHORT_SHA": SHA[:8],
            "CI_DEFAULT_BRANCH": "main", "CI_PIPELINE_SOURCE": "push", "CI_COMMIT_REF_NAME": ref,
        }
        return {**base, **pipeline}
