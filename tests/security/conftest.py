"""The security suite's attacker: every attack runs as root and as a rootless user (with subordinate ids)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "isolation"))
from attack import Attacker
from rootless_user import BuildUser, throwaway_user, userns_forbidden_reason

from fixtures.registry import Registry

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the suite attacks the sandbox as root and sets up users")


@pytest.fixture(scope="session")
def rootless_user() -> Iterator[BuildUser]:
    if os.geteuid() != 0:
        pytest.skip("creating the rootless user needs root")
    reason = userns_forbidden_reason()
    if reason is not None:
        print(f"skipping rootless attacks: {reason}")
        pytest.skip(reason)
    with throwaway_user(subids=True) as user:
        yield user


@pytest.fixture(params=["root", "rootless"])
def attacker(request: pytest.FixtureRequest, registry_open: Registry, tmp_path: Path) -> Attacker:
    if os.geteuid() != 0:
        pytest.skip("the sandbox as root is what is attacked (and the rootless user is made by root)")
    if request.param == "root":
        return Attacker("root", tmp_path, registry_open.host)
    user: BuildUser = request.getfixturevalue("rootless_user")
    home = user.home / request.node.name.replace("[", "-").replace("]", "")
    home.mkdir()
    os.chown(home, user.uid, user.gid)
    return Attacker("rootless", home, registry_open.host, user.uid, user.gid, user)
