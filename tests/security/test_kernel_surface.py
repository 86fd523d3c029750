"""Issue #10 point 7: docker's seccomp profile and a fresh session keyring for every step.

Without them a root step could read the keys of the builder's session
keyring (a CI job's tokens kept with keyctl) and reach kernel interfaces
docker closes: io_uring, bpf, perf_event_open, keyctl, new user
namespaces, mount. A static probe (syscalls.c) tries each from inside the
step, as root and rootless; each must fail with EPERM, as under `docker run`.
The key test runs wharfie with a key in its own session keyring and has the
step look for it and read it by serial.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pyseccomp
import pytest
from attack import REPO_ROOT, Attacker

from builder.execution.keyring import join_fresh_session_keyring

PROBES = ("add_key", "io_uring_setup", "bpf", "perf_event_open", "unshare-user", "mount")
_libc = ctypes.CDLL("libc.so.6", use_errno=True)
_libc.syscall.restype = ctypes.c_long
_KEY_SPEC_SESSION_KEYRING = -3
_KEYCTL_SEARCH = 10


def _probe_binary(directory: Path) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is needed to build the syscall probe")
    binary = directory / "syscalls"
    result = subprocess.run(["gcc", "-static", "-O1", "-o", str(binary), str(Path(__file__).with_name("syscalls.c"))],
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        pytest.skip(f"cannot build a static binary here: {result.stderr.strip()[:200]}")
    return binary


def _outcomes(output: str) -> dict[str, str]:
    names = {*PROBES, "fork", "keyctl-read", "keyctl-search", "Seccomp"}
    rows = (line.partition(":") for line in output.splitlines())
    return {name: value.strip() for name, _, value in rows if name in names}


def test_docker_profile_refuses_the_kernel_surface(attacker: Attacker, busybox_ref: str) -> None:
    context = attacker.context(f"FROM {busybox_ref}\nCOPY syscalls /syscalls\n"
                               f"RUN /syscalls {' '.join(PROBES)} fork && grep '^Seccomp:' /proc/self/status\n")
    attacker._own(_probe_binary(context))
    result = attacker.build(context, "-v", "debug")
    assert result.returncode == 0, result.stderr
    seen = _outcomes(result.stderr)
    assert {probe: seen.get(probe) for probe in PROBES} == dict.fromkeys(PROBES, "EPERM"), result.stderr
    assert seen["fork"] == "ok" and seen["Seccomp"] == "2"
    reported = next(line for line in result.stderr.splitlines() if "sandbox: seccomp:" in line)
    assert "docker-default" in reported and "others SCMP_ACT_ERRNO errno 1" in reported


_WRAPPER = """
import ctypes, os, sys
libc = ctypes.CDLL("libc.so.6", use_errno=True)
libc.syscall.restype = ctypes.c_long
libc.syscall(250, 1, None)  # keyctl(KEYCTL_JOIN_SESSION_KEYRING, NULL): a session of our own
serial = libc.syscall(248, b"user", sys.argv[1].encode(), b"the-builder-secret", 18, -3)  # add_key to @s
assert serial > 0, ctypes.get_errno()
args = [sys.executable, "-m", "builder", *sys.argv[2:], "--build-arg", f"SERIAL={serial}"]
os.execv(sys.executable, args)
"""


def test_a_step_cannot_read_the_builders_session_keyring(busybox_ref: str, registry_open, tmp_path: Path) -> None:
    if os.uname().machine != "x86_64":
        pytest.skip("the wrapper uses x86_64 syscall numbers")
    description = f"wharfie-test-{uuid.uuid4().hex[:8]}"
    context = tmp_path / "ctx"
    context.mkdir()
    _probe_binary(context)
    (context / "Dockerfile").write_text(f"FROM {busybox_ref}\nCOPY syscalls /syscalls\nARG SERIAL\n"
                                        f"RUN /syscalls keyctl-search={description} keyctl-read=$SERIAL\n")
    result = subprocess.run([sys.executable, "-c", _WRAPPER, description, "build", str(context), "--no-push",
                             "--isolation", "sandbox", "--insecure-registry", registry_open.host, "--cache-dir",
                             str(tmp_path / "cache")], capture_output=True, text=True, timeout=600, check=False,
                            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert result.returncode == 0, result.stderr
    assert "the-builder-secret" not in result.stderr
    seen = _outcomes(result.stderr)
    assert seen["keyctl-search"] == "EPERM" and seen["keyctl-read"] == "EPERM", result.stderr


def test_a_fresh_session_keyring_does_not_find_the_old_ones_keys() -> None:
    """The keyring half alone (the seccomp profile also refuses keyctl in a step)."""
    description = f"wharfie-test-{uuid.uuid4().hex[:8]}".encode()
    keyctl = pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, "keyctl")
    add_key = pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, "add_key")
    pid = os.fork()
    if pid == 0:  # a child, so the test's own session keyring is left alone
        code = 1
        try:
            join_fresh_session_keyring()
            _libc.syscall(ctypes.c_long(add_key), b"user", description, b"secret", ctypes.c_size_t(6),
                          ctypes.c_int(_KEY_SPEC_SESSION_KEYRING))
            found = _libc.syscall(ctypes.c_long(keyctl), _KEYCTL_SEARCH, _KEY_SPEC_SESSION_KEYRING, b"user",
                                  description, 0)
            join_fresh_session_keyring()
            again = _libc.syscall(ctypes.c_long(keyctl), _KEYCTL_SEARCH, _KEY_SPEC_SESSION_KEYRING, b"user",
                                  description, 0)
            code = 0 if found > 0 and again == -1 and ctypes.get_errno() == 126 else 3  # ENOKEY
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
