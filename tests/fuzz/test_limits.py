"""Every limit of builder/frontend/limits.py stops what it is there to stop, quickly, and names itself in the error."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fuzz_support import OfflineBuild, assert_error_contract, time_limit

from builder.frontend import limits
from builder.frontend.limits import (
    MAX_DOCKERFILE_SIZE,
    MAX_EXPANDED_LENGTH,
    MAX_EXPANSION_DEPTH,
    MAX_HEREDOCS,
    MAX_INSTRUCTIONS,
    MAX_LINE_LENGTH,
    MAX_STAGES,
    MAX_VARIABLES_SIZE,
    Limit,
)
from oci.errors import DockerfileError, WharfieError

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture(scope="module")
def offline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OfflineBuild]:
    build = OfflineBuild(tmp_path_factory.mktemp("limits"))
    with build.offline():
        yield build


def fails_on(offline: OfflineBuild, text: str, limit: Limit, *, line: int | None, seconds: float = 20) -> str:
    """Build `text`: it must fail within `seconds`, naming `limit` and the line (None: the file)."""
    with time_limit(seconds, limit.name), pytest.raises(WharfieError) as info:
        offline.build(text.encode())
    assert_error_contract(info.value, filename="Dockerfile")
    message = str(info.value)
    assert limit.name in message and str(limit.value) in message, message
    where = "Dockerfile: " if line is None else f"Dockerfile:{line}: "
    assert message.startswith(where), message
    return message


def test_dockerfile_size(offline: OfflineBuild) -> None:
    line = "LABEL a=" + "x" * 1000 + "\n"
    fails_on(offline, "FROM busybox\n" + line * (MAX_DOCKERFILE_SIZE.value // len(line) + 1), MAX_DOCKERFILE_SIZE,
             line=None)


def test_a_dockerfile_over_the_size_is_not_read_into_memory(offline: OfflineBuild) -> None:
    path = offline.context / "Dockerfile.big"
    with open(path, "wb") as handle:
        handle.write(b"FROM busybox\n")
        handle.truncate(64 * 1024**3)  # sparse: 64 GiB that would not fit in memory
    try:
        from builder.engine.build import _read_dockerfile

        with time_limit(5, "reading"), pytest.raises(DockerfileError, match=MAX_DOCKERFILE_SIZE.name):
            _read_dockerfile(path)
    finally:
        path.unlink()


def test_line_length(offline: OfflineBuild) -> None:
    fails_on(offline, "FROM busybox\nRUN echo " + "x" * MAX_LINE_LENGTH.value + "\n", MAX_LINE_LENGTH, line=2)


def test_instruction_count(offline: OfflineBuild) -> None:
    fails_on(offline, "FROM busybox\n" + "ENV A=1\n" * MAX_INSTRUCTIONS.value, MAX_INSTRUCTIONS,
             line=MAX_INSTRUCTIONS.value + 1)


def test_stage_count(offline: OfflineBuild) -> None:
    text = "FROM busybox AS s0\n" + "".join(f"FROM s{i} AS s{i + 1}\n" for i in range(MAX_STAGES.value))
    fails_on(offline, text, MAX_STAGES, line=MAX_STAGES.value + 1)


def test_heredoc_count(offline: OfflineBuild) -> None:
    count = MAX_HEREDOCS.value + 1
    text = "FROM busybox\nRUN " + " ".join(f"<<E{i}" for i in range(count)) + "\n" + "".join(f"E{i}\n" for i in
                                                                                          range(count))
    fails_on(offline, text, MAX_HEREDOCS, line=2)


def test_expansion_depth(offline: OfflineBuild) -> None:
    depth = 100_000
    fails_on(offline, "FROM busybox\nENV B=" + "${A:-" * depth + "x" + "}" * depth + "\n", MAX_EXPANSION_DEPTH,
             line=2)


def test_a_variable_that_doubles(offline: OfflineBuild) -> None:
    """`ENV A=$A$A` sixty times would need 2^60 characters; it stops at the limit, in seconds."""
    text = "FROM busybox\nENV A=ab\n" + "ENV A=$A$A\n" * 60
    message = fails_on(offline, text, MAX_VARIABLES_SIZE, line=21)
    assert len(message) < 500


def test_many_references_in_one_word(offline: OfflineBuild) -> None:
    big = "x" * (MAX_VARIABLES_SIZE.value // 2)
    fails_on(offline, f"FROM busybox\nENV A={big}\nLABEL l=" + "$A" * 100 + "\n", MAX_EXPANDED_LENGTH, line=3)


def test_heredoc_bodies_may_be_long_when_they_do_not_grow(offline: OfflineBuild) -> None:
    body = ("y" * 1000 + "\n") * (MAX_EXPANDED_LENGTH.value // 1000 + 10)
    offline.build(f"FROM busybox\nCOPY <<EOF /big\n{body}EOF\n".encode())


def test_one_env_with_many_pairs_is_fast(offline: OfflineBuild) -> None:
    """Found by the fuzzer: each pair copied the whole scope, 50,000 pairs took minutes."""
    text = "FROM busybox\nENV " + " ".join(f"K{i}=v" for i in range(50_000)) + "\nRUN true\n"
    started = time.monotonic()
    with time_limit(30, "50,000 pairs"):
        offline.build(text.encode())
    assert time.monotonic() - started < 30


def test_every_limit_is_in_the_readme() -> None:
    text = README.read_text()
    for limit in limits.LIMITS:
        assert f"`{limit.name}`" in text, f"README does not document {limit.name}"
