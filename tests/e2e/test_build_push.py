"""The walking skeleton end to end: build, push to a real registry, read back with skopeo + umoci."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from fixtures.readback import read_back, run_wharfie, skopeo_inspect, tree_of
from fixtures.registry import Registry

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hello"


def _docker_config(tmp_path: Path, host: str, user: str, password: str) -> dict[str, str]:
    config_dir = tmp_path / "docker-config"
    config_dir.mkdir()
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    (config_dir / "config.json").write_text(json.dumps({"auths": {host: {"auth": auth}}}))
    return {"DOCKER_CONFIG": str(config_dir)}


def _build(context: Path, *args: str, env: dict[str, str] | None = None, cache: Path):
    return run_wharfie("build", str(context), "--cache-dir", str(cache), *args, env=env)


def test_hello_example_pushed_and_read_back(registry_open: Registry, busybox_ref: str, tmp_path: Path) -> None:
    dest = f"{registry_open.host}/e2e/hello:v1"
    extra = f"{registry_open.host}/e2e/hello:extra"
    digest_file = tmp_path / "digest"
    result = _build(EXAMPLE, "-d", dest, "-d", extra, "--build-arg", f"BASE={busybox_ref}",
                    "--insecure-registry", registry_open.host, "--digest-file", str(digest_file),
                    cache=tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    digest = digest_file.read_text()
    assert f"{registry_open.host}/e2e/hello:v1@{digest}" in result.stdout

    flags = ["--tls-verify=false"]
    assert skopeo_inspect(dest, flags)["Digest"] == digest
    assert skopeo_inspect(extra, flags)["Digest"] == digest
    image = read_back(dest, tmp_path / "rb", ["--src-tls-verify=false"])
    tree = tree_of(image.rootfs)
    assert tree["app"][:4] == ("dir", 0o755, 0, 0)
    assert tree["app/hello.sh"][:4] == ("file", 0o755, 0, 0)
    assert tree["app/hello.sh"][4] == (EXAMPLE / "hello.sh").read_text()
    assert tree["app/built.txt"] == ("file", 0o644, 0, 0, "built with hello\n")
    assert tree["bin/busybox"][0] == "file"
    assert not any(p.startswith(("proc/", "dev/")) for p in tree), "sandbox mounts leaked into a layer"
    assert "etc/resolv.conf" not in tree and "etc/hosts" not in tree

    config = image.config["config"]
    assert config["WorkingDir"] == "/app"
    assert config["Cmd"] == ["./hello.sh"]
    assert "APP_HOME=/app" in config["Env"] and "GREETING=hello" in config["Env"]
    assert config["Env"][0].startswith("PATH=")
    assert config["Labels"] == {"org.example.demo": "wharfie hello"}
    history = image.config["history"]
    assert len(image.config["rootfs"]["diff_ids"]) == len(image.manifest["layers"])
    assert sum(1 for h in history if not h.get("empty_layer")) == len(image.manifest["layers"])
    assert any(h["created_by"].startswith("RUN |1 GREETING=hello /bin/sh -c chmod") for h in history)
    assert {"created_by": "CMD [\"./hello.sh\"]", "empty_layer": True}.items() <= history[-1].items()


def test_run_forms_user_and_entrypoint(registry_open: Registry, busybox_ref: str, tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(
        f"FROM {busybox_ref}\n"
        "RUN [\"/bin/sh\", \"-c\", \"echo exec-form > /exec.txt\"]\n"
        "RUN echo 'app:x:1000:1000::/home/app:/bin/sh' >> /etc/passwd && mkdir -p /home/app && chown 1000:1000 /home/app\n"
        "USER app\n"
        "RUN id -u > /home/app/uid.txt && echo $HOME > /home/app/home.txt\n"
        "USER root\n"
        "RUN rm /bin/vi\n"
        "ENTRYPOINT [\"/bin/echo\"]\n"
    )
    dest = f"{registry_open.host}/e2e/forms:latest"
    result = _build(context, "-d", dest, "--insecure-registry", registry_open.host, cache=tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    image = read_back(dest, tmp_path / "rb", ["--src-tls-verify=false"])
    tree = tree_of(image.rootfs)
    assert tree["exec.txt"][4] == "exec-form\n"
    assert tree["home/app/uid.txt"][2:] == (1000, 1000, "1000\n")
    assert tree["home/app/home.txt"][4] == "/home/app\n"
    assert "bin/vi" not in tree, "deletion must be a whiteout honoured by umoci"
    assert image.config["config"]["Entrypoint"] == ["/bin/echo"]
    assert "Cmd" not in image.config["config"], "ENTRYPOINT clears the base image's CMD"


def test_push_with_basic_auth_from_docker_config(registry_htpasswd: Registry, busybox_layout, busybox_ref: str,
                                                 tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {busybox_ref}\nRUN echo basic > /who\n")
    dest = f"{registry_htpasswd.host}/e2e/basic:latest"
    env = _docker_config(tmp_path, registry_htpasswd.host, registry_htpasswd.username, registry_htpasswd.password)
    result = _build(context, "-d", dest, "--insecure-registry", registry_htpasswd.host,
                    "--insecure-registry", busybox_ref.split("/")[0], env=env, cache=tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    creds = f"--creds={registry_htpasswd.username}:{registry_htpasswd.password}"
    assert skopeo_inspect(dest, ["--tls-verify=false", creds])["Digest"].startswith("sha256:")


def test_wrong_password_is_one_line_without_the_password(registry_htpasswd: Registry, busybox_ref: str,
                                                        tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {busybox_ref}\nRUN echo x > /x\n")
    secret = "Wr0ng-P4ssw0rd-7f3a9c"
    env = _docker_config(tmp_path, registry_htpasswd.host, registry_htpasswd.username, secret)
    dest = f"{registry_htpasswd.host}/e2e/denied:latest"
    result = _build(context, "-d", dest, "--insecure-registry", registry_htpasswd.host,
                    "--insecure-registry", busybox_ref.split("/")[0], env=env, cache=tmp_path / "cache")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert secret not in result.stdout + result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("wharfie: error")]
    assert len(error_lines) == 1 and "unauthorized" in error_lines[0].lower()
    assert "e2e/denied" in error_lines[0]


def test_push_over_tls_with_gitlab_ci_job_token(registry_token: Registry, token_accounts, registry_open: Registry,
                                               busybox_ref: str, tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {busybox_ref}\nCOPY . /src/\n")
    (context / "file.txt").write_text("from the context\n")
    dest = f"{registry_token.host}/group/project/app:ci"
    env = {"CI_REGISTRY": registry_token.host, "CI_JOB_TOKEN": token_accounts["ci_job"].password,
           "DOCKER_CONFIG": str(tmp_path / "empty-docker-config")}
    result = _build(context, "-d", dest, "--registry-certificate", f"{registry_token.host}={registry_token.ca_file}",
                    "--insecure-registry", registry_open.host, env=env, cache=tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    assert token_accounts["ci_job"].password not in result.stdout + result.stderr
    flags = [f"--src-cert-dir={registry_token.cert_dir}", f"--src-creds={token_accounts['ci_job'].creds}"]
    image = read_back(dest, tmp_path / "rb", flags)
    assert tree_of(image.rootfs)["src/file.txt"][4] == "from the context\n"
    assert tree_of(image.rootfs)["src/Dockerfile"][0] == "file"


@pytest.mark.parametrize(
    ("dockerfile", "expected"),
    [
        ("FROM {base}\nFROOB x\n", "Dockerfile:2:"),
        ("", "Dockerfile"),
        ("FROM {host}/no/such-image:1\nRUN true\n", "no/such-image"),
        ("FROM {base}\nRUN exit 3\n", "RUN failed (exit 3): Dockerfile:2"),
        ("FROM {base}\nCOPY missing.txt /\n", "Dockerfile:2: COPY"),
        ("FROM {base}\nCOPY ../outside /\n", "Dockerfile:2:"),
    ],
    ids=["unknown-instruction", "empty", "missing-base", "run-fails", "missing-source", "outside-context"],
)
def test_bad_input_fails_cleanly_and_pushes_nothing(registry_open: Registry, busybox_ref: str, tmp_path: Path,
                                                    dockerfile: str, expected: str) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(dockerfile.format(base=busybox_ref, host=registry_open.host))
    repo = f"e2e/bad-{tmp_path.name.lower()}"
    result = _build(context, "-d", f"{registry_open.host}/{repo}:latest", "--insecure-registry", registry_open.host,
                    cache=tmp_path / "cache")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("wharfie: error: ") and expected in last, result.stderr
    tags = run_wharfie_tags(registry_open, repo)
    assert tags == [], "a failed build must push no tag"


def run_wharfie_tags(registry: Registry, repo: str) -> list[str]:
    import httpx

    response = httpx.get(f"{registry.url}/v2/{repo}/tags/list")
    return [] if response.status_code == 404 else (response.json().get("tags") or [])


def test_missing_dockerfile_and_unreachable_registry(tmp_path: Path) -> None:
    result = run_wharfie("build", str(tmp_path), "-f", "nope/Dockerfile", "--no-push")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "nope/Dockerfile" in result.stderr

    (tmp_path / "Dockerfile").write_text("FROM 127.0.0.1:9/base:1\nRUN true\n")
    result = run_wharfie("build", str(tmp_path), "--no-push", "--insecure-registry", "127.0.0.1:9",
                         "--cache-dir", str(tmp_path / "cache"), "--push-retry", "0")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "127.0.0.1:9" in result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize(("base_format", "manifest_format", "compression"),
                         [("v2s2", "docker", "gzip"), ("oci", "oci", "zstd"), ("v2s2", "oci", "none")])
def test_manifest_formats_and_compression(registry_open: Registry, busybox_ref: str, tmp_path: Path,
                                          base_format: str, manifest_format: str, compression: str) -> None:
    import subprocess

    base = f"{registry_open.host}/e2e/base-{base_format}:latest"
    subprocess.run(["skopeo", "copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false",
                    "--format", base_format, f"docker://{busybox_ref}", f"docker://{base}"], check=True)
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {base}\nRUN echo {compression} > /c.txt\n")
    dest = f"{registry_open.host}/e2e/format-{manifest_format}-{compression}:latest"
    result = _build(context, "-d", dest, "--insecure-registry", registry_open.host, "--manifest-format",
                    manifest_format, "--compression", compression, cache=tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    raw = skopeo_inspect(dest, ["--tls-verify=false"], raw=True)
    expected_manifest = {"docker": "application/vnd.docker.distribution.manifest.v2+json",
                         "oci": "application/vnd.oci.image.manifest.v1+json"}[manifest_format]
    assert raw["mediaType"] == expected_manifest
    layer_types = {layer["mediaType"] for layer in raw["layers"]}
    suffix = {"gzip": "gzip", "zstd": "zstd", "none": "tar"}[compression]
    assert any(t.endswith(suffix) for t in layer_types), layer_types
    # umoci 0.4 reads no zstd: skopeo (which does) recompresses to gzip on the way.
    recompress = ["--dest-compress", "--dest-compress-format", "gzip"] if compression == "zstd" else []
    image = read_back(dest, tmp_path / "rb", ["--src-tls-verify=false", *recompress])
    assert tree_of(image.rootfs)["c.txt"][4] == f"{compression}\n"


def test_reproducible_builds_give_equal_digests(registry_open: Registry, busybox_ref: str, tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {busybox_ref}\nCOPY a.txt /a.txt\nRUN echo ok > /ok && mkdir /d\n"
                                        "ENV X=1\n")
    (context / "a.txt").write_text("same input\n")
    digests = []
    for run in range(2):
        (context / "a.txt").touch()  # a new mtime must not change the digest
        result = _build(context, "--no-push", "--reproducible", "--insecure-registry", registry_open.host,
                        "--digest-file", str(tmp_path / f"d{run}"), cache=tmp_path / f"cache{run}")
        assert result.returncode == 0, result.stderr
        digests.append((tmp_path / f"d{run}").read_text())
    assert digests[0].startswith("sha256:") and digests[0] == digests[1]


def test_from_by_digest(registry_open: Registry, busybox_ref: str, tmp_path: Path) -> None:
    digest = skopeo_inspect(busybox_ref, ["--tls-verify=false"])["Digest"]
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM {busybox_ref.rsplit(':', 1)[0]}@{digest}\nRUN echo ok > /ok\n")
    result = _build(context, "--no-push", "--insecure-registry", registry_open.host, cache=tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("built sha256:")


def test_add_url_with_checksum(registry_open: Registry, busybox_ref: str, tmp_path: Path) -> None:
    import hashlib
    import http.server
    import threading
    from functools import partial

    served = tmp_path / "served"
    served.mkdir()
    payload = b"remote payload\n"
    (served / "tool.bin").write_bytes(payload)
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/tool.bin"
    good = "sha256:" + hashlib.sha256(payload).hexdigest()
    try:
        for checksum, ok in ((good, True), ("sha256:" + "0" * 64, False)):
            context = tmp_path / f"ctx-{ok}"
            context.mkdir()
            (context / "Dockerfile").write_text(f"FROM {busybox_ref}\nADD --checksum={checksum} {url} /opt/\n")
            dest = f"{registry_open.host}/e2e/add-url-{str(ok).lower()}:latest"
            # The server is on the host's loopback: ADD reaches it only with the host's network (fetch_guard.py).
            result = _build(context, "-d", dest, "--insecure-registry", registry_open.host, "--network=host",
                            cache=tmp_path / "c")
            if not ok:
                assert result.returncode == 1 and "Traceback" not in result.stderr
                assert "checksum" in result.stderr.splitlines()[-1] and "Dockerfile:2" in result.stderr
                continue
            assert result.returncode == 0, result.stderr
            tree = tree_of(read_back(dest, tmp_path / "rb", ["--src-tls-verify=false"]).rootfs)
            assert tree["opt/tool.bin"] == ("file", 0o600, 0, 0, payload.decode())
    finally:
        server.shutdown()


def test_onbuild_triggers_fire_in_the_child_and_undefined_vars_warn(registry_open: Registry, busybox_ref: str,
                                                                    tmp_path: Path) -> None:
    parent_ctx = tmp_path / "parent"
    parent_ctx.mkdir()
    (parent_ctx / "Dockerfile").write_text(f"FROM {busybox_ref}\nONBUILD RUN echo fired > /onbuild.txt\n")
    parent = f"{registry_open.host}/e2e/onbuild-parent:latest"
    result = _build(parent_ctx, "-d", parent, "--insecure-registry", registry_open.host, cache=tmp_path / "c")
    assert result.returncode == 0, result.stderr
    parent_config = read_back(parent, tmp_path / "rb-parent", ["--src-tls-verify=false"]).config
    assert parent_config["config"]["OnBuild"] == ["RUN echo fired > /onbuild.txt"]

    child_ctx = tmp_path / "child"
    child_ctx.mkdir()
    (child_ctx / "Dockerfile").write_text(f"FROM {parent}\nARG DECLARED\nENV A=$UNDECLARED B=$DECLARED\n")
    child = f"{registry_open.host}/e2e/onbuild-child:latest"
    result = _build(child_ctx, "-d", child, "--insecure-registry", registry_open.host, cache=tmp_path / "c")
    assert result.returncode == 0, result.stderr
    assert "Dockerfile:3: UndefinedVar: usage of undefined variable '$UNDECLARED'" in result.stderr
    assert "variable '$DECLARED'" not in result.stderr
    image = read_back(child, tmp_path / "rb", ["--src-tls-verify=false"])
    assert tree_of(image.rootfs)["onbuild.txt"][4] == "fired\n"
    assert not image.config["config"].get("OnBuild"), "triggers are consumed, not inherited"
