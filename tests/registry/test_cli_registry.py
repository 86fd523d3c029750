"""The registry commands end to end against the real registries: tags, cleanup, inspect, pull, login, mirrors."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner
from registry_helpers import build_image, options_for, skopeo_inspect

from builder.cli.app import cli
from oci.models import host_platform
from registry.client import RegistryClient
from registry.reference import parse_reference

DISTINCTIVE = "Kx7-cli-distinctive-SECRET-0042"


def run(*args: str, input: str | None = None, ok: bool = True):
    result = CliRunner().invoke(cli, list(args), input=input, catch_exceptions=True)
    if ok:
        assert result.exit_code == 0, (result.output, result.exception)
    return result


def push(client, refs, image):
    return client.push_image([parse_reference(r) for r in refs], image.manifest_raw, image.media_type,
                             image.config_raw, image.layers)


def test_tags_ls_lists_every_tag(registry_open, store):
    """distribution 2.8.2 ignores ``n=`` on tags/list (no Link pages); pagination: test_tags_pagination.py."""
    image = build_image(store, [{"t": b"tags"}])
    with RegistryClient(options_for(registry_open)) as client:
        push(client, [f"{registry_open.host}/cli/tags:{t}" for t in ("a", "b", "c", "d", "e")], image)
    result = run("tags", "ls", "--page-size", "2", f"{registry_open.host}/cli/tags")
    assert sorted(result.stdout.split()) == ["a", "b", "c", "d", "e"]


def test_tags_rm_deletes_only_that_tag(registry_open, store):
    shared, alone = build_image(store, [{"s": b"shared"}]), build_image(store, [{"a": b"alone"}])
    repo = f"{registry_open.host}/cli/rm"
    with RegistryClient(options_for(registry_open)) as client:
        push(client, [f"{repo}:one", f"{repo}:two"], shared)
        push(client, [f"{repo}:three"], alone)
    run("tags", "rm", f"{repo}:one", f"{repo}:three")
    assert run("tags", "ls", repo).stdout.split() == ["two"]
    assert skopeo_inspect(registry_open, f"{repo}:two")["Digest"] == str(shared.digest)  # survived its twin's removal
    import httpx

    gone = httpx.get(f"{registry_open.url}/v2/cli/rm/manifests/{alone.digest}",
                     headers={"Accept": alone.media_type})
    assert gone.status_code == 404  # an unshared tag: its manifest deleted by digest


def test_cleanup_applies_gitlab_policy(registry_open, store):
    repo = f"{registry_open.host}/cli/cleanup"
    dates = {"v1": "2020-01-01T00:00:00Z", "v2": "2021-01-01T00:00:00Z", "v3": "2022-01-01T00:00:00Z",
             "keep-me": "2019-01-01T00:00:00Z", "latest": "2018-01-01T00:00:00Z",
             "fresh": "2999-01-01T00:00:00Z"}
    with RegistryClient(options_for(registry_open)) as client:
        for tag, created in dates.items():
            push(client, [f"{repo}:{tag}"], build_image(store, [{tag: tag.encode()}], created=created))
    args = ["cleanup", repo, "--name-regex-delete", ".*", "--name-regex-keep", "keep-.*", "--keep-n", "1",
            "--older-than", "90d"]
    # latest: never; keep-me: kept by regex; fresh: the 1 newest kept (and too young); v3, v2, v1: older than 90d
    dry = run(*args, "--dry-run").stdout
    assert dry.splitlines() == [f"Would delete {repo}:v3 (2022-01-01T00:00:00+00:00)",
                                f"Would delete {repo}:v2 (2021-01-01T00:00:00+00:00)",
                                f"Would delete {repo}:v1 (2020-01-01T00:00:00+00:00)"]
    assert sorted(run("tags", "ls", repo).stdout.split()) == sorted(dates)
    assert run(*args).stdout.splitlines()[0] == f"Deleted {repo}:v3 (2022-01-01T00:00:00+00:00)"
    assert sorted(run("tags", "ls", repo).stdout.split()) == ["fresh", "keep-me", "latest"]


def test_inspect_summary_and_raw(registry_open, busybox_ref, busybox_layout):
    summary = json.loads(run("inspect", busybox_ref).stdout)
    assert summary["Digest"] == busybox_layout.digest
    assert summary["Layers"] == [{"Digest": busybox_layout.layer_digest, "Size": busybox_layout.layer_size,
                                  "MediaType": "application/vnd.oci.image.layer.v1.tar+gzip"}]
    raw = run("inspect", "--raw", busybox_ref).stdout.strip().encode()
    import hashlib

    assert "sha256:" + hashlib.sha256(raw).hexdigest() == busybox_layout.digest


def test_pull_to_docker_tarball_and_oci_layout(registry_open, busybox_ref, busybox_layout, tmp_path):
    tar_path, layout = tmp_path / "out" / "busybox.tar", tmp_path / "layout"
    run("pull", busybox_ref, "--tar-path", str(tar_path), "--oci-layout-path", str(layout),
        "--cache-dir", str(tmp_path / "cache"), "-q")
    archived = subprocess.run(["skopeo", "inspect", f"docker-archive:{tar_path}"], capture_output=True, text=True, check=False)
    assert archived.returncode == 0, archived.stderr
    assert json.loads(archived.stdout)["Layers"] == [busybox_layout.diff_id]  # docker-archive reports diff_ids
    oci = subprocess.run(["skopeo", "inspect", f"oci:{layout}:latest"], capture_output=True, text=True, check=False)
    assert oci.returncode == 0, oci.stderr
    assert json.loads(oci.stdout)["Digest"] == busybox_layout.digest
    assert not (layout / "tmp").exists()


def test_mirror_tried_before_docker_hub(registry_open, busybox_ref, busybox_layout, tmp_path):
    from fixtures.net import free_port

    dead = f"127.0.0.1:{free_port()}"
    options = options_for(registry_open, mirrors=(dead, registry_open.host), retries=0)
    with RegistryClient(options) as client:
        resolved = client.resolve_image(parse_reference("busybox"), host_platform())
    assert str(resolved.manifest_digest) == busybox_layout.digest
    assert resolved.source.registry == registry_open.host


def test_login_checks_then_writes_config_and_logout_removes(registry_token, tmp_path, monkeypatch):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker"))
    flags = ["--registry-certificate", f"{registry_token.host}={registry_token.ca_file}"]
    bad = run("login", registry_token.host, "-u", registry_token.username, "--password-stdin", *flags,
              input=DISTINCTIVE + "\n", ok=False)
    assert bad.exit_code != 0 and "unauthorized" in str(bad.exception)
    assert DISTINCTIVE not in bad.output + str(bad.exception)
    assert not (tmp_path / "docker" / "config.json").exists()

    run("login", registry_token.host, "-u", registry_token.username, "--password-stdin", *flags,
        input=registry_token.password + "\n")
    config = tmp_path / "docker" / "config.json"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert registry_token.host in json.loads(config.read_text())["auths"]
    # the saved credentials are used by the next command
    run("tags", "ls", f"{registry_token.host}/nothing-here", *flags, ok=False)  # NAME_UNKNOWN, but authenticated
    assert "Removing login credentials" in run("logout", registry_token.host).stdout
    assert registry_token.host not in json.loads(config.read_text())["auths"]


def test_errors_are_one_line_without_traceback_or_secret(registry_htpasswd, tmp_path):
    env = {**os.environ, "DOCKER_CONFIG": str(tmp_path)}
    proc = subprocess.run([sys.executable, "-m", "builder", "login", registry_htpasswd.host, "-u", "wharfie",
                           "--password-stdin"], input=DISTINCTIVE, capture_output=True, text=True, env=env,
                          cwd=Path(__file__).resolve().parents[2], timeout=60, check=False)
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [
        f"wharfie: error: unauthorized: login to {registry_htpasswd.host} failed (credentials of user 'wharfie' refused)"]
    assert DISTINCTIVE not in proc.stdout + proc.stderr
