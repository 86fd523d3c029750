"""Choosing the isolation mode from the host's facts, and describing it: every case, no namespaces needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.execution.isolation import (
    HostFacts,
    IdMapping,
    Isolation,
    IsolationError,
    SubIdRange,
    choose_isolation,
    id_mapping,
    subid_range,
)
from builder.execution.rootless import chown_hint, unshare_command

ROOT_NS = HostFacts(root=True, mapping=None, namespaces=True, user_namespaces=True, container=None)
LOCKED_CONTAINER = HostFacts(root=True, mapping=None, namespaces=False, user_namespaces=False, container="/.dockerenv")
LOCKED_HOST = HostFacts(root=True, mapping=None, namespaces=False, user_namespaces=False, container=None)
USER_NO_USERNS = HostFacts(root=False, mapping=None, namespaces=False, user_namespaces=False, container=None)
ROOTLESS_CHILD = HostFacts(root=True, mapping=IdMapping(1000, SubIdRange(100000, 65536)), namespaces=True,
                           user_namespaces=True, container=None)


def test_auto_prefers_the_sandbox() -> None:
    assert choose_isolation("auto", ROOT_NS).mode == "sandbox"
    rootless = choose_isolation("auto", ROOTLESS_CHILD)
    assert (rootless.mode, rootless.rootless) == ("sandbox", True)


def test_auto_falls_back_to_in_place_only_in_a_container() -> None:
    chosen = choose_isolation("auto", LOCKED_CONTAINER)
    assert chosen.mode == "in-place" and "no namespaces" in chosen.reason and "/.dockerenv" in chosen.reason
    with pytest.raises(IsolationError, match="does not look like a container"):
        choose_isolation("auto", LOCKED_HOST)
    assert choose_isolation("auto", LOCKED_HOST, force=True).mode == "in-place"


def test_forced_modes() -> None:
    assert choose_isolation("in-place", ROOT_NS, force=True).mode == "in-place"
    with pytest.raises(IsolationError, match="--isolation in-place this does not look like a container"):
        choose_isolation("in-place", ROOT_NS)
    with pytest.raises(IsolationError, match="cannot create mount/pid namespaces"):
        choose_isolation("sandbox", LOCKED_CONTAINER)
    with pytest.raises(IsolationError, match="forbids user namespaces"):
        choose_isolation("sandbox", USER_NO_USERNS)
    with pytest.raises(IsolationError, match="not root and user namespaces are forbidden"):
        choose_isolation("auto", USER_NO_USERNS)


def test_describe() -> None:
    assert Isolation("sandbox", snapshotter="overlay", reason="requested").describe() == \
        "sandbox, RUN snapshots: overlay; requested"
    rootless = Isolation("sandbox", rootless=True, mapping=IdMapping(1001, SubIdRange(100000, 65535)))
    assert rootless.describe() == ("sandbox, rootless (uid 1001 as 0, subordinate ids 100000-165534 as 1-65535), "
                                   "RUN snapshots: walk")
    single = Isolation("sandbox", rootless=True, mapping=IdMapping(1001, None))
    assert "no subordinate ids" in single.describe()


def test_id_mapping_reads_uid_map() -> None:
    assert id_mapping("         0          0 4294967295\n") is None
    assert id_mapping("0 1001 1\n") == IdMapping(1001, None)
    assert id_mapping("0 1001 1\n1 100000 65535\n") == IdMapping(1001, SubIdRange(100000, 65535))
    assert id_mapping("0 1001 65536\n") == IdMapping(1001, SubIdRange(1002, 65535))


def test_subid_range_by_name_or_uid(tmp_path: Path) -> None:
    subuid = tmp_path / "subuid"
    subuid.write_text("other:100000:65536\nci:200000:0\nci:300000:65536\n1234:500000:1000\n")
    assert subid_range("ci", 999, path=subuid) == SubIdRange(300000, 65536)  # empty ranges skipped
    assert subid_range("nobody-here", 1234, path=subuid) == SubIdRange(500000, 1000)
    assert subid_range("nobody-here", 1, path=subuid) is None
    assert subid_range("ci", 1, path=tmp_path / "missing") is None


def test_unshare_command_maps_ranges_only_when_granted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    empty = tmp_path / "empty"
    empty.write_text("")
    assert unshare_command(subuid=empty, subgid=empty) == ["unshare", "--user", "--map-root-user", "--mount"]
    assert "no subordinate ids" in caplog.text


def test_chown_hint_only_for_single_id_mappings() -> None:
    assert chown_hint(None) is None
    assert chown_hint(IdMapping(0, SubIdRange(100000, 65536))) is None
    hint = chown_hint(IdMapping(0, None))
    assert hint is not None and "/etc/subuid" in hint and "/etc/subgid" in hint and "root:100000:65536" in hint
