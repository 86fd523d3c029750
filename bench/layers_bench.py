#!/usr/bin/env python3
"""Benchmark of layers/: the writer against `tar | gzip -6` and `tar | pigz -p2`, extraction, snapshots.

A script, not a test: run `python bench/layers_bench.py [--workdir DIR] [--skip-big]` from the repo
root. Each wharfie measurement runs in a fresh child process so its peak RSS is its own. Trees are
read once before timing so every contender starts from a warm page cache.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCE_CANDIDATES = ["/usr/include", "/usr/share/perl", "/usr/lib/python3.11", "/usr/lib/python3", "/usr/share/doc"]

# getrusage's ru_maxrss survives fork+exec (a child would report its parent's size at the fork);
# VmHWM belongs to the memory map the exec created.
PEAK_RSS = """
def peak_rss_mb():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
"""

CHILD_WRITE = PEAK_RSS + """
import json, sys, time
sys.path.insert(0, {repo!r})
from pathlib import Path
from layers.writer import write_tree_layer
from oci.blobstore import BlobStore
store = BlobStore({store!r})
start = time.perf_counter()
layer = write_tree_layer(Path({tree!r}), store, compression={compression!r}, level={level!r})
seconds = time.perf_counter() - start
print(json.dumps({{"seconds": seconds, "size": layer.size, "digest": str(layer.digest), "rss_mb": peak_rss_mb()}}))
"""

CHILD_EXTRACT = PEAK_RSS + """
import json, sys, time
sys.path.insert(0, {repo!r})
from pathlib import Path
from layers.extract import extract_layer
start = time.perf_counter()
with open({blob!r}, "rb") as blob:
    extract_layer(blob, Path({out!r}))
