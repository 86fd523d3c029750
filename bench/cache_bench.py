"""W1 from issue 7: a cold build and a fully cached rebuild from an empty local state.

Measures wall time and peak RSS (via /usr/bin/time) of `wharfie build --cache`
against a local distribution registry, and, in the same run, buildah's
`--layers --cache-to/--cache-from` on the same Dockerfile when buildah is
installed. Run: `python bench/cache_bench.py` (a few minutes; prints a table).
`python3 -m bench.compare` (issue 14) measures the same W1 pair against buildah and kaniko.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.timing import Measurement, timed
from bench.workloads import W1, make_contexts
from fixtures.baseimage import push_busybox
from fixtures.registry import Registry


def wharfie(ctx: Path, registry: Registry, base: str, cache_dir: Path) -> list[str]:
    return [sys.executable, "-m", "builder", "build", str(ctx), "-d", f"{registry.host}/bench/w1:latest",
            "--build-arg", f"BASE={base}", "--insecure-registry", registry.host, "--cache",
            "--cache-dir", str(cache_dir), "-q"]


def buildah_runs(ctx: Path, registry: Registry, base: str, logs: Path) -> list[tuple[str, Measurement]]:
    """buildah bud --layers with --cache-to/--cache-from in the same registry, each run from a fresh store."""
    from fixtures.buildah import BUILDAH, Buildah

    rows = []
    for label in ("buildah cold", "buildah cached (fresh store)"):
        with Buildah() as buildah:
            command = [BUILDAH, "--root", str(buildah.root), "--runroot", str(buildah.runroot), "--storage-driver",
                       "vfs", "bud", "--layers", "--isolation", "chroot", "--tls-verify=false",
                       "--signature-policy", str(buildah.policy), "--build-arg", f"BASE={base}",
                       "--cache-to", f"{registry.host}/bench/buildah-cache",
                       "--cache-from", f"{registry.host}/bench/buildah-cache",
                       "-t", f"{registry.host}/bench/w1b:latest", str(ctx)]
            rows.append((label, timed(command, env=buildah.env(), log=logs / "buildah.log", what=label)))
    return rows


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="wharfie-bench-") as tmp_name, \
            Registry(Path(tmp_name) / "registry") as registry:
        tmp = Path(tmp_name)
        base = push_busybox(registry)
        ctx = make_contexts(tmp, (W1,), None)[W1.name]
        log = tmp / "wharfie.log"
        rows = [("wharfie cold", timed(wharfie(ctx, registry, base, tmp / "c1"), log=log, what="wharfie cold")),
                ("wharfie cached (empty --cache-dir)",
                 timed(wharfie(ctx, registry, base, tmp / "c2"), log=log, what="wharfie cached"))]
        rows += buildah_runs(ctx, registry, base, tmp)
    print(f"{'W1 build':40} {'wall s':>8} {'peak RSS MB':>12}")
    for label, measured in rows:
        print(f"{label:40} {measured.seconds:8.2f} {measured.rss_mb:12.0f}")


if __name__ == "__main__":
    main()
