"""kaniko's flags do what they did in kaniko (issue #12), read back with skopeo, umoci and the registries.

tests/cli/test_kaniko_flags.py proves every flag is accepted; here each flag
with a meaning is run in a real build and its outcome checked from outside.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from fixtures.readback import read_back, skopeo_inspect, tree_of
from fixtures.registry import Registry

# The test runner may itself run in a CI job: the builds here must not see its variables.
UNSET = ("CI", "GITLAB_CI", "KANIKO_DIR", "KANIKO_NO_PUSH", "KANIKO_REGISTRY_MAP", "KANIKO_REGISTRY_MIRROR",
         "CI_REGISTRY_IMAGE", "DOCKER_CONFIG")


def wharfie(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {name: value for name, value in os.environ.items() if name not in UNSET}
    return subprocess.run([sys.executable, "-m", "builder", *args], capture_output=True, text=True,
                          env={**clean, **(env or {})}, timeout=600, check=False)


def context_with(tmp_path: Path, dockerfile: str, files: dict[str, str] | None = None) -> Path:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(dockerfile)
    for name, text in (files or {}).items():
        (context / name).parent.mkdir(parents=True, exist_ok=True)
        (context / name).write_text(text)
    return context


def tags_of(registry: Registry, repo: str) -> list[str]:
    response = httpx.get(f"{registry.url}/v2/{repo}/tags/list")
    return [] if response.status_code == 404 else sorted(response.json().get("tags") or [])


def skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["skopeo", *args], capture_output=True, text=True, check=False)


def test_tar_path_writes_a_docker_archive_skopeo_reads(registry_open: Registry, busybox_ref: str,
                                                      tmp_path: Path) -> None:
    context = context_with(tmp_path, f"FROM {busybox_ref}\nCOPY hello.txt /hello.txt\n", {"hello.txt": "hi\n"})
    dest = f"{registry_open.host}/kaniko/tar:v1"
    untagged = f"{registry_open.host}/kaniko/tar"
    archive = tmp_path / "out" / "image.tar"
    archive.parent.mkdir()
    result = wharfie("build", "--context", str(context), "-d", dest, "-d", untagged, "--tar-path", str(archive),
                     "--insecure-registry", registry_open.host, "--cache-dir", str(tmp_path / "cache"))
    assert result.returncode == 0, result.stderr
    inspected = json.loads(skopeo("inspect", f"docker-archive:{archive}").stdout)
    pushed = skopeo_inspect(dest, ["--tls-verify=false"])
    assert inspected["Layers"] == skopeo_inspect(dest, ["--tls-verify=false"], config=True)["rootfs"]["diff_ids"]
    assert inspected["Architecture"] == pushed["Architecture"]
    config_in_archive = skopeo("inspect", "--config", "--raw", f"docker-archive:{archive}").stdout.encode()
    config_pushed = skopeo("inspect", "--config", "--raw", "--tls-verify=false", f"docker://{dest}").stdout.encode()
    assert hashlib.sha256(config_in_archive).digest() == hashlib.sha256(config_pushed).digest(), "the same image"
    # docker load reads the same manifest.json: both destinations as tags, an untagged one as :latest.
    listed = subprocess.run(["tar", "-xOf", str(archive), "manifest.json"], capture_output=True, text=True, check=True)
    assert json.loads(listed.stdout)[0]["RepoTags"] == [f"{registry_open.host}/kaniko/tar:v1",
                                                         f"{registry_open.host}/kaniko/tar:latest"]
    copied = skopeo("copy", "--quiet", f"docker-archive:{archive}", f"oci:{tmp_path / 'layout'}:x")
    assert copied.returncode == 0, copied.stderr
    bundle = tmp_path / "bundle"
    subprocess.run(["umoci", "unpack", "--image", f"{tmp_path / 'layout'}:x", str(bundle)], check=True,
                   capture_output=True)
    tree = tree_of(bundle / "rootfs")
    assert tree["hello.txt"][4] == "hi\n" and tree["bin/busybox"][0] == "file"
    assert not list(archive.parent.glob(".image.tar.*")), "no temp file left beside the archive"


def test_tar_path_without_destination_is_kanikos_placeholder_tag(busybox_ref: str, tmp_path: Path) -> None:
    context = context_with(tmp_path, "FROM scratch\nCOPY a /a\n", {"a": "a\n"})
    archive = tmp_path / "image.tar"
    result = wharfie("build", str(context), "--no-push", "--tar-path", str(archive),
                     "--cache-dir", str(tmp_path / "cache"))
    assert result.returncode == 0, result.stderr
    tagged = skopeo("inspect", f"docker-archive:{archive}:unset-repo/unset-image-name:latest")
    assert tagged.returncode == 0, tagged.stderr
    assert len(json.loads(tagged.stdout)["Layers"]) == 1


def test_digest_files_in_kanikos_formats(registry_open: Registry, busybox_ref: str, tmp_path: Path) -> None:
    context = context_with(tmp_path, f"FROM {busybox_ref}\nCOPY a /a\n", {"a": "a\n"})
    host = registry_open.host
    files = {name: tmp_path / name for name in ("digest", "name", "nametag")}
    result = wharfie("build", str(context), "-d", f"{host}/kaniko/files:1.0", "-d", f"{host}/kaniko/files",
                     "--insecure-registry", host, "--cache-dir", str(tmp_path / "cache"),
                     "--digest-file", str(files["digest"]), "--image-name-with-digest-file", str(files["name"]),
                     "--image-name-tag-with-digest-file", str(files["nametag"]))
    assert result.returncode == 0, result.stderr
    digest = skopeo_inspect(f"{host}/kaniko/files:1.0", ["--tls-verify=false"])["Digest"]
    assert files["digest"].read_text() == digest
    assert files["name"].read_text() == f"{host}/kaniko/files@{digest}\n{host}/kaniko/files@{digest}\n"
    assert files["nametag"].read_text() == f"{host}/kaniko/files:1.0@{digest}\n{host}/kaniko/files:latest@{digest}\n"


def test_digest_files_are_written_with_no_push_too(registry_open: Registry, busybox_ref: str, tmp_path: Path) -> None:
    context = context_with(tmp_path, "FROM scratch\nCOPY a /a\n", {"a": "a\n"})
    name_file = tmp_path / "nametag"
    result = wharfie("build", str(context), "-d", f"{registry_open.host}/kaniko/nopush:x", "--no-push=true",
                     "--image-name-tag-with-digest-file", str(name_file), "--cache-dir", str(tmp_path / "cache"))
    assert result.returncode == 0, result.stderr
    digest = result.stdout.split()[-1]
    assert name_file.read_text() == f"{registry_open.host}/kaniko/nopush:x@{digest}\n"
    assert tags_of(registry_open, "kaniko/nopush") == []


def test_kaniko_no_push_variable_overrides_the_command_line(registry_open: Registry, tmp_path: Path) -> None:
    context = context_with(tmp_path, "FROM scratch\nCOPY a /a\n", {"a": "a\n"})
    result = wharfie("build", str(context), "-d", f"{registry_open.host}/kaniko/envnopush:x",
                     "--insecure-registry", registry_open.host, "--cache-dir", str(tmp_path / "cache"),
                     env={"KANIKO_NO_PUSH": "true"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("built sha256:")
    assert tags_of(registry_open, "kaniko/envnopush") == []


def test_registry_map_pulls_from_the_mirror(registry_open: Registry, busybox_ref: str, tmp_path: Path) -> None:
    # The Dockerfile names a registry that does not exist; the map sends its pulls to the fixture registry.
    context = context_with(tmp_path, "FROM nowhere.invalid/library/busybox:latest\nCOPY a /a\n", {"a": "a\n"})
    host = registry_open.host
    args = ["build", str(context), "-d", f"{host}/kaniko/mapped:1", "--insecure-registry", host,
            "--cache-dir", str(tmp_path / "cache")]
    result = wharfie(*args, "--registry-map", f"nowhere.invalid={host}")
    assert result.returncode == 0, result.stderr
    image = read_back(f"{host}/kaniko/mapped:1", tmp_path / "rb", ["--src-tls-verify=false"])
    assert tree_of(image.rootfs)["bin/busybox"][0] == "file"
    by_env = wharfie(*args, env={"KANIKO_REGISTRY_MAP": f"other.invalid=x.invalid;nowhere.invalid={host}"})
    assert by_env.returncode == 0, by_env.stderr


def test_registry_map_with_prefix_and_no_fallback(registry_open: Registry, busybox_ref: str, tmp_path: Path) -> None:
    host = registry_open.host
    context = context_with(tmp_path, f"FROM {busybox_ref}\nCOPY a /a\n", {"a": "a\n"})
    args = ["build", str(context), "--no-push", "--insecure-registry", host, "--cache-dir", str(tmp_path / "cache"),
            "--registry-map", f"{host}={host}/no-such-mirror"]
    fell_back = wharfie(*args, "-v", "debug")
    assert fell_back.returncode == 0, fell_back.stderr
    assert "no-such-mirror" in fell_back.stderr, "the mirror was tried first"
    refused = wharfie(*args, "--skip-default-registry-fallback")
    assert refused.returncode == 1
    assert f"{host}/no-such-mirror/library/busybox" in refused.stderr.strip().splitlines()[-1]


def test_context_sub_path(registry_open: Registry, tmp_path: Path) -> None:
    context = context_with(tmp_path, "FROM scratch\nCOPY outer.txt /\n", {"outer.txt": "outer\n",
                                                                        "app/Dockerfile": "FROM scratch\nCOPY in.txt /\n",
                                                                        "app/in.txt": "inner\n"})
    layout = tmp_path / "layout"
    result = wharfie("build", "--context", f"dir://{context}", "--context-sub-path", "app", "--no-push",
                     "--oci-layout-path", str(layout), "--cache-dir", str(tmp_path / "cache"))
    assert result.returncode == 0, result.stderr
    bundle = tmp_path / "bundle"
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:latest", str(bundle)], check=True, capture_output=True)
    assert tree_of(bundle / "rootfs") == {"in.txt": ("file", 0o644, 0, 0, "inner\n")}
    missing = wharfie("build", "--context", str(context), "--context-sub-path", "nope", "--no-push")
    assert missing.returncode == 2 and "nope is not a directory" in missing.stderr


def test_log_format_json_every_log_line_parses(busybox_ref: str, tmp_path: Path) -> None:
    context = context_with(tmp_path, f"FROM {busybox_ref}\nCOPY a /a\nENV X=1\n", {"a": "a\n"})
    result = wharfie("build", str(context), "--no-push", "--log-format=json", "-v", "debug", "--use-new-run",
                     "--cache-dir", str(tmp_path / "cache"), env={"CI": "true"})
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    records = [json.loads(line) for line in lines]  # every line, sections included: there are none
    assert all(set(r) == {"level", "msg", "time"} for r in records)
    assert {r["level"] for r in records} >= {"info", "debug"}
    messages = [r["msg"] for r in records]
    assert "COPY a /a" in messages
    assert any(m.startswith("kaniko flag --use-new-run changes nothing here") for m in messages)


def test_log_timestamp_starts_each_line_with_its_time(tmp_path: Path) -> None:
    context = context_with(tmp_path, "FROM scratch\nCOPY a /a\n", {"a": "a\n"})
    result = wharfie("build", str(context), "--no-push", "--log-timestamp", "--cache-dir", str(tmp_path / "cache"))
    assert result.returncode == 0, result.stderr
    import datetime as dt

    for line in result.stderr.splitlines():
        stamp = line.split(" ", 1)[0]
        assert dt.datetime.fromisoformat(stamp).tzinfo is not None, line


def test_bad_log_format_is_refused(tmp_path: Path) -> None:
    result = wharfie("build", str(tmp_path), "--no-push", "--log-format", "xml")
    assert result.returncode == 2 and "not a valid log format: 'xml'" in result.stderr


def test_inert_flags_say_why_under_debug(tmp_path: Path) -> None:
    context = context_with(tmp_path, "FROM scratch\nCOPY a /a\n", {"a": "a\n"})
    inert = ["--compressed-caching=false", "--use-new-run", "--git", "branch=main", "--force-build-metadata=true",
             "--skip-push-permission-check", "--preserve-context"]
    result = wharfie("build", str(context), "--no-push", "-v", "debug", *inert, "--cache-dir", str(tmp_path / "cache"))
    assert result.returncode == 0, result.stderr
    for flag in ("compressed-caching", "use-new-run", "git", "force-build-metadata", "skip-push-permission-check",
                 "preserve-context"):
        assert f"kaniko flag --{flag} changes nothing here: " in result.stderr, flag
    quiet = wharfie("build", str(context), "--no-push", *inert, "--cache-dir", str(tmp_path / "cache"))
    assert "changes nothing" not in quiet.stderr


def test_bucket_contexts_are_refused_with_a_reason(tmp_path: Path) -> None:
    result = wharfie("build", "--bucket", "my-bucket", "--no-push")
    assert result.returncode == 2
    assert "build contexts from cloud buckets are not supported" in result.stderr and "Traceback" not in result.stderr


def test_skip_tls_verify_registry_and_pull(registry_tls: Registry, registry_open: Registry, busybox_ref: str,
                                           tmp_path: Path) -> None:
    """The TLS registry's certificate is signed by a CA this build is not told about."""
    base = f"{registry_tls.host}/kaniko/tlsbase:latest"
    copied = skopeo("copy", "--quiet", "--src-tls-verify=false", f"--dest-cert-dir={registry_tls.cert_dir}",
                    f"docker://{busybox_ref}", f"docker://{base}")
    assert copied.returncode == 0, copied.stderr
    context = context_with(tmp_path, f"FROM {base}\nCOPY a /a\n", {"a": "a\n"})
    pushed_to_open = f"{registry_open.host}/kaniko/tlsout:1"
    common = ["build", str(context), "--insecure-registry", registry_open.host, "--cache-dir", str(tmp_path / "cache")]
    refused = wharfie(*common, "-d", pushed_to_open)
    assert refused.returncode == 1 and "certificate" in refused.stderr.lower()
    by_host = wharfie(*common, "-d", pushed_to_open, "--skip-tls-verify-registry", registry_tls.host)
    assert by_host.returncode == 0, by_host.stderr
    pull_only = wharfie(*common, "-d", pushed_to_open, "--skip-tls-verify-pull")
    assert pull_only.returncode == 0, pull_only.stderr
    # A registry pushed to is not relaxed by --skip-tls-verify-pull.
    push_there = wharfie(*common, "-d", f"{registry_tls.host}/kaniko/tlsout:1", "--skip-tls-verify-pull")
    assert push_there.returncode == 1 and "certificate" in push_there.stderr.lower()
    assert tags_of_tls(registry_tls, "kaniko/tlsout") == []


