"""Provenance: no secrets in it, the context's commit found without running the context's git config."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from builder.attest.provenance import BuildFacts, context_commit, provenance_statement, public_build_args
from builder.attest.spdx import ImageRecord
from oci.digest import Digest


def test_secret_looking_args_proxies_and_secret_values_are_left_out() -> None:
    args = {"GITLAB_TOKEN": "a", "DB_PASSWORD": "b", "client_secret": "c", "SSH_KEY": "d", "KEY": "e",
            "HTTPS_PROXY": "http://user:pw@proxy:3128", "VERSION": "1.2", "NOTE": "uses s3cr3tv4lue inside",
            "KEYBOARD": "us"}
    assert public_build_args(args, ["s3cr3tv4lue", "x"]) == {"KEYBOARD": "us", "VERSION": "1.2"}


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_commit_from_git_without_running_the_context_config(tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@t", "HOME": str(tmp_path)}
    for args in (["init", "-q"], ["commit", "-q", "--allow-empty", "-m", "x"]):
        subprocess.run(["git", *args], cwd=context, env=env, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=context, env=env, capture_output=True, text=True,
                          check=True).stdout.strip()
    # A hostile context: its git config names programs git would run for some commands.
    marker = tmp_path / "ran"
    hook = tmp_path / "hook.sh"
    hook.write_text(f"#!/bin/sh\ntouch {marker}\n")
    hook.chmod(0o755)
    with (context / ".git" / "config").open("a") as config:
        config.write(f"[core]\n\tfsmonitor = {hook}\n\tpager = {hook}\n[alias]\n\trev-parse = !{hook}\n")
    assert context_commit(context, {}) == head
    assert not marker.exists()
    assert context_commit(context, {"CI_COMMIT_SHA": "A" * 40}) == "a" * 40
    assert context_commit(context, {"CI_COMMIT_SHA": "not-a-commit; rm -rf /"}) == head


def test_statement_shape_outside_ci(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    facts = BuildFacts(dockerfile=tmp_path / "Dockerfile", context=tmp_path / "elsewhere", target="app",
                       build_args={"A": "1"}, platform="linux/arm64", dependencies=(), started="s", finished="f",
                       environ={})
    statement = provenance_statement(ImageRecord(None, Digest.of_bytes(b"m")), facts)
    params = statement["predicate"]["buildDefinition"]["externalParameters"]
    assert params["dockerfile"]["path"] == "Dockerfile"  # outside the context: its name, no host directories
    assert params["target"] == "app" and params["buildArgs"] == {"A": "1"} and "source" not in params
    assert statement["predicate"]["runDetails"]["metadata"] == {"startedOn": "s", "finishedOn": "f"}
