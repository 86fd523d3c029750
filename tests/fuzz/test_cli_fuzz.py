"""Fuzzing the command line: every flag value of every command, through `builder.cli.main` itself.

`main()` is what the `wharfie` script runs: it turns a WharfieError or a click
error into a message and an exit code. Each example runs it in-process (click's
CliRunner isolation for the streams) and checks the README's contract: exit 0,
or a non-zero exit whose stderr ends in one error line, with no traceback.
Builds are offline (fuzz_support.OfflineBuild); registry commands meet a
network that refuses every connection, with retries not waiting, and a docker
config.json in a scratch directory.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Iterator
from unittest import mock

import httpx
import pytest
from click.testing import CliRunner
from fuzz_support import OfflineBuild, fuzz_settings, outcome, time_limit
from hypothesis import example, given
from hypothesis import strategies as st

from builder.cli import app as wharfie_cli
from builder.execution.isolation import Isolation

ERROR_PREFIXES = ("wharfie: error: ", "Error: ", "wharfie: aborted", "wharfie: interrupted")


class Run:
    def __init__(self, code: int, stdout: str, stderr: str) -> None:
        self.code, self.stdout, self.stderr = code, stdout, stderr


def run_main(args: list[str], env: dict[str, str] | None = None, stdin: str = "") -> Run:
    """`wharfie ARGS` in this process: main() with argv set and the streams captured."""
    runner = CliRunner()
    code = 0
    with runner.isolation(input=stdin, env=env) as (out, err, _), mock.patch.object(sys, "argv", ["wharfie", *args]):
        try:
            wharfie_cli.main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        stdout, stderr = out.getvalue().decode(errors="replace"), err.getvalue().decode(errors="replace")
    return Run(code, stdout, stderr)


def check_contract(run: Run) -> None:
    assert "Traceback" not in run.stderr + run.stdout, run.stderr
    if run.code == 0:
        outcome("exit 0")
        return
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert lines, f"exit {run.code} without a word on stderr"
    last = lines[-1]
    assert last.startswith(ERROR_PREFIXES), f"the last line is not an error line: {run.stderr!r}"
    assert "\x00" not in last
    outcome(f"exit {run.code}: {last.split(':')[0]}")


@pytest.fixture(scope="module")
def offline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OfflineBuild]:
    build = OfflineBuild(tmp_path_factory.mktemp("cli-build"))
    build.dockerfile.write_text("FROM busybox\nARG X\nLABEL x=$X\nCOPY a.txt /a\nRUN --mount=type=secret,id=tok true\n")

    def no_sending(*args: object, **kwargs: object) -> httpx.Response:
        raise httpx.ConnectError("the network is off in fuzz tests")

    root = logging.getLogger()
    handler = logging.NullHandler()
    root.addHandler(handler)  # basicConfig() then leaves the handlers alone: no handler on a closed stream
    with build.offline(), \
            mock.patch("builder.engine.api.resolve_isolation", lambda mode, **_: Isolation("sandbox")), \
            mock.patch("httpx.Client.send", no_sending), \
            mock.patch("registry.retry.RetryPolicy.delay", lambda *args, **kwargs: 0.0), \
            mock.patch.dict(os.environ, {"DOCKER_CONFIG": str(build.root / "docker-config"),
                                         "HOME": str(build.root / "home"), "CI_REGISTRY_IMAGE": ""}):
        yield build
    root.removeHandler(handler)


TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
REFS = st.one_of(
    st.sampled_from(["busybox", "localhost:5000/a/b:1", "registry.example/x@sha256:" + "a" * 64, "UPPER/x",
                     "a//b", ":tag", "x:" + "t" * 200, "[::1]:5000/x", "host:99999/x", "h/x@sha256:00",
                     "x:tést", "docker.io/library/busybox:latest", "a" * 300, "http://h/x"]),
    TEXT)
AGES = st.one_of(st.sampled_from(["336h", "14d", "1month", "0d", "9" * 30 + "d", "99999999999h", "-1d", "1.5h",
                                  "d", "12", "2w"]), TEXT)
INTS = st.one_of(st.sampled_from(["0", "-1", "3", "9" * 40, "1e3", "", "x"]), st.integers(-5, 40).map(str))
KEY_VALUES = st.one_of(st.sampled_from(["X=1", "X=", "=1", "X", "UNSET_FUZZ_VAR", "X=a=b", "X=\n", "HTTP_PROXY=x",
                                        "X=" + "v" * 5000, "X=$(id)"]), TEXT)
SECRETS = st.one_of(st.sampled_from(["id=tok,src=secret.txt", "id=tok,env=HOME", "id=tok", "src=x", "id=,src=",
                                     "id=a,type=env,src=PATH", "id=a,bogus=1", "id=a,src=/nonexistent", "",
                                     "id=tok,src=" + "/" * 3]), TEXT)
PLATFORMS = st.one_of(st.sampled_from(["linux/amd64", "linux/arm64/v8", "linux", "/", "linux//", "a/b/c/d",
                                       "windows/amd64", "linux/ amd64"]), TEXT)


@st.composite
def build_flags(draw: st.DrawFn) -> list[str]:
    args: list[str] = []
    options = {
        "--build-arg": KEY_VALUES, "--label": KEY_VALUES, "--secret": SECRETS, "--platform": PLATFORMS,
        "--target": st.one_of(st.sampled_from(["0", "s0", "S0", "missing"]), TEXT), "--destination": REFS,
        "--cache-repo": REFS, "--cache-from": REFS, "--cache-ttl": AGES, "--push-retry": INTS,
        "--push-concurrency": INTS, "--compression-level": INTS, "--registry-certificate": KEY_VALUES,
        "--insecure-registry": REFS, "--registry-mirror": REFS, "--ignore-path": TEXT,
        "--compression": st.sampled_from(["gzip", "zstd", "none", "lz4"]),
        "--manifest-format": st.sampled_from(["oci", "docker", "v1"]),
        "--network": st.sampled_from(["host", "none", "default", "bridge"]),
        "--snapshot-mode": st.sampled_from(["full", "redo", "time", "x"]),
        "--cache": st.sampled_from(["true", "false", "maybe", "1"]),
        "--cache-run-layers": st.sampled_from(["true", "no", "x"]),
        "--dockerfile": st.sampled_from(["Dockerfile", "missing", "/", "context/Dockerfile", "dir"]),
        "--verbosity": st.sampled_from(["debug", "info", "loud"]),
    }
    for name in draw(st.lists(st.sampled_from(sorted(options)), max_size=5)):
        args += [name, draw(options[name])]
    args += draw(st.lists(st.sampled_from(["--reproducible", "--no-push-cache", "--insecure", "--skip-tls-verify",
                                           "--force", "-q"]), max_size=2, unique=True))
    return args


@fuzz_settings(100)
@given(build_flags(), st.sampled_from([None, "0", "1700000000", "9" * 30, "-1", "x", "1e9"]))
@example(["--cache-ttl", "9" * 30 + "d"], None)  # timedelta overflow
@example([], "9" * 30)  # SOURCE_DATE_EPOCH beyond datetime's years
@example(["--push-retry", "9" * 40], None)
@example(["--build-arg", "X=a\x00b"], None)  # only in-process: argv cannot hold a NUL byte
def test_build_flags(offline: OfflineBuild, flags: list[str], epoch: str | None) -> None:
    args = ["build", str(offline.context), "--no-push", "--cache-dir", str(offline.cache), *flags]
    env = {"SOURCE_DATE_EPOCH": epoch} if epoch is not None else {}
    with time_limit(20, "wharfie build"):
        check_contract(run_main(args, env))
    assert not list(offline.work.iterdir())


@st.composite
def registry_commands(draw: st.DrawFn) -> list[str]:
    command = draw(st.sampled_from(["login", "logout", "tags ls", "tags rm", "inspect", "cleanup", "pull",
                                    "cache prune"]))
    args = command.split()
    if command == "login":
        args += draw(st.lists(REFS, max_size=1)) + ["-u", draw(TEXT), "--password", draw(TEXT)]
    elif command == "logout":
        args += draw(st.lists(REFS, max_size=1))
    elif command in ("cleanup", "cache prune"):
        args += [draw(REFS), "--older-than", draw(AGES), "--dry-run"]
        if command == "cleanup":
            args += ["--name-regex-delete", draw(st.one_of(st.sampled_from([".*", "(", "[", "a{99999999}", "(?P<"]),
                                                           TEXT)), "--keep-n", draw(INTS)]
    elif command == "pull":
        args += [draw(REFS), "--tar-path", "out.tar", "--platform", draw(PLATFORMS)]
    elif command == "inspect":
        args += [draw(REFS), "--platform", draw(PLATFORMS)] + draw(st.lists(st.sampled_from(["--raw", "--config"]),
                                                                         max_size=1))
    else:
        args += draw(st.lists(REFS, min_size=1, max_size=2))
    for name, values in (("--push-retry", st.sampled_from(["0", "1", "-1", "x"])), ("--registry-certificate",
                         KEY_VALUES), ("--registry-mirror", REFS), ("--insecure-registry", REFS)):
        if command != "logout" and draw(st.booleans()):
            args += [name, draw(values)]
    return args


@fuzz_settings(150)
@given(registry_commands())
@example(["cleanup", "busybox", "--older-than", "9" * 30 + "d", "--name-regex-delete", ".*"])
@example(["cache", "prune", "localhost:5000/c", "--older-than", "99999999999999999999h"])
@example(["login", "[::1", "-u", "u", "--password", "p"])
@example(["tags", "ls", "busybox", "\r"])  # click quoted the argument raw: the error took two lines
@example(["tags", "ls", "busybox", "\x85"])  # so does NEL, for str.splitlines()
@example(["pull", "busybox", "--tar-path", "out.tar", "--registry-mirror", "\x80"])  # httpx.InvalidURL
@example(["inspect", "busybox", "--registry-mirror", "h/\x1f"])
def test_registry_commands(offline: OfflineBuild, args: list[str]) -> None:
    with time_limit(20, "wharfie " + " ".join(args[:2])):
        run = run_main([*args, "-q"] if args[0] not in ("logout",) else args)
    check_contract(run)