def tags_of_tls(registry: Registry, repo: str) -> list[str]:
    response = httpx.get(f"{registry.url}/v2/{repo}/tags/list", verify=ssl.create_default_context(cafile=registry.ca_file))
    return [] if response.status_code == 404 else sorted(response.json().get("tags") or [])


def test_ignore_var_run(registry_open: Registry, busybox_ref: str, tmp_path: Path) -> None:
    context = context_with(tmp_path, f"FROM {busybox_ref}\nRUN mkdir -p /var/run/app && echo 1 > /var/run/app/pid "
                                     "&& echo kept > /kept\n")
    host = registry_open.host
    for flag, repo in (("--ignore-var-run", "kaniko/varrun-ignored"), ("--ignore-var-run=false", "kaniko/varrun-kept")):
        result = wharfie("build", str(context), "-d", f"{host}/{repo}:1", flag, "--insecure-registry", host,
                         "--cache-dir", str(tmp_path / "cache"))
        assert result.returncode == 0, result.stderr
    ignored = tree_of(read_back(f"{host}/kaniko/varrun-ignored:1", tmp_path / "rb1", ["--src-tls-verify=false"]).rootfs)
    kept = tree_of(read_back(f"{host}/kaniko/varrun-kept:1", tmp_path / "rb2", ["--src-tls-verify=false"]).rootfs)
    assert ignored["kept"][4] == "kept\n" and "var/run/app/pid" not in ignored
    assert kept["var/run/app/pid"][4] == "1\n"


