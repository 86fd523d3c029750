"""The conformance cases: loading them, preparing their contexts, building each with wharfie and with buildah.

A case is a directory under ``cases/``: a ``Dockerfile`` starting ``ARG BASE`` /
``FROM $BASE`` (the busybox image of the fixture registry is passed as a build
arg), the files of its context, and optionally:

- ``setup.sh``: run with ``sh -eu`` in the case's temp copy before the builds,
  for what git cannot carry (hardlinks, modes other than 0644/0755, setuid
  bits, empty directories, archives); removed from the context afterwards;
- ``case.toml``: ``about`` (what the case checks), ``build_args``, ``target``,
  ``wharfie_only`` (why buildah cannot be the oracle, e.g. heredocs),
  ``xfail`` (a wharfie bug not fixed yet: the test is a strict xfail), and a
  ``[docker]`` table of docker's documented behaviour where buildah departs from
  it: ``[docker.config]`` values replace buildah's, ``[docker.files."PATH"]``
  entries (``type``, ``mode``, ``uid``, ``gid``, ``content``, ``link``) replace or
  add buildah's, and ``absent = [PATHS]`` removes them.  Each such value
  carries a comment naming the Dockerfile reference (or BuildKit source) it
  follows.  For a wharfie-only case ``[docker]`` is the whole expectation.
"""

from __future__ import annotations

import shutil
import subprocess
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fixtures.buildah import ARTIFACTS, Buildah
from fixtures.imagecompare import ImageView, compare, config_view, entry_from_spec, read_layout
from fixtures.readback import run_wharfie

__all__ = ["CASES_DIR", "Case", "CaseResult", "build_buildah", "build_wharfie", "differences", "load_cases",
           "prepare_context"]

CASES_DIR = Path(__file__).resolve().parent / "cases"
_META_FILES = ("case.toml", "setup.sh")


@dataclass(frozen=True)
class Case:
    name: str
    directory: Path
    about: str = ""
    build_args: dict[str, str] = field(default_factory=dict)
    target: str | None = None
    wharfie_only: str | None = None
    xfail: str | None = None
    docker_config: dict[str, Any] = field(default_factory=dict)
    docker_files: dict[str, dict[str, Any]] = field(default_factory=dict)
    docker_absent: tuple[str, ...] = ()


@dataclass
class CaseResult:
    """One builder's outcome for one case: a view of the image, or the error that stopped the build."""

    view: ImageView | None = None
    error: str | None = None
    seconds: float = 0.0


def load_cases(directory: Path = CASES_DIR) -> list[Case]:
    cases = []
    for case_dir in sorted(p for p in directory.iterdir() if p.is_dir()):
        meta: dict[str, Any] = {}
        if (case_dir / "case.toml").is_file():
            meta = tomllib.loads((case_dir / "case.toml").read_text())
        docker = meta.get("docker", {})
        cases.append(Case(
            name=case_dir.name, directory=case_dir, about=meta.get("about", ""),
            build_args={k: str(v) for k, v in meta.get("build_args", {}).items()}, target=meta.get("target"),
            wharfie_only=meta.get("wharfie_only"), xfail=meta.get("xfail"),
            docker_config=docker.get("config", {}), docker_files=docker.get("files", {}),
            docker_absent=tuple(docker.get("absent", ())),
        ))
    return cases


