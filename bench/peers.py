"""The builders compared: one command line per build for wharfie, buildah and kaniko, each timed by GNU time.

Every build is a fresh process that pushes to the run's registry.  ``state`` is
the builder's local state for that build: an empty directory for a cold build,
or the same directory across a series of builds when the run measures what a
kept local state is worth (wharfie's ``--cache-dir``, buildah's image store).

- wharfie: ``python -m builder build`` from this checkout, ``--cache-dir STATE``,
  its packages compiled to bytecode first (`compile_wharfie`), as pip and the
  image do on install: with ``PYTHONDONTWRITEBYTECODE`` set (it is on these
  machines) every start would otherwise compile ~80 modules again (~0.15 s).
- buildah 1.28: ``buildah bud --isolation chroot`` (the only isolation that
  works here) then ``buildah push``, both timed, in a store of its own under
  ``STATE`` with its default driver as root (overlay; vfs is 2-3x slower on
  the Debian builds) and the sealed configuration of `fixtures.buildah`.
  ``bud`` keeps its default ``--layers=false``: one layer for all steps.
- kaniko: see `bench.kaniko`; its root is ``STATE``, fresh for every build
  (kaniko, in its container, keeps nothing between builds).
"""

from __future__ import annotations

import compileall
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from bench.kaniko import Kaniko
from bench.timing import Measurement, timed
from fixtures.buildah import BUILDAH, Buildah

__all__ = ["REPO", "BuildahPeer", "KanikoPeer", "Peer", "WharfiePeer", "compile_wharfie"]

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("builder", "layers", "oci", "registry")


def compile_wharfie() -> None:
    """Write the checkout's bytecode, as an installed wharfie has it (not timed)."""
    for package in PACKAGES:
        if not compileall.compile_dir(REPO / package, quiet=1, workers=0):
            raise RuntimeError(f"compiling {REPO / package} to bytecode failed")


class Peer(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def keeps_state(self) -> bool:
        """Whether a kept local state means anything to this builder (kaniko's container keeps nothing)."""
        ...

    def build(self, context: Path, destination: str, build_args: dict[str, str], state: Path, log: Path,
              extra: tuple[str, ...] = ()) -> Measurement:
        """Build ``context``, push to ``destination`` (a plain-HTTP registry), return the measurement."""
        ...

    def release(self, state: Path) -> None:
        """Remove ``state`` and whatever the builder keeps in it (not timed)."""
        ...


@dataclass(frozen=True)
class WharfiePeer:
    name: str = "wharfie"
    keeps_state: bool = True
    python: str = sys.executable

    def command(self, context: Path, destination: str, build_args: dict[str, str], state: Path,
                extra: tuple[str, ...] = ()) -> list[str]:
        host = destination.split("/", 1)[0]
        # -f always: a bare "Dockerfile" is looked up in the current directory before the context.
        command = [self.python, "-m", "builder", "build", str(context), "-f", str(context / "Dockerfile"),
                   "-d", destination,
                   "--insecure-registry", host, "--cache-dir", str(state), *extra]
        for key, value in build_args.items():
            command += ["--build-arg", f"{key}={value}"]
        return command

    def build(self, context: Path, destination: str, build_args: dict[str, str], state: Path, log: Path,
              extra: tuple[str, ...] = ()) -> Measurement:
        command = self.command(context, destination, build_args, state, ("-q", *extra))
        return timed(command, log=log, cwd=REPO, what=f"wharfie build of {context.name}")

    def release(self, state: Path) -> None:
        shutil.rmtree(state, ignore_errors=True)


@dataclass
class BuildahPeer:
    name: str = "buildah"
    keeps_state: bool = True
    driver: str = "overlay"
    _stores: dict[Path, Buildah] = field(default_factory=dict)

    def _store(self, state: Path) -> Buildah:
        if state not in self._stores:
            self._stores[state] = Buildah(state)
        return self._stores[state]

    def _command(self, buildah: Buildah, *args: str) -> list[str]:
        return [BUILDAH, "--root", str(buildah.root), "--runroot", str(buildah.runroot),
                "--storage-driver", self.driver, *args]

    def build(self, context: Path, destination: str, build_args: dict[str, str], state: Path, log: Path,
              extra: tuple[str, ...] = ()) -> Measurement:
        buildah = self._store(state)
        env = {**buildah.env(), "STORAGE_DRIVER": self.driver}
        local = f"localhost/bench/{context.name.lower()}:latest"
        bud = self._command(buildah, "bud", "--isolation", "chroot", "--tls-verify=false",
                            "--signature-policy", str(buildah.policy), "-t", local, *extra)
        for key, value in build_args.items():
            bud += ["--build-arg", f"{key}={value}"]
        push = self._command(buildah, "push", "--tls-verify=false", "--signature-policy", str(buildah.policy),
                             local, f"docker://{destination}")
        what = f"buildah build of {context.name}"
        return timed([*bud, str(context)], log=log, env=env, what=what) + timed(push, log=log, env=env, what=what)

    def release(self, state: Path) -> None:
        """Remove the store's images (unmounting its overlay layers) and the store itself."""
        buildah = self._stores.pop(state, None)
        if buildah is not None:
            env = {**buildah.env(), "STORAGE_DRIVER": self.driver}
            for args in (("rm", "--all"), ("rmi", "--all", "--force")):
                subprocess.run(self._command(buildah, *args), env=env, capture_output=True, check=False)
        shutil.rmtree(state, ignore_errors=True)


@dataclass(frozen=True)
class KanikoPeer:
    kaniko: Kaniko
    name: str = "kaniko"
    keeps_state: bool = False

    def build(self, context: Path, destination: str, build_args: dict[str, str], state: Path, log: Path,
              extra: tuple[str, ...] = ()) -> Measurement:
        self.kaniko.prepare_root(state)
        command = self.kaniko.command(state, context, destination, build_args)
        return timed([*command, *extra], log=log, what=f"kaniko build of {context.name}")

    def release(self, state: Path) -> None:
        shutil.rmtree(state, ignore_errors=True)
