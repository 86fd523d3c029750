"""The files wharfie itself reads from the context on the host (the Dockerfile, .dockerignore) stay in the context.

The attack: the context's `Dockerfile` (or `.dockerignore`, or
`Dockerfile.dockerignore`) is a symlink to a host file: `/proc/self/environ`
(wharfie's own environment, with the CI job token and registry passwords),
`~/.docker/config.json`, `/etc/shadow`. wharfie read it on the host and
printed its first line in the error (`unknown instruction: ...`, `syntax
error in pattern: ...`), so the secret went to the build log. The host check:
the secret appears nowhere in wharfie's output, and the build fails naming
the file that leads out of the context. A relative link that stays inside
the context still works (the control); an absolute link names a host path
and is refused.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from attack import Attacker, Link

from fixtures.readback import read_back, tree_of

TOKEN = "glcbt-not-for-logs-4242"  # a CI job token in wharfie's environment
SECRET_LINE = "root:$6$host-shadow-hash:19000:0:99999:7:::"


def _build(attacker: Attacker, context: Path, *extra: str, push_to: str | None = None) -> subprocess.CompletedProcess[str]:
    """A build with the token in wharfie's environment (as a GitLab job has CI_JOB_TOKEN)."""
    return attacker.build(context, *extra, push_to=push_to, env={"CI_JOB_TOKEN": TOKEN})


def _host_secret(attacker: Attacker) -> Path:
    """A 0600 host file of the builder's user (rootless: in its own home, like ~/.docker/config.json)."""
    secret = attacker.path("shadow")
    secret.write_text(SECRET_LINE + "\n")
    secret.chmod(0o600)
    if attacker.mode == "rootless":
        os.chown(secret, attacker.uid, attacker.gid)
    return secret


def _assert_nothing_leaked(result: subprocess.CompletedProcess[str], what: str) -> None:
    output = result.stdout + result.stderr
    assert TOKEN not in output, f"{what}: wharfie printed its own environment:\n{output[-2000:]}"
    assert "host-shadow-hash" not in output, f"{what}: wharfie printed a host file:\n{output[-2000:]}"
    assert "Traceback" not in output, output


@pytest.mark.parametrize("target", ["environ", "absolute", "relative"])
def test_a_dockerfile_linking_out_of_the_context_is_not_read(attacker: Attacker, target: str) -> None:
    secret = _host_secret(attacker)
    link = {"environ": "/proc/self/environ", "absolute": str(secret),
            "relative": "../" * 16 + str(secret).lstrip("/")}[target]
    context = attacker.directory("ctx", {"Dockerfile": Link(link)})
    result = _build(attacker, context)
    _assert_nothing_leaked(result, f"Dockerfile -> {link}")
    assert result.returncode != 0
    assert "Dockerfile" in result.stderr and "outside the build context" in result.stderr, result.stderr


def test_a_dockerfile_named_with_f_inside_the_context_is_held_to_it(attacker: Attacker) -> None:
    context = attacker.directory("ctx", {"ci/Dockerfile.prod": Link("/proc/self/environ")})
    result = _build(attacker, context, "-f", str(context / "ci" / "Dockerfile.prod"))
    _assert_nothing_leaked(result, "-f ctx/ci/Dockerfile.prod -> /proc/self/environ")
    assert result.returncode != 0 and "outside the build context" in result.stderr, result.stderr


@pytest.mark.parametrize("name", [".dockerignore", "Dockerfile.dockerignore"])
def test_an_ignore_file_linking_out_of_the_context_is_not_read(attacker: Attacker, name: str) -> None:
    context = attacker.directory("ctx", {"Dockerfile": "FROM scratch\nCOPY . /\n", name: Link("/proc/self/environ")})
    result = _build(attacker, context)
    _assert_nothing_leaked(result, f"{name} -> /proc/self/environ")
    assert result.returncode != 0
    assert name in result.stderr and "outside the build context" in result.stderr, result.stderr


def test_links_inside_the_context_still_work(attacker: Attacker, tmp_path: Path) -> None:
    """The control: a Dockerfile and a .dockerignore that link to files of the context are read."""
    context = attacker.directory("ctx", {
        "Dockerfile": Link("build/Dockerfile.real"),
        "build/Dockerfile.real": "FROM scratch\nCOPY . /\n",
        ".dockerignore": Link("build/ignore"),
        "build/ignore": "left-out\n",
        "left-out": "ignored\n",
        "kept": "copied\n",
    })
    dest = f"{attacker.registry_host}/attack/context-links-{attacker.mode}:1"
    result = _build(attacker, context, push_to=dest)
    assert result.returncode == 0, result.stderr
    tree = tree_of(read_back(dest, tmp_path / "readback", ["--src-tls-verify=false"]).rootfs)
    assert tree["kept"][4] == "copied\n" and "left-out" not in tree, tree