def test_kaniko_dir_holds_the_scratch_and_the_docker_config(registry_htpasswd: Registry, busybox_ref: str,
                                                            tmp_path: Path) -> None:
    kaniko_dir = tmp_path / "kaniko"
    (kaniko_dir / ".docker").mkdir(parents=True)
    auth = base64.b64encode(f"{registry_htpasswd.username}:{registry_htpasswd.password}".encode()).decode()
    (kaniko_dir / ".docker" / "config.json").write_text(json.dumps({"auths": {registry_htpasswd.host: {"auth": auth}}}))
    context = context_with(tmp_path, "FROM scratch\nCOPY a /a\n", {"a": "a\n"})
    dest = f"{registry_htpasswd.host}/kaniko/dir:1"
    result = wharfie("build", str(context), "-d", dest, "--insecure-registry", registry_htpasswd.host,
                     "--cache-dir", str(tmp_path / "cache"),
                     env={"KANIKO_DIR": str(kaniko_dir), "DOCKER_CONFIG": "/kaniko/.docker"})
    assert result.returncode == 0, result.stderr
    creds = f"--creds={registry_htpasswd.username}:{registry_htpasswd.password}"
    assert skopeo_inspect(dest, ["--tls-verify=false", creds])["Digest"].startswith("sha256:")
    assert sorted(p.name for p in kaniko_dir.iterdir()) == [".docker"], "the build's scratch is gone afterwards"


