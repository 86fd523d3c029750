"""RUN steps in place cannot read the job's credentials from /proc: neither wharfie's nor the job shell's.

The whole path (the wharfie image under podman, a token in the job's
environment, a RUN that greps every /proc/*/environ) is in tests/image; here
the pieces run on this machine: the capability plan from /proc status texts,
and a real step started by `InPlaceRunner` from a process that holds a token
next to a "job shell" that holds it too.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from builder.execution.credential_guard import DOCKER_DEFAULT_CAPS, choose_marker, in_place_step_capabilities

PODMAN_DEFAULT = 0x800405FB  # CapEff of a podman 4.3 container: no audit_write, mknod or net_raw
DOCKER_DEFAULT = sum(1 << cap for cap in DOCKER_DEFAULT_CAPS)
EVERYTHING = (1 << 41) - 1


def _status(permitted: int, inheritable: int = 0, bounding: int | None = None) -> str:
    bounding = permitted if bounding is None else bounding
    return (f"Name:\tpython3\nCapInh:\t{inheritable:016x}\nCapPrm:\t{permitted:016x}\nCapEff:\t{permitted:016x}\n"
            f"CapBnd:\t{bounding:016x}\nCapAmb:\t0000000000000000\n")


def test_the_marker_is_a_capability_the_job_holds_and_builds_need_least() -> None:
    assert choose_marker(DOCKER_DEFAULT, 0) == 29, "audit_write first"
    assert choose_marker(PODMAN_DEFAULT, 0) == 31, "podman gives no audit_write or mknod: setfcap"
    assert choose_marker(DOCKER_DEFAULT, 1 << 29) == 27, "an inheritable capability survives exec: not a marker"
    assert choose_marker(1 << 0 | 1 << 1, 0) is None, "nothing to withhold"


def test_steps_get_dockers_set_minus_the_marker() -> None:
    podman = in_place_step_capabilities(_status(PODMAN_DEFAULT))
    assert (podman.marker, podman.drop) == ("setfcap", (31,))
    privileged = in_place_step_capabilities(_status(EVERYTHING))
    kept = {cap for cap in range(41) if cap not in privileged.drop}
    assert privileged.marker == "audit_write" and kept == DOCKER_DEFAULT_CAPS - {29}
    assert 19 in privileged.drop and 21 in privileged.drop, "sys_ptrace and sys_admin never reach a step"
    assert in_place_step_capabilities(_status(0b11)).marker is None


_JOB = """
import os, subprocess, sys
from pathlib import Path
from builder.execution.credential_guard import make_undumpable
from builder.execution.inplace import InPlaceRunner
from builder.execution.sandbox import RunSpec

token = os.environ["JOB_TOKEN"]
shell = subprocess.Popen(["sleep", "120"])          # the job's shell: the token is in its environment too
make_undumpable()
script = sys.argv[1].replace("SHELL_PID", str(shell.pid))
lines = []
try:
    InPlaceRunner((), Path(sys.argv[2]))(RunSpec(root=Path("/"), argv=["/bin/sh", "-c", script],
                                                 env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}), lines.append)
    control = subprocess.run(["cat", f"/proc/{shell.pid}/environ"], capture_output=True)  # a plain child reads it
finally:
    shell.kill()
print("\\n".join(lines))
print("control:", token.encode() in control.stdout)
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="steps run in place as root")
def test_an_in_place_step_cannot_read_the_job_environment_or_wharfies_memory(tmp_path: Path) -> None:
    token = "wharfie-test-token-4711"
    step = textwrap.dedent("""\
        for f in /proc/[0-9]*/environ; do cat "$f" 2>/dev/null; done | tr '\\0' '\\n' | grep -c "$TOKEN_PATTERN"
        cat /proc/$PPID/environ >/dev/null 2>&1 && echo "read wharfie environ" || echo "wharfie environ refused"
        head -c1 /proc/$PPID/mem >/dev/null 2>&1; [ $? -eq 0 ] && echo "opened wharfie mem" || echo "wharfie mem refused"
        cat /proc/SHELL_PID/environ >/dev/null 2>&1 && echo "read shell environ" || echo "shell environ refused"
        """).replace("$TOKEN_PATTERN", token[:-1] + "[1]")  # the step's own command line does not match itself
    (tmp_path / "scratch").mkdir()
    done = subprocess.run([sys.executable, "-c", _JOB, step, str(tmp_path / "scratch")], capture_output=True,
                          text=True, env={**os.environ, "JOB_TOKEN": token},
                          cwd=Path(__file__).resolve().parents[2], timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines == ["0", "wharfie environ refused", "wharfie mem refused", "shell environ refused", "control: True"]


_TARGET = """
import sys, time
from builder.execution.credential_guard import make_undumpable
if sys.argv[1] == "undumpable":
    make_undumpable()
print("ready", flush=True)
time.sleep(60)
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to start both sides with the same capabilities")
@pytest.mark.parametrize("kind", ["dumpable", "undumpable"])
def test_an_undumpable_wharfie_hides_its_environ_from_a_process_with_the_same_capabilities(kind: str) -> None:
    docker_set = "-all," + ",".join(f"+{name}" for name in ("chown", "dac_override", "fowner", "setuid", "setgid"))
    same_caps = ["setpriv", "--bounding-set", docker_set, "--"]
    with subprocess.Popen([*same_caps, sys.executable, "-c", _TARGET, kind], stdout=subprocess.PIPE, text=True,
                          env={**os.environ, "JOB_TOKEN": "wharfie-test-token-0815"},
                          cwd=Path(__file__).resolve().parents[2]) as target:
        try:
            assert target.stdout is not None and target.stdout.readline() == "ready\n"
            read = subprocess.run([*same_caps, "cat", f"/proc/{target.pid}/environ"], capture_output=True, check=False)
        finally:
            target.kill()
    assert (b"wharfie-test-token-0815" in read.stdout) == (kind == "dumpable"), read.stderr
