"""RUN --mount resolution without a build: cache sharing modes, secrets' files, bind sources, flag parsing."""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path

import pytest

from builder.execution.run_mounts import MountError, RunMounts, SecretSource, cache_dir_for, parse_secret_flag
from builder.frontend import instructions as ins


def _mounts(tmp_path: Path, *mounts: ins.Mount, secrets: dict[str, SecretSource] | None = None,
            name: str = "scratch") -> RunMounts:
    scratch = tmp_path / name
    scratch.mkdir(exist_ok=True)
    context = tmp_path / "context"
    context.mkdir(exist_ok=True)
    return RunMounts(tuple(mounts), workdir="/work", context=context, cache_root=tmp_path / "cache",
                     secrets=secrets or {}, stage_root=lambda name: tmp_path / "stages" / name, scratch=scratch)


def test_parse_secret_flag() -> None:
    assert parse_secret_flag("id=tok,src=/run/tok") == SecretSource("tok", path=Path("/run/tok"))
    assert parse_secret_flag("id=tok,source=/x") == SecretSource("tok", path=Path("/x"))
    assert parse_secret_flag("id=tok,env=MY_TOKEN") == SecretSource("tok", env="MY_TOKEN")
    assert parse_secret_flag("id=tok,type=env,src=MY_TOKEN") == SecretSource("tok", env="MY_TOKEN")
    assert parse_secret_flag("id=TOK") == SecretSource("TOK", env="TOK")  # docker: the env var of the id's name
    for bad in ("src=/x", "id=a,color=red", "id", "id=a,src="):
        with pytest.raises(MountError):
            parse_secret_flag(bad)


def test_cache_dirs_are_per_id_and_relative_targets_follow_workdir(tmp_path: Path) -> None:
    assert cache_dir_for(tmp_path, "/root/.cache/go") != cache_dir_for(tmp_path, "/root/.cache/go-build")
    assert cache_dir_for(tmp_path, "a/../b").parent == tmp_path / "mounts"
    cache = ins.Mount(type="cache", target="node_modules", readonly=False)
    with _mounts(tmp_path, cache) as resolved:
        bind = resolved.binds[0]
        assert bind.target == "/work/node_modules" and not bind.readonly
        assert bind.source == str(cache_dir_for(tmp_path / "cache", "/work/node_modules"))
        assert stat.S_IMODE(os.stat(bind.source).st_mode) == 0o755


def test_cache_mode_and_owner_apply_when_created(tmp_path: Path) -> None:
    cache = ins.Mount(type="cache", target="/c", id="owned", mode=0o700, uid=1000, gid=1001, readonly=False)
    with _mounts(tmp_path, cache) as resolved:
        st = os.stat(resolved.binds[0].source)
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o700, 1000, 1001)


def test_shared_caches_are_used_at_once(tmp_path: Path) -> None:
    cache = ins.Mount(type="cache", target="/c", id="shared-one", readonly=False)
    with _mounts(tmp_path, cache, name="a") as first, _mounts(tmp_path, cache, name="b") as second:
        assert first.binds[0].source == second.binds[0].source


def test_private_cache_gets_its_own_instance_while_busy(tmp_path: Path) -> None:
    cache = ins.Mount(type="cache", target="/c", id="priv", sharing="private", readonly=False)
    with _mounts(tmp_path, cache, name="a") as first, _mounts(tmp_path, cache, name="b") as second:
        assert first.binds[0].source != second.binds[0].source
    with _mounts(tmp_path, cache, name="c") as third:
        assert third.binds[0].source == first.binds[0].source, "a free private cache is reused"


@pytest.mark.parametrize("holder", ["locked", "shared"])
def test_locked_cache_waits_for_other_users(tmp_path: Path, holder: str) -> None:
    first = ins.Mount(type="cache", target="/c", id="lk", sharing=holder, readonly=False)
    locked = ins.Mount(type="cache", target="/c", id="lk", sharing="locked", readonly=False)
    entered = threading.Event()

    def second_user() -> None:
        with _mounts(tmp_path, locked, name="b"):
            entered.set()

    with _mounts(tmp_path, first, name="a"):
        thread = threading.Thread(target=second_user)
        thread.start()
        time.sleep(0.3)
        assert not entered.is_set(), "a locked cache must wait while another build uses it"
    thread.join(5)
    assert entered.is_set()


def test_secret_file_mode_owner_and_cleanup(tmp_path: Path) -> None:
    source = tmp_path / "token.txt"
    source.write_text("s3cret")
    secret = ins.Mount(type="secret", id="tok")
    custom = ins.Mount(type="secret", id="tok", target="/etc/tok", mode=0o440, uid=5, gid=6)
    with _mounts(tmp_path, secret, custom, secrets={"tok": SecretSource("tok", path=source)}) as resolved:
        default_bind, custom_bind = resolved.binds
        assert default_bind.target == "/run/secrets/tok" and default_bind.readonly
        st = os.stat(default_bind.source)
        assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == (0o400, 0, 0)
        assert Path(default_bind.source).read_text() == "s3cret"
        st = os.stat(custom_bind.source)
        assert (custom_bind.target, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid) == ("/etc/tok", 0o440, 5, 6)
    assert not os.path.exists(default_bind.source) and not os.path.exists(custom_bind.source)


def test_secret_from_env_as_variable_and_missing_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WHARFIE_T_TOKEN", "from-env")
    as_env = ins.Mount(type="secret", id="tok", env="TOKEN")
    with _mounts(tmp_path, as_env, secrets={"tok": SecretSource("tok", env="WHARFIE_T_TOKEN")}) as resolved:
        assert resolved.env == {"TOKEN": "from-env"} and resolved.binds == []
    with _mounts(tmp_path, ins.Mount(type="secret", id="absent")) as resolved:
        assert resolved.binds == []  # not required: skipped, as BuildKit does
    with pytest.raises(MountError, match="secret absent is required"), \
            _mounts(tmp_path, ins.Mount(type="secret", id="absent", required=True)):
        pass


def test_bind_sources(tmp_path: Path) -> None:
    (tmp_path / "stages" / "tools" / "opt").mkdir(parents=True)
    (tmp_path / "stages" / "tools" / "opt" / "v").write_text("1")
    (tmp_path / "context").mkdir()
    (tmp_path / "context" / "link").symlink_to("/etc")  # resolved inside the context, never on the host
    ro = ins.Mount(type="bind", target="/src")
    from_stage = ins.Mount(type="bind", from_="tools", source="opt", target="/tools")
    rw = ins.Mount(type="bind", from_="tools", source="opt", target="/rw", readonly=False)
    with _mounts(tmp_path, ro, from_stage, rw) as resolved:
        assert [(b.source, b.target, b.readonly) for b in resolved.binds[:2]] == [
            (str(tmp_path / "context"), "/src", True), (str(tmp_path / "stages/tools/opt"), "/tools", True)]
        copy = Path(resolved.binds[2].source)
        assert copy != tmp_path / "stages/tools/opt" and (copy / "v").read_text() == "1"
    link_mount = ins.Mount(type="bind", source="link/passwd", target="/p")
    with pytest.raises(MountError, match="not found in the build context"), _mounts(tmp_path, link_mount):
        pass
    with pytest.raises(MountError, match="not supported"), _mounts(tmp_path, ins.Mount(type="ssh", target="/s")):
        pass
