"""The Python API, in process: `builder.build(...)` pushes to the real registry fixture; skopeo and umoci
read the image back, and the `BuildResult` must say exactly what they see."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

import builder
from fixtures.readback import read_back, skopeo_inspect, tree_of
from fixtures.registry import Registry
from oci.errors import DockerfileError, WharfieError
from registry.options import RegistryOptions

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="RUN steps in process need root (the CLI re-enters "
                                                          "a user namespace by itself; an API caller must)")


def _context(tmp_path: Path, base: str) -> Path:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "hello.txt").write_text("from the context\n")
    (context / "Dockerfile").write_text(
        f"FROM {base}\n"
        "ARG GREETING=nobody\n"
        "COPY hello.txt /app/hello.txt\n"
        "RUN echo \"said $GREETING\" > /app/said.txt && echo step-output-line\n"
        "CMD [\"cat\", \"/app/said.txt\"]\n"
    )
    return context


def _registry(registry: Registry) -> RegistryOptions:
    return RegistryOptions(insecure_registries=frozenset({registry.host}))


def test_build_pushes_and_reports_what_the_registry_holds(registry_open: Registry, busybox_ref: str,
                                                           tmp_path: Path) -> None:
    first, second = f"{registry_open.host}/api/app:v1", f"{registry_open.host}/api/app:latest"
    lines: list[str] = []
    result = builder.build(_context(tmp_path, busybox_ref), destinations=[first, second],
                           build_args={"GREETING": "hello"}, labels={"org.example.via": "api"},
                           registry=_registry(registry_open), cache_dir=tmp_path / "cache", step_output=lines.append)

    flags = ["--tls-verify=false"]
    digest = skopeo_inspect(first, flags)["Digest"]
    assert str(result.digest) == digest == skopeo_inspect(second, flags)["Digest"]
    assert result.references == {first: f"{first}@{digest}", second: f"{second}@{digest}"}
    manifest = skopeo_inspect(first, flags, raw=True)
    config = skopeo_inspect(first, flags, config=True)
    assert [(str(layer.digest), layer.size, layer.media_type) for layer in result.layers] == \
        [(d["digest"], d["size"], d["mediaType"]) for d in manifest["layers"]]
    assert [str(layer.diff_id) for layer in result.layers] == config["rootfs"]["diff_ids"]
    assert "step-output-line" in lines, "RUN output goes to the reporter passed in"

    assert {"parse", "stage 0", "output", "total"} <= set(result.timings)
    assert all(seconds >= 0 for seconds in result.timings.values())
    assert result.timings["total"] >= sum(v for k, v in result.timings.items() if k != "total") - 0.01

    image = read_back(first, tmp_path / "rb", ["--src-tls-verify=false"])
    tree = tree_of(image.rootfs)
    assert tree["app/hello.txt"][4] == "from the context\n"
    assert tree["app/said.txt"][4] == "said hello\n"
    assert image.config["config"]["Labels"] == {"org.example.via": "api"}
    assert image.config["config"]["Cmd"] == ["cat", "/app/said.txt"]


def test_push_false_builds_without_pushing(registry_open: Registry, busybox_ref: str, tmp_path: Path) -> None:
    dest = f"{registry_open.host}/api/unpushed:v1"
    layout = tmp_path / "layout"
    result = builder.build(_context(tmp_path, busybox_ref), destinations=[dest], push=False, oci_layout_path=layout,
                           registry=_registry(registry_open), cache_dir=tmp_path / "cache", quiet=True)
    assert result.references == {}
    index = json.loads((layout / "index.json").read_text())
    assert index["manifests"][0]["digest"] == str(result.digest)
    listed = subprocess.run(["skopeo", "inspect", "--tls-verify=false", f"docker://{dest}"], capture_output=True,
                            text=True, check=False)
    assert listed.returncode != 0, "nothing was pushed"


def test_the_api_reads_no_ci_variables(registry_open: Registry, busybox_ref: str, tmp_path: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    # $CI_REGISTRY_IMAGE/cache is the CLI's default for the cache repository, not the API's.
    monkeypatch.setenv("CI_REGISTRY_IMAGE", f"{registry_open.host}/api/elsewhere")
    dest = f"{registry_open.host}/api/cached:v1"
    builder.build(_context(tmp_path, busybox_ref), destinations=[dest], cache=True,
                  registry=_registry(registry_open), cache_dir=tmp_path / "cache", quiet=True)

    def tags(repository: str) -> list[str]:
        done = subprocess.run(["skopeo", "list-tags", "--tls-verify=false", f"docker://{repository}"],
                              capture_output=True, text=True, check=False)
        return json.loads(done.stdout)["Tags"] if done.returncode == 0 else []

    assert tags(f"{registry_open.host}/api/cached/cache"), "the cache went to <first destination>/cache"
    assert not tags(f"{registry_open.host}/api/elsewhere/cache")


def test_bad_input_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(WharfieError, match="is not a directory"):
        builder.build(tmp_path / "missing", push=False)
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM scratch\nCOPY\n")
    with pytest.raises(DockerfileError, match=r"Dockerfile:2: COPY requires at least two arguments"):
        builder.build(context, push=False, cache_dir=tmp_path / "cache")
