"""W1 from issue 7: a cold build and a fully cached rebuild from an empty local state.

Measures wall time and peak RSS (via /usr/bin/time) of `wharfie build --cache`
against a local distribution registry, and, in the same run, buildah's
`--layers --cache-to/--cache-from` on the same Dockerfile when buildah is
installed. Run: `python bench/cache_bench.py` (a few minutes; prints a table).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fixtures.baseimage import push_busybox
from fixtures.registry import Registry

W1 = """\
ARG BASE
FROM $BASE
RUN for i in $(seq 1 5000); do echo "$i" > /tmp/small-$i; done
COPY data/ /data/
ENV APP=w1
WORKDIR /srv
CMD ["sh"]
"""


def make_context(root: Path) -> Path:
    ctx = root / "w1"
    (ctx / "data").mkdir(parents=True)
    (ctx / "Dockerfile").write_text(W1)
    for i in range(2000):
        (ctx / "data" / f"blob-{i:04d}").write_bytes(os.urandom(100 * 1024))
    return ctx


def timed(command: list[str], env: dict[str, str] | None = None) -> tuple[float, int]:
    """(wall seconds, peak RSS in MB) of one command."""
    start = time.perf_counter()
    result = subprocess.run(["/usr/bin/time", "-f", "MAXRSS %M", *command], capture_output=True, text=True,
                            env=env if env is not None else dict(os.environ))
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"{command[0]} failed:\n{result.stderr[-3000:]}")
    rss = int(re.findall(r"MAXRSS (\d+)", result.stderr)[-1]) // 1024
    return elapsed, rss


def wharfie(ctx: Path, registry: Registry, base: str, cache_dir: Path) -> list[str]:
    return [sys.executable, "-m", "builder", "build", str(ctx), "-d", f"{registry.host}/bench/w1:latest",
            "--build-arg", f"BASE={base}", "--insecure-registry", registry.host, "--cache",
            "--cache-dir", str(cache_dir), "-q"]


def buildah_runs(ctx: Path, registry: Registry, base: str) -> list[tuple[str, float, int]]:
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
            rows.append((label, *timed(command, env=buildah.env())))
    return rows


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="wharfie-bench-") as tmp_name, \
            Registry(Path(tmp_name) / "registry") as registry:
        tmp = Path(tmp_name)
        base = push_busybox(registry)
        ctx = make_context(tmp)
        rows = [("wharfie cold", *timed(wharfie(ctx, registry, base, tmp / "c1"))),
                ("wharfie cached (empty --cache-dir)", *timed(wharfie(ctx, registry, base, tmp / "c2")))]
        rows += buildah_runs(ctx, registry, base)
    print(f"{'W1 build':40} {'wall s':>8} {'peak RSS MB':>12}")
    for label, seconds, rss in rows:
        print(f"{label:40} {seconds:8.2f} {rss:12d}")


if __name__ == "__main__":
    main()