def prepare_context(case: Case, dest: Path) -> Path:
    """A private copy of the case's context, with ``setup.sh`` run in it and the case's own files removed."""
    shutil.copytree(case.directory, dest, symlinks=True)
    setup = dest / "setup.sh"
    if setup.exists():
        result = subprocess.run(["sh", "-eu", "setup.sh"], check=False, cwd=dest, capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{case.name}/setup.sh failed: {result.stderr.strip()}")
    for name in _META_FILES:
        (dest / name).unlink(missing_ok=True)
    return dest


def _args(case: Case, base: str) -> dict[str, str]:
    return {"BASE": base, **case.build_args}


def build_wharfie(case: Case, context: Path, workdir: Path, *, base: str, tmpdir: Path) -> CaseResult:
    """`tmpdir`: the builds' $TMPDIR (they run in the background, across tests: not any one test's)."""
    start = time.monotonic()
    layout = workdir / "wharfie-layout"
    args = ["build", str(context), "--no-push", "--oci-layout-path", str(layout), "--cache-dir",
            str(workdir / "wharfie-cache"), "--insecure-registry", base.split("/", 1)[0], "--quiet"]
    for key, value in _args(case, base).items():
        args += ["--build-arg", f"{key}={value}"]
    if case.target:
        args += ["--target", case.target]
    result = run_wharfie(*args, env={"TMPDIR": str(tmpdir)})
    if result.returncode != 0:
        return CaseResult(error=f"wharfie build failed ({result.returncode}): {result.stderr.strip()[-2000:]}",
                          seconds=time.monotonic() - start)
    view = read_layout(layout, "latest", workdir / "wharfie-bundle")
    return CaseResult(view=view, seconds=time.monotonic() - start)


def build_buildah(case: Case, context: Path, workdir: Path, *, base: str, buildah: Buildah) -> CaseResult:
    start = time.monotonic()
    try:
        image = buildah.build(context, workdir / "buildah-layout", name=case.name, build_args=_args(case, base),
                              target=case.target)
    except Exception as exc:  # noqa: BLE001 - the test reports it
        return CaseResult(error=str(exc), seconds=time.monotonic() - start)
    view = read_layout(image.layout, image.tag, workdir / "buildah-bundle", config=image.config)
    return CaseResult(view=view, seconds=time.monotonic() - start)


def docker_expectation(case: Case, buildah_view: ImageView, wharfie_view: ImageView) -> ImageView:
    """What docker would build: buildah's image, less buildah's own stubs, corrected by the case's [docker] table."""
    tree = dict(buildah_view.tree)
    for path, (kind, size) in ARTIFACTS.items():
        entry = tree.get(path)
        stub = entry is not None and entry.type == kind and entry.size == size and path not in wharfie_view.tree
        if stub and (kind != "dir" or not any(p.startswith(path + "/") for p in tree)):
            del tree[path]
    for path in case.docker_absent:
        tree.pop(path, None)
    for path, spec in case.docker_files.items():
        tree[path] = entry_from_spec(spec, tree.get(path))
    config = dict(buildah_view.config)
    config.update(config_view({"config": case.docker_config}))
    for name, value in case.docker_config.items():
        if name not in config_view({"config": {name: value}}):
            config.pop(name, None)  # docker leaves this field unset
    return ImageView(tree, config)


def wharfie_only_differences(case: Case, actual: ImageView) -> list[str]:
    """Checks of a case no peer can build: the [docker] table alone, field by field."""
    expected_config = config_view({"config": case.docker_config})
    lines = [f"config {name}: docker {expected_config.get(name)!r} != wharfie {actual.config.get(name)!r}"
             for name in case.docker_config if expected_config.get(name) != actual.config.get(name)]
    for path in case.docker_absent:
        if path in actual.tree:
            lines.append(f"{path}: docker has no such path, wharfie has {actual.tree[path].describe()}")
    for path, spec in case.docker_files.items():
        got = actual.tree.get(path)
        want = entry_from_spec(spec, got)
        if got is None:
            lines.append(f"only in docker: {path} ({want.describe()})")
        elif got != want:
            lines.append(f"{path}: docker {want.describe()} != wharfie {got.describe()}")
    return lines


def differences(case: Case, wharfie: CaseResult, buildah: CaseResult | None) -> list[str]:
    assert wharfie.view is not None
    if buildah is None:
        return wharfie_only_differences(case, wharfie.view)
    assert buildah.view is not None
    expected = docker_expectation(case, buildah.view, wharfie.view)
    return compare(expected, wharfie.view, expected_name="expected", actual_name="wharfie")
