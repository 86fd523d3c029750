"""Issue #10 point 5 and the `-v debug` report: a step holds docker's capabilities, whatever wharfie inherited.

Started with an inheritable and ambient CAP_SYS_ADMIN (as some CI runners
hand their jobs), wharfie used to pass it on: only the bounding set was cut,
and the inheritable set survives exec. The step's /proc/self/status must
read as under `docker run` (root: CapPrm = CapEff = CapBnd = 00000000a80425fb,
nothing inheritable or ambient; another user: nothing but the bounding set),
and what `-v debug` prints must say the same.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from attack import REPO_ROOT, Attacker

# `docker run busybox grep Cap /proc/self/status` (moby's default capability set).
DOCKER_ROOT = {"CapInh": "0000000000000000", "CapPrm": "00000000a80425fb", "CapEff": "00000000a80425fb",
               "CapBnd": "00000000a80425fb", "CapAmb": "0000000000000000"}
DOCKER_USER = {**DOCKER_ROOT, "CapPrm": "0000000000000000", "CapEff": "0000000000000000"}
SHOW = "grep -E '^(Cap|NoNewPrivs)' /proc/self/status | sed 's/^/{who} /'"


def _sets(output: str, who: str) -> dict[str, str]:
    rows = [line.split()[1:] for line in output.splitlines() if line.startswith(f"{who} ")]
    return {key.rstrip(":"): value for key, value in rows}


def _dockerfile(base: str) -> str:
    return (f"FROM {base}\n"
            f"RUN {SHOW.format(who='as-root')}\n"
            "USER nobody\n"
            f"RUN {SHOW.format(who='as-nobody')}\n")


def _check(output: str) -> None:
    root, nobody = _sets(output, "as-root"), _sets(output, "as-nobody")
    assert {k: root[k] for k in DOCKER_ROOT} == DOCKER_ROOT, output
    assert {k: nobody[k] for k in DOCKER_USER} == DOCKER_USER, output
    assert root["NoNewPrivs"] == nobody["NoNewPrivs"] == "1"


def test_a_step_holds_dockers_capabilities(attacker: Attacker, busybox_ref: str) -> None:
    result = attacker.build(attacker.context(_dockerfile(busybox_ref)), "-v", "debug")
    assert result.returncode == 0, result.stderr
    _check(result.stderr)
    # The debug report says what the step really got.
    reported = next(line for line in result.stderr.splitlines() if "sandbox: capabilities:" in line)
    assert f"bounding={DOCKER_ROOT['CapBnd'][-16:]}" in reported and "inheritable=0000000000000000" in reported
    assert f"permitted=effective={DOCKER_ROOT['CapEff']}" in reported and "no_new_privs=1" in reported


def test_inherited_sys_admin_does_not_reach_the_step(busybox_ref: str, registry_open, tmp_path) -> None:
    if os.geteuid() != 0:
        pytest.skip("raising an inheritable capability needs root")
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(_dockerfile(busybox_ref))
    command = ["setpriv", "--inh-caps=+sys_admin", "--ambient-caps=+sys_admin", "--", sys.executable, "-m",
               "builder", "build", str(context), "--no-push", "--isolation", "sandbox", "--insecure-registry",
               registry_open.host, "--cache-dir", str(tmp_path / "cache")]
    probe = subprocess.run([*command[:4], "grep", "CapAmb", "/proc/self/status"], capture_output=True, text=True,
                           check=False)
    assert probe.stdout.split()[1] == "0000000000200000", "setpriv did not hand down CAP_SYS_ADMIN"
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False,
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert result.returncode == 0, result.stderr
    _check(result.stderr)
