#!/usr/bin/env python3
"""Benchmark of RUN steps: the cost of one `RUN true` with the overlay snapshotter, the walk, and buildah.

A script, not a test: run `python bench/run_steps_bench.py [--cache DIR] [--runs N]` from the repo root,
as root. The Debian minbase base is debootstrapped once into the cache dir (the Debian package mirror
must be reachable) and pushed, with the fixtures' busybox, to a local registry. For each base and
each contender, a build of `FROM base` + 1 `RUN true` and one of `FROM base` + 11 `RUN true` are
timed; (T11 - T1) / 10 is the cost of a step, extraction and push excluded alike for every tool.
wharfie's own per-step times (the step's sandbox, snapshot and layer) are also measured inside the
build. The goal (issue 6): a step's cost independent of the base's size, under 0.15 s on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Self

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from builder.engine import stage as stage_module
from builder.engine.build import build_image
from builder.engine.options import BuildOptions, OutputOptions
from builder.engine.registry_setup import registry_client
from builder.execution.isolation import Isolation
from fixtures.baseimage import push_busybox
from fixtures.buildah import Buildah
from fixtures.debian_base import ensure_debian_base, push_debian_base
from fixtures.registry import Registry
from registry.options import RegistryOptions


def contexts(work: Path, base: str) -> dict[int, Path]:
    out = {}
    for steps in (1, 11):
        context = work / f"ctx-{steps}"
        context.mkdir(parents=True, exist_ok=True)
        (context / "Dockerfile").write_text(f"FROM {base}\n" + "RUN true\n" * steps)
        out[steps] = context
    return out


class StepTimer:
    """Times builder.engine.stage._run_and_commit: one RUN's sandbox, snapshot and layer, without extraction."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self._original = stage_module._run_and_commit

    def __enter__(self) -> Self:
        def timed(*args: object, **kwargs: object) -> None:
            start = time.perf_counter()
            self._original(*args, **kwargs)  # type: ignore[arg-type]
            self.times.append(time.perf_counter() - start)

        stage_module._run_and_commit = timed  # type: ignore[assignment]
        return self

    def __exit__(self, *exc: object) -> None:
        stage_module._run_and_commit = self._original  # type: ignore[assignment]


def wharfie_build(context: Path, snapshotter: str, cache_dir: Path, registry: Registry) -> tuple[float, list[float]]:
    options = BuildOptions(context=context, dockerfile=context / "Dockerfile", output=OutputOptions(no_push=True),
                           cache_dir=cache_dir, isolation=Isolation("sandbox", snapshotter=snapshotter), quiet=True)
    client = registry_client(RegistryOptions(insecure_registries=frozenset({registry.host})), quiet=True)
    with StepTimer() as timer:
        start = time.perf_counter()
        build_image(options, client=client)
        return time.perf_counter() - start, timer.times


def buildah_build(buildah: Buildah, context: Path, name: str) -> float:
    start = time.perf_counter()
    buildah.bud(context, tag=f"localhost/bench/{name}:latest")
    seconds = time.perf_counter() - start
    buildah.run("rmi", f"localhost/bench/{name}:latest", check=False)
    return seconds


def measure(base_name: str, base: str, work: Path, registry: Registry, runs: int, with_buildah: bool) -> dict:
    ctx = contexts(work / base_name, base)
    cache_dir = work / "blob-cache"
    result: dict[str, dict[str, float]] = {}
    for snapshotter in ("overlay", "walk"):
        wharfie_build(ctx[1], snapshotter, cache_dir, registry)  # warm: blobs downloaded, page cache
        totals1, totals11, steps = [], [], []
        for _ in range(runs):
            totals1.append(wharfie_build(ctx[1], snapshotter, cache_dir, registry)[0])
            total, per_step = wharfie_build(ctx[11], snapshotter, cache_dir, registry)
            totals11.append(total)
            steps += per_step[1:]  # the first RUN also extracts the base
        result[f"wharfie-{snapshotter}"] = {
            "per_step_s": (statistics.median(totals11) - statistics.median(totals1)) / 10,
            "in_build_step_median_s": statistics.median(steps), "in_build_step_max_s": max(steps),
            "build_1_run_s": statistics.median(totals1), "build_11_runs_s": statistics.median(totals11)}
    if with_buildah:
        with Buildah(work / f"buildah-{base_name}") as buildah:
            buildah.pull(base)
            buildah_build(buildah, ctx[1], "warm")
            t1 = [buildah_build(buildah, ctx[1], "one") for _ in range(runs)]
            t11 = [buildah_build(buildah, ctx[11], "eleven") for _ in range(runs)]
        result["buildah-chroot"] = {"per_step_s": (statistics.median(t11) - statistics.median(t1)) / 10,
                                    "build_1_run_s": statistics.median(t1), "build_11_runs_s": statistics.median(t11)}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path("/var/cache/wharfie-bench"),
                        help="bench state dir holding the debootstrapped base (shared with bench.compare)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-buildah", action="store_true")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (debootstrap, sandboxes, overlay mounts)")
    args.cache.mkdir(parents=True, exist_ok=True)
    base = ensure_debian_base(cache=args.cache)
    files = sum(len(f) + len(d) for _, d, f in os.walk(base.rootfs))
    with tempfile.TemporaryDirectory(prefix="wharfie-run-bench-", dir="/var/tmp") as tmp, \
            Registry(Path(tmp) / "registry") as registry:
        minbase = push_debian_base(base, registry, "bench/minbase")
        bases = {"busybox": push_busybox(registry), "debian-minbase": minbase}
        report = {"machine": {"cores": os.cpu_count(), "minbase_paths": files}}
        for name, ref in bases.items():
            report[name] = measure(name, ref, Path(tmp), registry, args.runs, not args.no_buildah)
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
