"""A RUN step hunting for the builder's credentials: its environment, its docker config, its processes.

wharfie runs with what a CI job gives it: `CI_JOB_TOKEN`,
`CI_REGISTRY_PASSWORD`, a `DOCKER_CONFIG` directory whose config.json holds
a registry password. The step searches everywhere it can reach: its own
environment, every process's environ and open descriptors under /proc, the
usual places of a docker config, and the whole image. The check: none of
the secrets appears in anything the step printed, nor in the image built.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from attack import Attacker

from fixtures.readback import read_back

JOB_TOKEN = "glcbt-job-token-4242"
REGISTRY_PASSWORD = "registry-password-4242"
CONFIG_PASSWORD = "config-json-password-4242"

HUNT = r"""
env
for p in /proc/[0-9]*; do cat $p/environ 2>/dev/null | tr '\0' '\n'; ls -l $p/fd/ 2>/dev/null; \
  cat $p/cmdline 2>/dev/null | tr '\0' ' '; done
ls -la /proc/1/root/ /proc/1/cwd/ 2>&1 | head -40
find / -xdev -name 'config.json' 2>/dev/null | xargs cat 2>/dev/null
grep -rs 4242 /etc /root /home /tmp /run /var 2>/dev/null | head
echo hunt-done
"""


def test_a_step_finds_none_of_the_builders_credentials(attacker: Attacker, busybox_ref: str, tmp_path: Path) -> None:
    docker_config = attacker.directory("docker-config", {"config.json": json.dumps({"auths": {
        "registry.example": {"auth": base64.b64encode(f"ci:{CONFIG_PASSWORD}".encode()).decode()}}})})
    env = {"CI_JOB_TOKEN": JOB_TOKEN, "CI_REGISTRY_PASSWORD": REGISTRY_PASSWORD, "CI_REGISTRY_USER": "ci",
           "DOCKER_CONFIG": str(docker_config)}
    if attacker.mode == "root":
        os.chmod(docker_config / "config.json", 0o600)
    script = attacker.directory("hunt", {"hunt.sh": HUNT})
    dockerfile = (f"FROM {busybox_ref}\nCOPY hunt.sh /hunt.sh\n"
                  "RUN sh /hunt.sh > /hunt.log 2>&1; cat /hunt.log\n")
    context = attacker.context(dockerfile, {"hunt.sh": (script / "hunt.sh").read_text()})
    dest = f"{attacker.registry_host}/attack/credentials-{attacker.mode}:1"
    result = attacker.build(context, push_to=dest, env=env)
    assert result.returncode == 0, result.stderr
    assert "hunt-done" in result.stderr, "the hunt ran to its end"
    for secret in (JOB_TOKEN, REGISTRY_PASSWORD, CONFIG_PASSWORD):
        assert secret not in result.stderr, f"the step found {secret}:\n{result.stderr[-3000:]}"
    image = read_back(dest, tmp_path / "rb", ["--src-tls-verify=false"])
    written = (image.rootfs / "hunt.log").read_text() + json.dumps(image.config)
    for secret in (JOB_TOKEN, REGISTRY_PASSWORD, CONFIG_PASSWORD):
        assert secret not in written


def test_a_build_arg_value_stays_out_of_the_debug_log(attacker: Attacker) -> None:
    """A build arg the Dockerfile never uses appears nowhere, not even with -v debug (the rootless re-exec)."""
    context = attacker.context("FROM scratch\nCOPY Dockerfile /\n")
    result = attacker.build(context, "-v", "debug", "--build-arg", f"UNUSED_TOKEN={JOB_TOKEN}")
    assert result.returncode == 0, result.stderr
    assert JOB_TOKEN not in result.stderr + result.stdout