print(json.dumps({{"seconds": time.perf_counter() - start, "rss_mb": peak_rss_mb()}}))
"""


def run_child(code: str) -> dict[str, float]:
    result = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def make_random_tree(path: Path, count: int, size: int) -> None:
    if path.exists():
        return
    path.mkdir(parents=True)
    for i in range(count):
        (path / f"f{i:05d}").write_bytes(os.urandom(size))


def make_source_tree(path: Path, budget: int) -> None:
    """About `budget` bytes of source files copied from this machine."""
    if path.exists():
        return
    path.mkdir(parents=True)
    copied = 0
    for candidate in SOURCE_CANDIDATES:
        if copied >= budget or not os.path.isdir(candidate):
            continue
        for dirpath, _, filenames in os.walk(candidate):
            for name in filenames:
                source = os.path.join(dirpath, name)
                if not os.path.isfile(source) or os.path.islink(source):
                    continue
                target = path / os.path.relpath(source, "/")
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
                copied += os.path.getsize(source)
                if copied >= budget:
                    return


def tar_size(tree: Path) -> int:
    tar = subprocess.Popen(["tar", "-cf", "-", "-C", str(tree), "."], stdout=subprocess.PIPE)
    total = 0
    assert tar.stdout is not None
    while chunk := tar.stdout.read(1 << 20):
        total += len(chunk)
    tar.wait()
    return total


def time_shell(command: str) -> float:
    start = time.perf_counter()
    subprocess.run(["bash", "-o", "pipefail", "-c", command], check=True)
    return time.perf_counter() - start


def bench_writer(name: str, tree: Path, work: Path) -> list[tuple[str, ...]]:
    tar_size(tree)  # warm the page cache
    mb = tar_size(tree) / 1e6
    rows = []
    out = work / "out.gz"
    for label, command in [("tar | gzip -6", f"tar -cf - -C {tree} . | gzip -6 > {out}"),
                           ("tar | pigz -p2 -6", f"tar -cf - -C {tree} . | pigz -p2 -6 > {out}")]:
        seconds = time_shell(command)
        rows.append((name, label, f"{seconds:.2f}", f"{mb / seconds:.0f}", f"{out.stat().st_size / 1e6:.1f}", "-"))
    for label, compression, level in [("wharfie gzip (isal 2, default)", "gzip", None),
                                      ("wharfie gzip -6 (isal 3)", "gzip", 6),
                                      ("wharfie zstd 3", "zstd", None), ("wharfie none", "none", None)]:
        store = work / f"store-{compression}-{level}"
        result = run_child(CHILD_WRITE.format(repo=str(REPO), store=str(store), tree=str(tree),
                                              compression=compression, level=level))
        shutil.rmtree(store)
        rows.append((name, label, f"{result['seconds']:.2f}", f"{mb / result['seconds']:.0f}",
                     f"{result['size'] / 1e6:.1f}", f"{result['rss_mb']:.0f}"))
    return rows


def bench_extract(name: str, tree: Path, work: Path) -> list[tuple[str, ...]]:
    store = work / "store-extract"
    written = run_child(CHILD_WRITE.format(repo=str(REPO), store=str(store), tree=str(tree), compression="gzip",
                                           level=None))
    blob = store / "blobs" / "sha256" / written["digest"].split(":")[1]  # type: ignore[union-attr]
    out = work / "extracted"
    result = run_child(CHILD_EXTRACT.format(repo=str(REPO), blob=str(blob), out=str(out)))
    mb = tar_size(tree) / 1e6
    shutil.rmtree(out)
    out.mkdir()
    gnu_seconds = time_shell(f"tar -xzf {blob} -C {out}")
    shutil.rmtree(out)
    shutil.rmtree(store)
    return [(name, "GNU tar -xzf", f"{gnu_seconds:.2f}", f"{mb / gnu_seconds:.0f}", "-", "-"),
            (name, "wharfie extract (gzip)", f"{result['seconds']:.2f}", f"{mb / result['seconds']:.0f}", "-",
             f"{result['rss_mb']:.0f}")]


def bench_snapshots(work: Path) -> list[tuple[str, ...]]:
    sys.path.insert(0, str(REPO))
    from layers.overlay import changes_from_upper, mount_overlay, overlay_supported, unmount
    from layers.walk import Snapshot, diff

    rows = []
    can_overlay = os.geteuid() == 0 and overlay_supported(work)
    for files in (10_000, 100_000):
        lower = work / f"snap-{files}"
        if not lower.exists():
            for i in range(files):
                directory = lower / f"d{i % 100}"
                directory.mkdir(parents=True, exist_ok=True)
                (directory / f"f{i}").write_bytes(b"x")
        start = time.perf_counter()
        before = Snapshot.take(lower)
        (lower / "d1/f1").write_bytes(b"changed")
        changes = diff(before, Snapshot.take(lower))
        walk_seconds = time.perf_counter() - start
        rows.append((f"{files} files, 1 changed", "walk snapshot (take+take+diff)", f"{walk_seconds:.4f}", "-",
                     f"{len(changes)} changes", "-"))
        if can_overlay:
            upper, ovl_work, merged = work / "upper", work / "ovl-work", work / "merged"
            for directory in (upper, ovl_work, merged):
                shutil.rmtree(directory, ignore_errors=True)
                directory.mkdir()
            mount_overlay([lower], upper, ovl_work, merged, userxattr=False)
            try:
                (merged / "d2/f2").write_bytes(b"changed")
            finally:
                unmount(merged)
            start = time.perf_counter()
            changes = changes_from_upper(upper, [lower])
            rows.append((f"{files} files, 1 changed", "overlay snapshot (read upper)",
                         f"{time.perf_counter() - start:.4f}", "-", f"{len(changes)} changes", "-"))
    return rows


def print_table(rows: list[tuple[str, ...]]) -> None:
    header = ("tree", "tool", "seconds", "MB/s (tar)", "output MB", "peak RSS MB")
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "wharfie-layers-bench")
    parser.add_argument("--skip-big", action="store_true", help="skip the 2 GiB layer (RSS check)")
    args = parser.parse_args()
    work: Path = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    random_tree, source_tree, big_tree = work / "random-2000x100k", work / "source-200m", work / "big-2g"
    make_random_tree(random_tree, 2000, 100 * 1024)
    make_source_tree(source_tree, 200 * 1000 * 1000)
    rows = bench_writer("2000 x 100 KiB random", random_tree, work)
    rows += bench_writer("200 MB source files", source_tree, work)
    rows += bench_extract("2000 x 100 KiB random", random_tree, work)
    rows += bench_extract("200 MB source files", source_tree, work)
    if not args.skip_big:
        make_random_tree(big_tree, 20, 100 << 20)
        store = work / "store-big"
        result = run_child(CHILD_WRITE.format(repo=str(REPO), store=str(store), tree=str(big_tree),
                                              compression="gzip", level=None))
        shutil.rmtree(store)
        rows.append(("2 GiB random (20 x 100 MiB)", "wharfie gzip (isal 2)", f"{result['seconds']:.2f}",
                     f"{(2 << 30) / 1e6 / result['seconds']:.0f}", f"{result['size'] / 1e6:.0f}",
                     f"{result['rss_mb']:.0f}"))
    rows += bench_snapshots(work)
    print(f"cpus: {os.cpu_count()}, python {sys.version.split()[0]}")
    print_table(rows)


if __name__ == "__main__":
    main()