def test_retry_flags_raise_the_registry_retries(registry_open: Registry, busybox_ref: str, tmp_path: Path,
                                                fault_proxy) -> None:
    """Two failed answers to the base's manifest: kaniko's --image-download-retry 2 gets past them."""
    proxy = fault_proxy(registry_open)
    proxy.fail("GET", "/manifests/", 503, times=2)
    base = busybox_ref.replace(registry_open.host, proxy.host)
    context = context_with(tmp_path, f"FROM {base}\nCOPY a /a\n", {"a": "a\n"})
    common = ["build", str(context), "--no-push", "--insecure-registry", proxy.host, "--cache-dir",
              str(tmp_path / "cache")]
    failed = wharfie(*common, "--push-retry", "0")
    assert failed.returncode == 1 and "unavailable: fault injected" in failed.stderr
    proxy.clear_faults()
    proxy.fail("GET", "/manifests/", 503, times=2)
    retried = wharfie(*common, "--push-retry", "0", "--image-download-retry", "2")
    assert retried.returncode == 0, retried.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="the cleanup test writes a root of its own as root")
def test_cleanup_clears_the_root_but_what_in_place_keeps(tmp_path: Path) -> None:
    from builder.cli.kaniko_flags import KanikoSettings, clean_up_after_build
    from builder.engine.options import BuildOptions
    from builder.execution.isolation import Isolation

    root = tmp_path / "root"
    for path in ("bin/sh", "etc/passwd", "keep/data", "srv/ctx/Dockerfile"):
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(path)
    options = BuildOptions(context=Path("/srv/ctx"), dockerfile=Path("/srv/ctx/Dockerfile"),
                           isolation=Isolation("in-place"), ignore_paths=("/keep",), cache_dir=Path("/cache"))
    clean_up_after_build(options, KanikoSettings(cleanup=False), root=root)
    assert (root / "bin/sh").exists(), "no --cleanup, nothing cleared"
    clean_up_after_build(options, KanikoSettings(cleanup=True), root=root)
    left = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    assert left == ["etc", "keep", "keep/data", "srv", "srv/ctx", "srv/ctx/Dockerfile"], "etc holds ignored files"
    sandboxed = BuildOptions(context=Path("/srv/ctx"), dockerfile=Path("/srv/ctx/Dockerfile"))
    clean_up_after_build(sandboxed, KanikoSettings(cleanup=True), root=root)
    assert (root / "keep/data").exists()


