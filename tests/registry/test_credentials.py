"""Credential resolution order (explicit, GitLab CI, config.json, anonymous) and config.json writing."""

from __future__ import annotations

import base64
import json
import stat
import textwrap
from pathlib import Path

import pytest

from registry.credentials import resolve_credentials
from registry.dockerconfig import Credentials, DockerConfig, config_path


@pytest.fixture
def helper_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake ``docker-credential-test`` on PATH: knows one server, records stores and erases."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "docker-credential-test"
    script.write_text(textwrap.dedent(f"""\
        #!/bin/sh
        read server
        case "$1" in
          get)
            case "$server" in
              helped.example) echo '{{"ServerURL":"helped.example","Username":"helper-user","Secret":"helper-pw"}}' ;;
              token.example) echo '{{"ServerURL":"token.example","Username":"<token>","Secret":"refresh-1"}}' ;;
              *) echo "credentials not found in native keychain"; exit 1 ;;
            esac ;;
          store) echo "$server" > {tmp_path}/stored.json ;;
          erase) echo "$server" > {tmp_path}/erased ;;
        esac
        """))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    return tmp_path


def write_config(tmp_path: Path, data: dict) -> dict[str, str]:
    (tmp_path / "docker").mkdir(exist_ok=True)
    (tmp_path / "docker" / "config.json").write_text(json.dumps(data))
    return {"DOCKER_CONFIG": str(tmp_path / "docker")}


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_repr_hides_secret():
    creds = Credentials("alice", "hunter2", identity_token="tok")
    assert "hunter2" not in repr(creds) and "hunter2" not in str(creds) and "tok'" not in repr(creds)


def test_config_auths_forms(tmp_path):
    env = write_config(tmp_path, {"auths": {
        "https://index.docker.io/v1/": {"auth": b64("hubuser:hubpw")},
        "http://plain.example:5000/v2/": {"username": "u2", "password": "p2"},
        "gitlab.example.com": {"auth": b64("u3:pa:ss")},
    }})
    assert resolve_credentials("docker.io", environ=env) == Credentials("hubuser", "hubpw")
    assert resolve_credentials("plain.example:5000", environ=env) == Credentials("u2", "p2")
    assert resolve_credentials("gitlab.example.com", environ=env) == Credentials("u3", "pa:ss")
    assert resolve_credentials("other.example", environ=env) is None


def test_cred_helpers_and_store(tmp_path, helper_dir):
    env = write_config(tmp_path, {"credHelpers": {"helped.example": "test"},
                                  "auths": {"helped.example": {"auth": b64("file:pw")}}})
    assert resolve_credentials("helped.example", environ=env) == Credentials("helper-user", "helper-pw")
    env = write_config(tmp_path, {"credsStore": "test", "auths": {"other.example": {"auth": b64("file:pw")}}})
    assert resolve_credentials("helped.example", environ=env) == Credentials("helper-user", "helper-pw")
    assert resolve_credentials("other.example", environ=env) == Credentials("file", "pw")  # helper: not found
    token = resolve_credentials("token.example", environ=env)
    assert token is not None and token.identity_token == "refresh-1"


def test_missing_helper_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    env = write_config(tmp_path, {"credsStore": "nope"})
    with pytest.raises(Exception, match="docker-credential-nope not found"):
        resolve_credentials("x.example", environ=env)


def test_order_explicit_then_gitlab_then_config(tmp_path):
    env = write_config(tmp_path, {"auths": {"gitlab.example.com:5050": {"auth": b64("cfg:cfgpw")}}})
    ci = {**env, "CI_REGISTRY": "gitlab.example.com:5050", "CI_REGISTRY_USER": "gitlab-ci-token",
          "CI_REGISTRY_PASSWORD": "job-tok"}
    explicit = {"gitlab.example.com:5050": Credentials("flag", "flagpw")}
    assert resolve_credentials("gitlab.example.com:5050", explicit=explicit, environ=ci) == Credentials("flag", "flagpw")
    assert resolve_credentials("gitlab.example.com:5050", environ=ci) == Credentials("gitlab-ci-token", "job-tok")
    assert resolve_credentials("gitlab.example.com:5050", environ=env) == Credentials("cfg", "cfgpw")


def test_gitlab_variables():
    job = {"CI_REGISTRY": "registry.gitlab.com", "CI_JOB_TOKEN": "jt"}
    assert resolve_credentials("registry.gitlab.com", environ=job, config=DockerConfig(Path("/none"), {})) == \
        Credentials("gitlab-ci-token", "jt")
    deploy = {"CI_REGISTRY": "https://registry.example:443", "CI_DEPLOY_USER": "gitlab+deploy-token-1",
              "CI_DEPLOY_PASSWORD": "dp"}
    assert resolve_credentials("registry.example", environ=deploy, config=DockerConfig(Path("/none"), {})) == \
        Credentials("gitlab+deploy-token-1", "dp")
    proxy = {"CI_DEPENDENCY_PROXY_SERVER": "gitlab.example.com:443", "CI_DEPENDENCY_PROXY_USER": "gitlab-ci-token",
             "CI_DEPENDENCY_PROXY_PASSWORD": "pp"}
    assert resolve_credentials("gitlab.example.com", environ=proxy, config=DockerConfig(Path("/none"), {})) == \
        Credentials("gitlab-ci-token", "pp")
    assert resolve_credentials("elsewhere.example", environ={**job, **proxy},
                               config=DockerConfig(Path("/none"), {})) is None


def test_config_path(tmp_path):
    assert config_path({"DOCKER_CONFIG": "/x"}) == Path("/x/config.json")
    assert config_path({"HOME": "/home/u"}) == Path("/home/u/.docker/config.json")


def test_store_writes_0600_and_keeps_other_keys(tmp_path):
    path = tmp_path / "cfg" / "config.json"
    path.parent.mkdir()
    path.write_text(json.dumps({"auths": {"keep.example": {"auth": b64("k:k")}}, "psFormat": "x"}))
    config = DockerConfig.load(path)
    config.store("docker.io", Credentials("me", "pw"))
    data = json.loads(path.read_text())
    assert data["auths"]["https://index.docker.io/v1/"] == {"auth": b64("me:pw")}
    assert data["auths"]["keep.example"] and data["psFormat"] == "x"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert DockerConfig.load(path).erase("docker.io") is True
    assert "https://index.docker.io/v1/" not in json.loads(path.read_text())["auths"]


def test_store_through_helper(tmp_path, helper_dir):
    path = tmp_path / "cfg.json"
    config = DockerConfig(path, {"credsStore": "test"})
    config.store("helped.example", Credentials("u", "pw"))
    stored = (helper_dir / "stored.json").read_text()
    assert '"Secret": "pw"' in stored and json.loads(path.read_text())["auths"] == {"helped.example": {}}
    config.erase("helped.example")
    assert (helper_dir / "erased").read_text().strip() == "helped.example"
