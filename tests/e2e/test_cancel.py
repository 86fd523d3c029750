"""A cancelled build (SIGTERM from a runner, SIGINT from a terminal, SIGHUP) leaves nothing behind.

Each test starts a real build, waits for a point inside it (the step writes to
a FIFO the test reads; the destination registry is a socket the test accepts
on), sends the signal, and then checks the host: the exit code and the one
line, no process of the step, no mount, nothing in the build's $TMPDIR, and a
next build with the same --cache-dir that works.
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from fixtures.readback import run_wharfie
from fixtures.registry import Registry

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="runs sandboxed builds as root")

WAIT = 120  # seconds: a bound for a hung build, never a synchronisation


def _start(context: Path, tmpdir: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "TMPDIR": str(tmpdir)}
    return subprocess.Popen([sys.executable, "-m", "builder", "build", str(context), *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _processes_with(marker: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            found.append(int(pid))
    return found


def _mounts_under(path: Path) -> list[str]:
    return [line for line in Path("/proc/self/mountinfo").read_text().splitlines() if str(path) in line]


def _wait_readable(fd: int, what: str) -> None:
    ready, _, _ = select.select([fd], [], [], WAIT)
    assert ready, f"the build never reached {what}"


def _finish(proc: subprocess.Popen[str]) -> tuple[int, str]:
    _out, err = proc.communicate(timeout=WAIT)
    return proc.returncode, err


def _assert_clean(code: int, stderr: str, signum: int, tmpdir: Path, marker: str) -> None:
    assert code == 128 + signum, stderr
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == f"wharfie: cancelled by {signal.Signals(signum).name}", stderr
    assert _processes_with(marker) == [], "the step outlived the build"
    assert _mounts_under(tmpdir) == []
    assert sorted(os.listdir(tmpdir)) == [], "the cancelled build left temporary files"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_cancel_during_run(registry_open: Registry, busybox_ref: str, tmp_path: Path, signum: int) -> None:
    marker = f"{3000 + uuid.uuid4().int % 600}"  # a sleep nobody else runs
    context, tmpdir, cache = tmp_path / "ctx", tmp_path / "tmp", tmp_path / "cache"
    context.mkdir()
    tmpdir.mkdir()
    os.mkfifo(context / "ready")
    (context / "Dockerfile").write_text(
        f"FROM {busybox_ref}\n"
        "RUN echo before > /before\n"
        f"RUN --mount=type=bind,target=/ctx echo started > /ctx/ready && sleep {marker}\n")
    reader = os.open(context / "ready", os.O_RDONLY | os.O_NONBLOCK)
    proc = _start(context, tmpdir, "--no-push", "--insecure-registry", registry_open.host, "--cache-dir", str(cache))
    try:
        _wait_readable(reader, "the RUN step")
        assert os.read(reader, 64) == b"started\n"
        assert _processes_with(f"sleep {marker}"), "the step is running"
        os.kill(proc.pid, signum)
        code, stderr = _finish(proc)
    finally:
        os.close(reader)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    _assert_clean(code, stderr, signum, tmpdir, f"sleep {marker}")

    (context / "ready").unlink()
    (context / "Dockerfile").write_text(f"FROM {busybox_ref}\nRUN echo after > /after\n")
    again = run_wharfie("build", str(context), "--no-push", "--insecure-registry", registry_open.host,
                        "--cache-dir", str(cache), env={"TMPDIR": str(tmpdir)})
    assert again.returncode == 0, again.stderr
    assert os.listdir(tmpdir) == []


def test_cancel_during_push(registry_open: Registry, busybox_ref: str, tmp_path: Path) -> None:
    """The destination accepts the connection and never answers: the build is cancelled while pushing."""
    context, tmpdir = tmp_path / "ctx", tmp_path / "tmp"
    context.mkdir()
    tmpdir.mkdir()
    (context / "data").write_bytes(os.urandom(1 << 20))
    (context / "Dockerfile").write_text(f"FROM {busybox_ref}\nCOPY data /data\nRUN echo built > /built\n")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        host = f"127.0.0.1:{silent.getsockname()[1]}"
        proc = _start(context, tmpdir, "-d", f"{host}/app:1", "--insecure-registry", host,
                      "--insecure-registry", registry_open.host, "--cache-dir", str(tmp_path / "cache"))
        try:
            _wait_readable(silent.fileno(), "the push")
            conn, _ = silent.accept()
            with conn:
                os.kill(proc.pid, signal.SIGTERM)
                code, stderr = _finish(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    _assert_clean(code, stderr, signal.SIGTERM, tmpdir, "never-a-step")


def test_second_signal_ends_at_once(registry_open: Registry, busybox_ref: str, tmp_path: Path) -> None:
    """A second signal while the first one's clean-up runs ends the process at once, with the same code."""
    context, tmpdir = tmp_path / "ctx", tmp_path / "tmp"
    context.mkdir()
    tmpdir.mkdir()
    (context / "Dockerfile").write_text(f"FROM {busybox_ref}\nRUN echo x > /x\n")
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        host = f"127.0.0.1:{silent.getsockname()[1]}"
        # A cache repository that never answers: the first signal's clean-up waits on a store that has started.
        proc = _start(context, tmpdir, "--no-push", "--cache", "--cache-repo", f"{host}/cache",
                      "--insecure-registry", host, "--insecure-registry", registry_open.host,
                      "--cache-dir", str(tmp_path / "cache"))
        try:
            _wait_readable(silent.fileno(), "the cache store")
            conn, _ = silent.accept()
            with conn:
                os.kill(proc.pid, signal.SIGTERM)
                os.kill(proc.pid, signal.SIGTERM)
                code, _stderr = _finish(proc)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert code == 128 + signal.SIGTERM