def test_push_ignore_immutable_tag_errors(registry_open: Registry, tmp_path: Path, fault_proxy) -> None:
    """A registry refusing to overwrite a tag with Artifact Registry's words: kaniko's flag makes it a success."""
    from fixtures.proxy import Fault

    proxy = fault_proxy(registry_open)
    body = json.dumps({"errors": [{"code": "DENIED", "message": "The repository has enabled tag immutability"}]})
    context = context_with(tmp_path, "FROM scratch\nCOPY a /a\n", {"a": "a\n"})
    common = ["build", str(context), "-d", f"{proxy.host}/kaniko/immutable:1", "--insecure-registry", proxy.host,
              "--cache-dir", str(tmp_path / "cache"), "--push-retry", "0"]
    proxy.add_fault(Fault("/manifests/1", "PUT", "status", 403, {"Content-Type": "application/json"},
                          body.encode(), times=2))
    refused = wharfie(*common)
    assert refused.returncode == 1 and "tag immutability" in refused.stderr
    ignored = wharfie(*common, "--push-ignore-immutable-tag-errors=true")
    assert ignored.returncode == 0, ignored.stderr
    assert "immutable tag error ignored" in ignored.stderr


def test_single_snapshot_one_layer_per_stage(registry_open: Registry, busybox_ref: str, tmp_path: Path) -> None:
    """In place: tests/isolation/test_inplace_single_snapshot.py."""
    host = registry_open.host
    dockerfile = (f"FROM {busybox_ref} AS tools\nRUN echo tool > /tool\nRUN echo more >> /tool\n"
                  f"FROM {busybox_ref}\nRUN echo a > /a && mkdir /d && echo x > /d/x\nRUN rm /bin/vi /d/x\n"
                  "COPY --from=tools /tool /tool\nCOPY f /f\nENV X=1\n")
    context = context_with(tmp_path, dockerfile, {"f": "f\n"})
    common = ["build", str(context), "--insecure-registry", host, "--cache-dir", str(tmp_path / "cache")]
    assert wharfie(*common, "-d", f"{host}/kaniko/single:steps").returncode == 0
    result = wharfie(*common, "-d", f"{host}/kaniko/single:one", "--single-snapshot")
    assert result.returncode == 0, result.stderr
    steps = read_back(f"{host}/kaniko/single:steps", tmp_path / "rb1", ["--src-tls-verify=false"])
    one = read_back(f"{host}/kaniko/single:one", tmp_path / "rb2", ["--src-tls-verify=false"])
    base_layers = len(skopeo_inspect(busybox_ref, ["--tls-verify=false"])["Layers"])
    assert len(steps.manifest["layers"]) == base_layers + 4
    assert len(one.manifest["layers"]) == base_layers + 1
    assert tree_of(one.rootfs) == tree_of(steps.rootfs), "the same files, whiteouts included"
    tree = tree_of(one.rootfs)
    assert tree["tool"][4] == "tool\nmore\n" and tree["a"][4] == "a\n" and "bin/vi" not in tree and "d/x" not in tree
    history = one.config["history"]
    own = history[len(history) - 5:]
    assert [h.get("empty_layer", False) for h in own] == [True, True, True, True, False], "the last step holds it"
    assert own[-1]["created_by"].startswith("ENV X=1")
    assert sum(1 for h in history if not h.get("empty_layer")) == len(one.manifest["layers"])
