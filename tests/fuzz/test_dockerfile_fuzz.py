"""Fuzzing the Dockerfile: generated and mutated files, built in-process offline (fuzz_support.OfflineBuild).

Each example is the bytes of a Dockerfile, read, parsed, planned, expanded and
built as `wharfie build --no-push` would (RUN steps not executed, base images
local, no network). It must succeed or fail with a one-line WharfieError naming
the Dockerfile and the line; nothing else, and nothing left in the work dir.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from dockerfile_strategies import conformance_mutants, dockerfiles, hostile_bytes, instruction
from fuzz_support import OfflineBuild, assert_error_contract, fuzz_settings, outcome, time_limit
from hypothesis import example, given
from hypothesis import strategies as st

from oci.errors import WharfieError

TIME_LIMIT = 10.0  # seconds for one build; any example that takes longer is a hang


@pytest.fixture(scope="module")
def offline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OfflineBuild]:
    build = OfflineBuild(tmp_path_factory.mktemp("fuzz-build"))
    with build.offline():
        yield build


def check_build(offline: OfflineBuild, dockerfile: bytes, **kwargs: object) -> str | None:
    """Build; None on success, else the error's message, after checking the contract."""
    try:
        with time_limit(TIME_LIMIT, "build"):
            offline.build(dockerfile, **kwargs)  # type: ignore[arg-type]
    except WharfieError as exc:
        assert_error_contract(exc, filename=offline.dockerfile.name)
        outcome(f"error: {type(exc).__name__}")
        return str(exc)
    outcome("built")
    return None


# -- regressions: bugs found by hand and by these fuzzers --------------------------

def test_nul_byte_in_run_is_a_line_error(offline: OfflineBuild) -> None:
    """Issue 17: a NUL byte in a RUN line reached os.execvpe ("ValueError: embedded null byte")."""
    message = check_build(offline, b"FROM busybox\nRUN echo a\x00b\n")
    assert message is not None and message.startswith("Dockerfile:2: ") and "NUL" in message


def test_nul_byte_in_heredoc_body_names_its_line(offline: OfflineBuild) -> None:
    message = check_build(offline, b"FROM busybox\nCOPY <<EOF /x\nfine\nnot\x00fine\nEOF\n")
    assert message is not None and message.startswith("Dockerfile:4: ")


def test_nul_byte_from_a_base_image_config(offline: OfflineBuild) -> None:
    """A registry's config can hold what a Dockerfile cannot: the step refuses it, naming no value."""
    offline.base_env = ("PATH=/bin", "TOKEN=hunter2\x00")
    try:
        message = check_build(offline, b"FROM busybox\nRUN true\n")
    finally:
        offline.base_env = ("PATH=/usr/bin:/bin",)
    assert message is not None and message.startswith("Dockerfile:2: ") and "TOKEN" in message
    assert "hunter2" not in message


def test_invalid_ipv6_url_in_add(offline: OfflineBuild) -> None:
    """Issue 17: `ADD http://[::1` raised "ValueError: Invalid IPv6 URL" with a traceback."""
    message = check_build(offline, b"FROM scratch\nADD http://[::1 /x\n")
    assert message is not None and message.startswith("Dockerfile:2: ") and "http://[::1" in message


@pytest.mark.parametrize("url", ["http://host:99999/x", "http://host:port/x", "https://[::1]:-1/",
                                 "http://exa mple/x", "http://[fe80::1%25/"])
def test_malformed_urls_in_add(offline: OfflineBuild, url: str) -> None:
    message = check_build(offline, f"FROM scratch\nADD {url} /x\n".encode())
    assert message is not None and message.startswith("Dockerfile:2: ")


def test_malformed_url_keeps_credentials_out_of_the_error(offline: OfflineBuild) -> None:
    message = check_build(offline, b"FROM scratch\nADD http://user:hunter2@[::1/x /x\n")
    assert message is not None and message.startswith("Dockerfile:2: ")
    assert "hunter2" not in message


SLOW_INPUTS = {  # found by probing with big inputs: each took minutes to hours, or blew the stack
    "expose-ranges": b"FROM busybox\nEXPOSE " + b"1-65535 " * 100_000 + b"\n",
    "long-env-word": b"FROM busybox\nENV A=" + b"a" * 900_000 + b"\n",
    "long-flag": b"FROM busybox\nRUN --mount=type=tmpfs,target=/" + b"a" * 900_000 + b" true\n",
    "deep-json": b"FROM busybox\nRUN " + b"[" * 100_000 + b"\n",
    "deep-json-copy": b"FROM busybox\nCOPY " + b"[" * 100_000 + b"]" * 100_000 + b"\n",
    "many-pairs": b"FROM busybox\nARG " + b" ".join(b"K%d=$K%d" % (i, i - 1) for i in range(1, 40_000)) + b"\n",
}


@pytest.mark.parametrize("dockerfile", SLOW_INPUTS.values(), ids=SLOW_INPUTS.keys())
def test_inputs_that_took_minutes(offline: OfflineBuild, dockerfile: bytes) -> None:
    with time_limit(20, "a build that took minutes"):
        check_build(offline, dockerfile)


# -- property tests ---------------------------------------------------------------

@fuzz_settings(150)
@given(dockerfiles())
@example(b"FROM a.txt\nFROM busybox\nRUN --mount=type=bind,from=0,target=/f a.txt\n")  # KeyError: a mount's
# from=0 names an image (stages by name only), the plan knew it, the step looked for stage 0
def test_generated_dockerfiles(offline: OfflineBuild, text: bytes) -> None:
    check_build(offline, text)


@fuzz_settings(150)
@given(conformance_mutants())
@example(b"FROM busybox\nWORKDIR /app\nCOPY a.txt " + b"renamed.txt" * 24 + b"\n")  # OSError: file name too long
def test_mutated_conformance_cases(offline: OfflineBuild, text: bytes) -> None:
    check_build(offline, text)


@fuzz_settings(100)
@given(hostile_bytes())
@example(b"FROM busybox\nRUN " + b"[" * 5000)  # RecursionError in json.loads
def test_arbitrary_bytes(offline: OfflineBuild, text: bytes) -> None:
    check_build(offline, text)


def test_the_offline_build_builds(offline: OfflineBuild, tmp_path: Path) -> None:
    """The harness is no rubber stamp: a good file builds, a bad one fails with its line."""
    assert check_build(offline, b"FROM busybox\nCOPY a.txt /a\nRUN true\n") is None
    message = check_build(offline, b"FROM busybox\nCOPY missing.txt /a\n")
    assert message is not None and message.startswith("Dockerfile:2: ")


@fuzz_settings(40)
@given(st.lists(st.one_of(instruction(), st.text(max_size=30)), min_size=1, max_size=3))
@example(["RUN <<EOF", "ONBUILD RUN x", "COPY\x00 a b"])
def test_onbuild_triggers_of_a_base_image(offline: OfflineBuild, triggers: list[str]) -> None:
    """A base image's config (a registry's answer) carries ONBUILD triggers: each is parsed like a Dockerfile."""
    offline.base_on_build = tuple(triggers)
    try:
        check_build(offline, b"FROM busybox\nRUN true\n")
    finally:
        offline.base_on_build = None
