"""wharfie's own image, built once per session with scripts/image.sh and run the way a CI runner runs a job.

The base is a Debian bookworm made by debootstrap (once per machine, cached:
fixtures/debian_base.py) and pushed to the open fixture registry; the image
goes to the same registry and podman pulls it from there. Jobs run as a
GitLab runner's would: `podman run --runtime runc` with the default seccomp
profile and capabilities, no --privileged, the host network (to reach the
registry on 127.0.0.1), the image's entrypoint cleared and `sh -c SCRIPT`.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from image_jobs import WharfieImage

from fixtures.debian_base import ensure_debian_base, push_debian_base
from fixtures.readback import skopeo_inspect
from fixtures.registry import Registry

REPO = Path(__file__).resolve().parents[2]
# What the image's build takes from its base (see the Dockerfile): the tests' base has it all, so
# the image is built without any network.
BASE_PACKAGES = ("busybox-static", "ca-certificates", "python3")


@pytest.fixture(scope="session")
def podman() -> str:
    for tool in ("podman", "runc"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (scripts/setup.sh installs it): the image's tests run jobs in it")
    return "podman"


@pytest.fixture(scope="session")
def debian_python_ref(registry_open: Registry) -> str:
    try:
        base = ensure_debian_base(BASE_PACKAGES)
    except RuntimeError as exc:
        pytest.skip(f"no Debian base for wharfie's image: {exc}")
    return push_debian_base(base, registry_open, "library/debian-python")


@pytest.fixture(scope="session")
def wharfie_image(podman: str, registry_open: Registry, debian_python_ref: str,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[WharfieImage]:
    ref = f"{registry_open.host}/wharfie/image:test"
    started = time.monotonic()
    built = subprocess.run(
        ["bash", str(REPO / "scripts" / "image.sh"), ref, "--build-arg", f"BASE={debian_python_ref}",
         "--insecure-registry", registry_open.host, "--cache-dir", str(tmp_path_factory.mktemp("image-cache"))],
        capture_output=True, text=True, timeout=900, check=False)
    seconds = time.monotonic() - started
    assert built.returncode == 0, f"scripts/image.sh failed:\n{built.stdout[-3000:]}\n{built.stderr[-3000:]}"
    manifest = skopeo_inspect(ref, ["--tls-verify=false"], raw=True)
    size = manifest["config"]["size"] + sum(layer["size"] for layer in manifest["layers"])
    pulled = subprocess.run(["podman", "pull", "--quiet", "--tls-verify=false", ref], capture_output=True,
                            text=True, check=False)
    assert pulled.returncode == 0, pulled.stderr
    try:
        yield WharfieImage(ref, seconds, size)
    finally:
        subprocess.run(["podman", "rmi", "--force", ref], capture_output=True, check=False)
