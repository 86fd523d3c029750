"""The default base of wharfie's own image, as far as it can be tested on a machine without Docker Hub.

The image's other tests pass ``--build-arg BASE=`` (an offline Debian in the
fixture registry), so the default (the Dockerfile's ``ARG BASE=...``) is never
pulled here. What is checked: that default is a valid reference to a Debian
bookworm image (the Python 3.11 scripts/image.sh builds wheels for), the
docs name the same one, and scripts/image.sh run without ``BASE`` makes
wharfie pull exactly it: Docker Hub is mapped (kaniko's ``--registry-map``,
no fallback) to the fixture registry, which does not hold it, so the build
stops at its FROM naming it.

Not testable offline: that the reference exists on Docker Hub and which
digest it resolves to today, Docker Hub's anonymous token flow and rate
limits, and the Dockerfile's apt-get path (a slim base lacks python3 and
busybox-static, installed from Debian's mirror). The default is a tag, not a
digest: no digest of it could be verified from this machine.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import httpx
import pytest

from builder.frontend import instructions as ins
from builder.frontend.dockerfile import parse
from fixtures.registry import Registry
from registry.reference import Reference, parse_reference

REPO = Path(__file__).resolve().parents[2]


def default_base() -> tuple[str, Reference]:
    """The Dockerfile's ``ARG BASE`` default (read by wharfie's own parser) and the reference it parses to."""
    parsed = parse((REPO / "Dockerfile").read_text())
    first_from = next(i for i, instr in enumerate(parsed.instructions) if isinstance(instr, ins.FROM))
    meta_args = dict(pair for instr in parsed.instructions[:first_from] if isinstance(instr, ins.ARG)
                     for pair in instr.pairs)
    default = meta_args["BASE"]
    assert default, "BASE has a default"
    return default, parse_reference(default)


def test_the_default_base_is_debian_bookworm_and_the_docs_agree() -> None:
    default, ref = default_base()
    assert (ref.registry, ref.repository) == ("docker.io", "library/debian"), default
    assert ref.tag is not None and ref.tag.startswith("bookworm"), "Python 3.11, the wheels image.sh fetches"
    first_stage = next(i for i in parse((REPO / "Dockerfile").read_text()).instructions if isinstance(i, ins.FROM))
    assert first_stage.image == "${BASE}"
    assert f"default {default})" in (REPO / "scripts" / "image.sh").read_text()
    assert f"(the default: {default})" in (REPO / "image" / "README.md").read_text()


@pytest.mark.slow
def test_image_sh_without_base_pulls_the_default(registry_open: Registry, tmp_path: Path) -> None:
    default, ref = default_base()
    dest = f"{registry_open.host}/wharfie/default-base:never"
    result = subprocess.run(
        ["bash", str(REPO / "scripts" / "image.sh"), dest, "--insecure-registry", registry_open.host,
         "--registry-map", f"index.docker.io={registry_open.host}", "--skip-default-registry-fallback",
         "--push-retry", "0", "--cache-dir", str(tmp_path / "cache")],
        capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    log = result.stderr.splitlines()
    assert f"FROM {default}" in log, "the first stage's base is the default, unchanged"
    error = log[-1]
    assert error.startswith("wharfie: error: ") and f"{registry_open.host}/{ref.repository}:{ref.tag}" in error, error
    assert httpx.get(f"{registry_open.url}/v2/wharfie/default-base/tags/list").status_code == 404, "nothing pushed"
