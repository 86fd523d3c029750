"""A CI job's container: root without CAP_SYS_ADMIN, user namespaces allowed, wharfie's image keeping its own paths.

The real thing (podman, runc, the default profile) is in tests/image; here
the choice, the id mapping and the in-place ignore list from given facts.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from builder.execution import inplace
from builder.execution.isolation import HostFacts, IdMapping, IsolationError, SubIdRange, choose_isolation
from builder.execution.userns import MAX_IDS, mappable_ids

JOB_CONTAINER = HostFacts(root=True, mapping=None, namespaces=False, user_namespaces=True,
                          container="/run/.containerenv")
REENTERED = HostFacts(root=True, mapping=IdMapping(0, SubIdRange(1, MAX_IDS - 1)), namespaces=True,
                      user_namespaces=True, container="/run/.containerenv", reentered="root")
NO_USERNS = HostFacts(root=True, mapping=None, namespaces=False, user_namespaces=False, container="/.dockerenv")


def test_root_that_can_make_only_user_namespaces_is_never_built_in_place_by_auto() -> None:
    with pytest.raises(IsolationError, match="must re-run the build in a user namespace first"):
        choose_isolation("auto", JOB_CONTAINER)
    chosen = choose_isolation("auto", REENTERED)
    assert (chosen.mode, chosen.rootless) == ("sandbox", True)
    assert chosen.describe() == (
        "sandbox, rootless (uid 0 as 0, subordinate ids 1-65535 as 1-65535), RUN snapshots: walk; namespaces "
        "available: root here could not make mount namespaces (no CAP_SYS_ADMIN: a CI job's container), so the "
        "build runs in a user namespace of its own, where it can")
    assert choose_isolation("in-place", JOB_CONTAINER).mode == "in-place", "asked for: in place it is"


def test_in_place_only_where_not_even_a_user_namespace_can_be_made() -> None:
    chosen = choose_isolation("auto", NO_USERNS)
    assert chosen.mode == "in-place"
    assert chosen.reason == "no namespaces can be made here, not even in a user namespace, in a container (/.dockerenv)"


@pytest.mark.parametrize(("uid_map", "count"), [
    ("         0          0 4294967295\n", MAX_IDS),      # a rootful container: every id, 65536 of them mapped
    ("0 1000 1\n1 100000 65536\n", MAX_IDS),              # rootless podman's container
    ("0 1000 1\n", 1),                                    # a single id
    ("0 0 10\n20 20 5\n", 10),                            # a gap: ids from 0 up to it
    ("1 100000 10\n", 0),                                 # no 0: nothing to map root onto
])
def test_ids_mapped_onto_themselves(uid_map: str, count: int) -> None:
    assert mappable_ids(uid_map) == count


@pytest.fixture
def fresh_tool_paths() -> Iterator[None]:
    inplace._tool_paths.cache_clear()
    yield
    inplace._tool_paths.cache_clear()


@pytest.mark.usefixtures("fresh_tool_paths")
def test_in_place_keeps_the_paths_the_installation_owns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "own-paths").write_text("/kaniko\n/busybox\nnot-absolute\n")
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    ignore = inplace.in_place_ignore(work_dir=tmp_path / "w", cache_dir=tmp_path / "c", context=tmp_path / "x")
    assert {"kaniko", "busybox", str(tmp_path).lstrip("/")} <= set(ignore)
    assert "not-absolute" not in ignore


@pytest.mark.usefixtures("fresh_tool_paths")
def test_in_place_warns_when_wharfies_files_hide_the_images(monkeypatch: pytest.MonkeyPatch,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    system_stdlib = Path("/usr/lib/python3.11")
    if not system_stdlib.is_dir():
        pytest.skip("needs a distribution Python at /usr/lib/python3.11 to stand for wharfie's own files")
    monkeypatch.setattr(sys, "path", [*sys.path, str(system_stdlib)])
    with caplog.at_level(logging.WARNING, logger="wharfie"):
        ignore = inplace.in_place_ignore(work_dir=Path("/w"), cache_dir=Path("/c"), context=Path("/x"))
    assert "usr/lib/python3.11" in ignore
    assert "wharfie's own files at /usr/lib/python3.11" in caplog.text and "lost" in caplog.text
