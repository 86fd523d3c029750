"""SLSA provenance v1 of a build, as an in-toto statement v1 (https://slsa.dev/spec/v1.0/provenance).

What it records: the image manifest as subject; how it was asked for
(externalParameters: the Dockerfile by path and digest, the target, the
build args, the platform, the context's git commit); what it was made from
(resolvedDependencies: every image resolved by digest, the git source); who
made it (runDetails: wharfie and its version, the GitLab CI job).

What it must never record: a `--secret` value, or a build arg that looks like
one (named *TOKEN*, *PASSWORD*, *SECRET*, *_KEY...) or contains one; proxy
args (they may carry credentials, and docker keeps them out of history too);
credentials in a URL.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from builder.attest.spdx import ImageRecord, image_purl
from builder.frontend.plan import PROXY_ARGS
from builder.steps.add_sources import redact_url

__all__ = [
    "BUILD_TYPE",
    "BuildFacts",
    "Dependency",
    "context_commit",
    "provenance_statement",
    "public_build_args",
    "wharfie_version",
]

log = logging.getLogger("wharfie")

BUILD_TYPE = "https://wharfie.io/buildtypes/dockerfile/v1"
BUILDER_ID = "https://wharfie.io/builder"
STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
_SECRET_NAME = re.compile(r".*(TOKEN|PASSWORD|PASSWD|SECRET|CREDENTIAL|PRIVATE).*|.*_KEY|KEY|.*APIKEY.*", re.IGNORECASE)
_COMMIT = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_MIN_SECRET = 4  # shorter secret values would match by chance, and say little about the secret


@dataclass(frozen=True)
class Dependency:
    """An image the build resolved, and why (`base`, `stage base`, `copy --from`, `mount from`...)."""

    image: ImageRecord
    role: str


@dataclass(frozen=True)
class BuildFacts:
    dockerfile: Path
    context: Path
    target: str | None
    build_args: Mapping[str, str]
    platform: str
    dependencies: Sequence[Dependency]
    started: str
    finished: str
    secret_values: Sequence[str] = ()  # never written: build args containing one are left out
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))


def wharfie_version() -> str:
    try:
        return metadata.version("wharfie")
    except metadata.PackageNotFoundError:
        return "unknown"


def public_build_args(args: Mapping[str, str], secret_values: Sequence[str] = ()) -> dict[str, str]:
    """The build args fit for a document anyone with pull access reads."""
    secrets = [value for value in secret_values if len(value) >= _MIN_SECRET]
    out: dict[str, str] = {}
    for name, value in sorted(args.items()):
        if _SECRET_NAME.fullmatch(name) or name in PROXY_ARGS:
            continue
        if any(secret in value for secret in secrets):
            log.info("build arg %s left out of the provenance: it contains a --secret value", name)
            continue
        out[name] = value
    return out


def context_commit(context: Path, environ: Mapping[str, str]) -> str | None:
    """The commit the context was checked out at: $CI_COMMIT_SHA in GitLab CI, else `git rev-parse HEAD`.

    git runs from the host's PATH with the context as its work tree, asked only to
    resolve a ref (no hooks, no fsmonitor, no pager), with a clean environment.
    """
    from_ci = environ.get("CI_COMMIT_SHA", "").strip().lower()
    if _COMMIT.fullmatch(from_ci):
        return from_ci
    git = shutil.which("git")
    if git is None:
        return None
    env = {"PATH": os.defpath, "HOME": "/nonexistent", "GIT_CONFIG_NOSYSTEM": "1", "GIT_TERMINAL_PROMPT": "0",
           "GIT_OPTIONAL_LOCKS": "0", "LC_ALL": "C"}
    try:
        done = subprocess.run(
            [git, "-c", "core.fsmonitor=false", "-c", f"safe.directory={context}", "rev-parse", "--verify", "--quiet",
             "HEAD^{commit}"],
            cwd=context, env=env, capture_output=True, text=True, timeout=20, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    commit = done.stdout.strip().lower()
    return commit if done.returncode == 0 and _COMMIT.fullmatch(commit) else None


def _digest_of(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            sha.update(chunk)
    return sha.hexdigest()


def _dockerfile_path(dockerfile: Path, context: Path) -> str:
    """Relative to the context when inside it; else only its name (no host directories in the document)."""
    try:
        return dockerfile.resolve().relative_to(context.resolve()).as_posix()
    except ValueError:
        return dockerfile.name


def _gitlab_ci(environ: Mapping[str, str]) -> dict[str, str] | None:
    if environ.get("GITLAB_CI") != "true" and not environ.get("CI_JOB_URL"):
        return None
    fields = {"jobUrl": "CI_JOB_URL", "pipelineId": "CI_PIPELINE_ID", "runnerId": "CI_RUNNER_ID",
              "pipelineUrl": "CI_PIPELINE_URL", "projectUrl": "CI_PROJECT_URL"}
    return {key: redact_url(environ[var]) for key, var in fields.items() if environ.get(var)}


def _source(facts: BuildFacts) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(externalParameters' source, its resolvedDependency), when the context's commit is known."""
    commit = context_commit(facts.context, facts.environ)
    if commit is None:
        return None, None
    repo_url = facts.environ.get("CI_PROJECT_URL")
    parameter: dict[str, Any] = {"commit": commit}
    dependency: dict[str, Any] = {"digest": {"gitCommit": commit}}
    if repo_url:
        parameter["uri"] = dependency["uri"] = f"git+{redact_url(repo_url)}"
    return parameter, dependency


def provenance_statement(subject: ImageRecord, facts: BuildFacts) -> dict[str, Any]:
    """The in-toto statement (a JSON-ready dict) whose subject is the image manifest."""
    version = wharfie_version()
    external: dict[str, Any] = {
        "dockerfile": {"path": _dockerfile_path(facts.dockerfile, facts.context),
                       "digest": {"sha256": _digest_of(facts.dockerfile)}},
        "target": facts.target or "",
        "buildArgs": public_build_args(facts.build_args, facts.secret_values),
        "platform": facts.platform,
    }
    dependencies: list[dict[str, Any]] = []
    source, source_dependency = _source(facts)
    if source is not None:
        external["source"] = source
    if source_dependency is not None:
        dependencies.append(source_dependency)
    for dependency in facts.dependencies:
        image = dependency.image
        dependencies.append({"uri": image_purl(image), "name": image.name,
                             "digest": {image.digest.algorithm: image.digest.hex},
                             "annotations": {"role": dependency.role}})
    metadata_: dict[str, Any] = {"startedOn": facts.started, "finishedOn": facts.finished}
    gitlab = _gitlab_ci(facts.environ)
    if gitlab:
        if "jobUrl" in gitlab:
            metadata_["invocationId"] = gitlab["jobUrl"]
        metadata_["gitlabCI"] = gitlab
    return {
        "_type": STATEMENT_TYPE,
        "subject": [{"name": subject.name, "digest": {subject.digest.algorithm: subject.digest.hex}}],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {"buildType": BUILD_TYPE, "externalParameters": external,
                                "resolvedDependencies": dependencies},
            "runDetails": {"builder": {"id": f"{BUILDER_ID}@v{version}", "version": {"wharfie": version}},
                           "metadata": metadata_},
        },
    }
