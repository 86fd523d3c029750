"""The layer cache: a RUN whose bind mounts read other files is another step, with another key.

The attack (with `--cache`, as CI uses it: one cache repository for every
branch of a project): a merge request keeps the Dockerfile's `RUN
--mount=type=bind,source=build.sh,target=/b sh /b` and changes only
`build.sh`, to plant a backdoor. The RUN's key covered the instruction but
not what the bind mounts, so the poisoned layer was stored under the same
key as the trusted build's step, and the next build of the trusted branch
took it from the cache. Likewise for a bind `from=` a stage whose content
changed. The check: the trusted build's image holds what its own files make.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from attack import Attacker

from fixtures.readback import read_back, tree_of


def _build(attacker: Attacker, dockerfile: str, files: dict[str, str], cache_repo: str, dest: str,
           tmp_path: Path, name: str) -> dict[str, tuple[str, int, int, int, str]]:
    context = attacker.context(dockerfile, files)
    result = attacker.build(context, "--cache=true", "--cache-repo", cache_repo, push_to=dest)
    assert result.returncode == 0, result.stderr
    return tree_of(read_back(dest, tmp_path / name, ["--src-tls-verify=false"]).rootfs)


def test_a_changed_bind_source_is_not_answered_from_the_cache(attacker: Attacker, busybox_ref: str,
                                                              tmp_path: Path) -> None:
    repo = f"{attacker.registry_host}/attack/poison-{uuid.uuid4().hex[:8]}"
    dockerfile = f"FROM {busybox_ref}\nRUN --mount=type=bind,source=build.sh,target=/b.sh sh /b.sh\n"
    hostile = _build(attacker, dockerfile, {"build.sh": "echo backdoor > /out\n"}, f"{repo}/cache", f"{repo}/mr:1",
                     tmp_path, "mr")
    assert hostile["out"][4] == "backdoor\n"
    trusted = _build(attacker, dockerfile, {"build.sh": "echo trusted > /out\n"}, f"{repo}/cache",
                     f"{repo}/main:1", tmp_path, "main")
    assert trusted["out"][4] == "trusted\n", "the trusted build took the merge request's layer from the cache"


@pytest.mark.parametrize("mount", ["source=.,target=/ctx", "target=/ctx"], ids=["context-dir", "whole-context"])
def test_a_changed_context_directory_bind_is_not_answered_from_the_cache(attacker: Attacker, busybox_ref: str,
                                                                         tmp_path: Path, mount: str) -> None:
    repo = f"{attacker.registry_host}/attack/poison-{uuid.uuid4().hex[:8]}"
    dockerfile = f"FROM {busybox_ref}\nRUN --mount=type=bind,{mount} cat /ctx/src/a > /out\n"
    _build(attacker, dockerfile, {"src/a": "backdoor\n"}, f"{repo}/cache", f"{repo}/mr:1", tmp_path, "mr")
    trusted = _build(attacker, dockerfile, {"src/a": "trusted\n"}, f"{repo}/cache", f"{repo}/main:1", tmp_path,
                     "main")
    assert trusted["out"][4] == "trusted\n"


def test_a_bind_from_a_changed_stage_is_not_answered_from_the_cache(attacker: Attacker, busybox_ref: str,
                                                                    tmp_path: Path) -> None:
    repo = f"{attacker.registry_host}/attack/poison-{uuid.uuid4().hex[:8]}"
    dockerfile = (f"FROM {busybox_ref} AS tools\nCOPY tool /tool\n"
                  f"FROM {busybox_ref}\nRUN --mount=type=bind,from=tools,source=/tool,target=/t cat /t > /out\n")
    _build(attacker, dockerfile, {"tool": "backdoor\n"}, f"{repo}/cache", f"{repo}/mr:1", tmp_path, "mr")
    trusted = _build(attacker, dockerfile, {"tool": "trusted\n"}, f"{repo}/cache", f"{repo}/main:1", tmp_path, "main")
    assert trusted["out"][4] == "trusted\n"


def test_an_unchanged_bind_source_is_still_a_cache_hit(attacker: Attacker, busybox_ref: str, tmp_path: Path) -> None:
    """The control: the key follows the bind's content, so the same content hits."""
    repo = f"{attacker.registry_host}/attack/poison-{uuid.uuid4().hex[:8]}"
    dockerfile = f"FROM {busybox_ref}\nRUN --mount=type=bind,source=build.sh,target=/b.sh sh /b.sh\n"
    files = {"build.sh": "echo $RANDOM > /out\n"}
    first = _build(attacker, dockerfile, files, f"{repo}/cache", f"{repo}/a:1", tmp_path, "a")
    second = _build(attacker, dockerfile, files, f"{repo}/cache", f"{repo}/b:1", tmp_path, "b")
    assert first["out"] == second["out"], "the same step with the same files came from the cache"
