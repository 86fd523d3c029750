"""`wharfie pull` with a GitLab deploy token, as a deployment job does: `--creds` or docker's config.json.

The registry is the token-auth registry (distribution verifying JWTs from the
GitLab-like realm), the deploy token a realm user allowed to pull one
project's images only; the pulled tarball is read back by skopeo.
"""

from __future__ import annotations

import base64
import json
import subprocess
from pathlib import Path

import pytest

from fixtures.baseimage import push_busybox
from fixtures.readback import run_wharfie

DEPLOY_USER = "gitlab+deploy-token-7"
DEPLOY_TOKEN = "gldt-Kx7-distinctive-deploy-0042"


@pytest.fixture(scope="module")
def deploy_setup(registry_token, token_issuer):
    ref = push_busybox(registry_token, "gldeploy/project/app", "1")
    other = push_busybox(registry_token, "gldeploy/other/app", "1")
    token_issuer.add_user(DEPLOY_USER, DEPLOY_TOKEN, {"gldeploy/project": ("pull",), "gldeploy/project/*": ("pull",)})
    return ref, other


def _pull(registry_token, ref: str, tmp_path: Path, *extra: str, env: dict[str, str] | None = None):
    return run_wharfie("pull", ref, "--tar-path", str(tmp_path / "image.tar"), "--cache-dir", str(tmp_path / "cache"),
                       "--registry-certificate", f"{registry_token.host}={registry_token.ca_file}", *extra,
                       env={"DOCKER_CONFIG": str(tmp_path / "docker"), **(env or {})})


def _layers_of(tar: Path) -> list[str]:
    archived = subprocess.run(["skopeo", "inspect", f"docker-archive:{tar}"], capture_output=True, text=True,
                              check=False)
    assert archived.returncode == 0, archived.stderr
    return json.loads(archived.stdout)["Layers"]


def test_pull_with_deploy_token_flag(registry_token, token_issuer, deploy_setup, busybox_layout, tmp_path):
    ref, _ = deploy_setup
    result = _pull(registry_token, ref, tmp_path, "--creds", f"{DEPLOY_USER}:{DEPLOY_TOKEN}", "-q")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith(busybox_layout.digest)
    assert _layers_of(tmp_path / "image.tar") == [busybox_layout.diff_id]
    assert DEPLOY_USER in {r.user for r in token_issuer.requests}
    assert DEPLOY_TOKEN not in result.stdout + result.stderr


def test_pull_with_deploy_token_in_docker_config(registry_token, deploy_setup, busybox_layout, tmp_path):
    ref, _ = deploy_setup
    (tmp_path / "docker").mkdir()
    auth = base64.b64encode(f"{DEPLOY_USER}:{DEPLOY_TOKEN}".encode()).decode()
    (tmp_path / "docker" / "config.json").write_text(json.dumps({"auths": {registry_token.host: {"auth": auth}}}))
    result = _pull(registry_token, ref, tmp_path)
    assert result.returncode == 0, result.stderr
    assert _layers_of(tmp_path / "image.tar") == [busybox_layout.diff_id]
    assert DEPLOY_TOKEN not in result.stdout + result.stderr


def test_deploy_token_refusals_name_the_user_not_the_token(registry_token, deploy_setup, tmp_path):
    ref, other = deploy_setup
    wrong = _pull(registry_token, ref, tmp_path, "--creds", f"{DEPLOY_USER}:{DEPLOY_TOKEN}-revoked")
    assert wrong.returncode == 1 and DEPLOY_USER in wrong.stderr and "unauthorized" in wrong.stderr
    elsewhere = _pull(registry_token, other, tmp_path, "--creds", f"{DEPLOY_USER}:{DEPLOY_TOKEN}")
    assert elsewhere.returncode == 1 and "gldeploy/other/app" in elsewhere.stderr
    malformed = _pull(registry_token, ref, tmp_path, "--creds", DEPLOY_TOKEN)
    assert malformed.returncode != 0 and "USER:PASSWORD" in malformed.stderr
    for result in (wrong, elsewhere, malformed):
        assert DEPLOY_TOKEN not in result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        assert [l for l in result.stderr.splitlines() if "rror" in l], result.stderr
    assert not (tmp_path / "image.tar").exists(), "nothing half-written is left behind"
