"""Multi-platform images: per-architecture builds joined into one index that skopeo selects from."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from builder.execution.binfmt import find_interpreter
from fixtures.multibase import push_multiarch_busybox
from fixtures.readback import run_wharfie, skopeo_inspect
from fixtures.registry import Registry

pytestmark = pytest.mark.slow

COPY_ONLY = """\
FROM {base}
ARG TARGETPLATFORM
ARG TARGETARCH
ARG BUILDPLATFORM
LABEL target=$TARGETPLATFORM arch=$TARGETARCH built-on=$BUILDPLATFORM
COPY hello.txt /srv/hello-$TARGETARCH.txt
"""


@pytest.fixture(scope="module")
def multi_base(registry_open: Registry) -> str:
    return push_multiarch_busybox(registry_open)


def _context(tmp_path: Path, text: str) -> Path:
    context = tmp_path / "ctx"
    context.mkdir(exist_ok=True)
    (context / "Dockerfile").write_text(text)
    (context / "hello.txt").write_text("hello\n")
    return context


def _build(context: Path, tmp_path: Path, platform: str, dest: str, host: str, *extra: str):
    digest_file = tmp_path / f"digest-{platform.replace('/', '-')}"
    result = run_wharfie("build", str(context), "--platform", platform, "-d", dest, "--insecure-registry", host,
                         "--cache-dir", str(tmp_path / "cache"), "--digest-file", str(digest_file), *extra)
    assert result.returncode == 0, result.stderr
    return digest_file.read_text()


def test_per_arch_builds_joined_into_an_index(registry_open: Registry, multi_base: str, tmp_path: Path) -> None:
    host = registry_open.host
    flags = ["--tls-verify=false"]
    context = _context(tmp_path, COPY_ONLY.format(base=multi_base))
    amd64 = _build(context, tmp_path, "linux/amd64", f"{host}/e2e/multi:amd64", host)
    # arm64 goes to another repository: the index's repository must get its blobs by cross-repository mounts.
    arm64 = _build(context, tmp_path, "linux/arm64", f"{host}/e2e/multi-arm:arm64", host, "--custom-platform",
                   "linux/arm64", "--provenance")

    config = skopeo_inspect(f"{host}/e2e/multi-arm:arm64", flags, config=True)
    assert (config["os"], config["architecture"]) == ("linux", "arm64")
    assert config["config"]["Labels"]["target"] == "linux/arm64" and config["config"]["Labels"]["arch"] == "arm64"
    assert config["config"]["Labels"]["built-on"] == "linux/amd64"
    # The base was picked from the index for arm64: the provenance names that entry's digest.
    base_index = skopeo_inspect(multi_base, [*flags, "--raw"])
    arm_entry = next(m for m in base_index["manifests"] if m["platform"]["architecture"] == "arm64")
    statement = json.loads(run_wharfie("provenance", f"{host}/e2e/multi-arm:arm64", "--platform", "linux/arm64",
                                       "--insecure-registry", host).stdout)
    bases = [d for d in statement["predicate"]["buildDefinition"]["resolvedDependencies"]
             if d.get("annotations", {}).get("role") == "base"]
    assert [b["digest"]["sha256"] for b in bases] == [arm_entry["digest"][7:]]

    created = run_wharfie("manifest", "create", f"{host}/e2e/multi:latest", f"{host}/e2e/multi:amd64",
                          f"{host}/e2e/multi-arm:arm64", "--insecure-registry", host)
    assert created.returncode == 0, created.stderr
    assert "linux/amd64, linux/arm64" in created.stdout
    assert "mounted from e2e/multi-arm" in created.stderr  # the arm64 layers crossed repositories without upload

    index = skopeo_inspect(f"{host}/e2e/multi:latest", [*flags, "--raw"])
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    assert [(m["digest"], m["platform"]) for m in index["manifests"]] == [
        (amd64, {"architecture": "amd64", "os": "linux"}), (arm64, {"architecture": "arm64", "os": "linux"})]
    for arch, digest in (("amd64", amd64), ("arm64", arm64)):
        picked = skopeo_inspect(f"{host}/e2e/multi:latest", [*flags, "--override-arch", arch])
        assert picked["Architecture"] == arch  # its "Digest" is the index's; the copy below shows the entry's
        copy_dir = tmp_path / f"copy-{arch}"
        copied = subprocess.run(["skopeo", "--override-arch", arch, "copy", "--quiet", "--src-tls-verify=false",
                                 f"docker://{host}/e2e/multi:latest", f"oci:{copy_dir}:x"],
                                capture_output=True, text=True, check=False)
        assert copied.returncode == 0, copied.stderr
        layout_index = json.loads((copy_dir / "index.json").read_text())
        assert layout_index["manifests"][0]["digest"] == digest

    shown = run_wharfie("manifest", "inspect", f"{host}/e2e/multi:latest", "--insecure-registry", host)
    assert shown.returncode == 0 and json.loads(shown.stdout) == index

    # An index as a source contributes its entries (here, into another repository: blobs and manifests follow).
    again = run_wharfie("manifest", "create", f"{host}/e2e/multi-copy:1", f"{host}/e2e/multi:latest",
                        "--insecure-registry", host)
    assert again.returncode == 0, again.stderr
    assert skopeo_inspect(f"{host}/e2e/multi-copy:1", [*flags, "--raw"]) == index

    listed = run_wharfie("manifest", "create", f"{host}/e2e/multi:list", f"{host}/e2e/multi:amd64",
                         f"{host}/e2e/multi-arm:arm64", "--format", "docker", "--insecure-registry", host)
    assert listed.returncode == 0, listed.stderr
    docker_list = skopeo_inspect(f"{host}/e2e/multi:list", [*flags, "--raw"])
    assert docker_list["mediaType"] == "application/vnd.docker.distribution.manifest.list.v2+json"
    assert skopeo_inspect(f"{host}/e2e/multi:list", [*flags, "--override-arch", "arm64"])["Architecture"] == "arm64"
    assert [m["digest"] for m in docker_list["manifests"]] == [amd64, arm64]


def test_two_images_of_one_platform_make_no_index(registry_open: Registry, multi_base: str, tmp_path: Path) -> None:
    host = registry_open.host
    context = _context(tmp_path, COPY_ONLY.format(base=multi_base))
    _build(context, tmp_path, "linux/amd64", f"{host}/e2e/dup:a", host)
    _build(context, tmp_path, "linux/amd64", f"{host}/e2e/dup:b", host, "--label", "other=1")
    result = run_wharfie("manifest", "create", f"{host}/e2e/dup:latest", f"{host}/e2e/dup:a", f"{host}/e2e/dup:b",
                         "--insecure-registry", host)
    assert result.returncode == 1 and "are both linux/amd64" in result.stderr and "Traceback" not in result.stderr


def test_foreign_run_without_an_interpreter_fails_at_once(registry_open: Registry, multi_base: str,
                                                          tmp_path: Path) -> None:
    if find_interpreter("arm64") is not None:
        pytest.skip("this machine has a binfmt_misc interpreter for aarch64: the refusal cannot be seen here")
    host = registry_open.host
    context = _context(tmp_path, f"FROM {multi_base}\nCOPY hello.txt /\nRUN cat /hello.txt\n")
    started = time.monotonic()
    result = run_wharfie("build", str(context), "--platform", "linux/arm64", "-d", f"{host}/e2e/foreign:1",
                         "--insecure-registry", host, "--cache-dir", str(tmp_path / "cache"))
    assert result.returncode == 1, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("wharfie: error")]
    assert errors == [("wharfie: error: Dockerfile:3: RUN for linux/arm64 needs a binfmt_misc interpreter for "
                       "aarch64 (qemu-user-static): none is registered in /proc/sys/fs/binfmt_misc")]
    assert "FROM" not in result.stderr, "refused before the base was even resolved"
    assert time.monotonic() - started < 30
    tags = run_wharfie("tags", "ls", f"{host}/e2e/foreign", "--insecure-registry", host)
    assert "1" not in tags.stdout.split()


def test_scratch_and_copy_for_a_foreign_platform_need_no_interpreter(registry_open: Registry, tmp_path: Path) -> None:
    host = registry_open.host
    context = _context(tmp_path, "FROM scratch\nCOPY hello.txt /\n")
    _build(context, tmp_path, "linux/riscv64", f"{host}/e2e/scratch-riscv:1", host)
    config = skopeo_inspect(f"{host}/e2e/scratch-riscv:1", ["--tls-verify=false"], config=True)
    assert (config["os"], config["architecture"]) == ("linux", "riscv64")
