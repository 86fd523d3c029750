"""Issue 14's benchmark: wharfie against buildah and kaniko on W1 and three Debian builds, in one run.

Run as root from the repository root: ``bash scripts/bench.sh`` (installs what
it needs, then runs this), or ``python3 -m bench.compare [--runs 3]``.  With
``KANIKO_SRC`` pointing at a kaniko source tree the executor is built and
compared too; without it the run says ``kaniko skipped: <why>``.

One run starts one distribution registry, pushes the busybox base
(`fixtures.baseimage`) and the Debian minbase (`fixtures.debian_base`, made once
per machine in the state dir) to it, writes the contexts (`bench.workloads`),
and then, ``--runs`` times, interleaving the builders so drift hits them alike:

- W1 cold: every builder, empty local state;
- W1 with ``--cache`` (wharfie): cold, filling the cache repository, then the
  rebuild from that cache with an empty ``--cache-dir``;
- the three Debian builds, each from empty local state, for every builder;
- the three Debian builds in a row on one kept local state (wharfie's
  ``--cache-dir``, buildah's store), the first build of the row pulling the base.

Every build pushes to a repository of its own, so no build finds its layers
already uploaded by another.  Tables give the median wall time of the runs,
their median CPU time (user + system, children included) and the largest peak
RSS of any run, both from GNU time, and wharfie's wall time over the faster
peer's (its CPU time over the smallest peer CPU time in brackets: on a shared
machine that figure moves less).  Last, wharfie builds W1 and each Debian build once more with
``-v debug`` and the profile of each is printed (`bench.wharfie_profile`).
Results and logs go to ``STATE/results/<UTC time>/``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.kaniko import Kaniko, KanikoUnavailable, build_executor
from bench.peers import REPO, BuildahPeer, KanikoPeer, Peer, WharfiePeer, compile_wharfie
from bench.timing import GNU_TIME, BenchError, Measurement, median
from bench.wharfie_profile import extraction_cost, parse_profile, stamped_run
from bench.workloads import DEBIAN_BUILDS, W1, Workload, fetch_wheels, make_contexts
from fixtures.baseimage import push_busybox
from fixtures.debian_base import ensure_debian_base, push_debian_base
from fixtures.registry import Registry

__all__ = ["main"]

DEFAULT_STATE = Path(os.environ.get("WHARFIE_BENCH_STATE", "/var/cache/wharfie-bench"))
W1_COLD = "W1 cold"
W1_CACHE_COLD = "W1 cold with --cache (fills the cache repo)"
W1_REBUILD = "W1 rebuild from the remote cache, empty --cache-dir"


@dataclass(frozen=True)
class Row:
    """One line of a table: a build (or a sum of builds) and each builder's median."""

    build: str
    cells: dict[str, Measurement]


class Recorder:
    """Collects every measurement as (table, build, peer) -> runs, and prints progress as it goes."""

    def __init__(self) -> None:
        self.runs: dict[tuple[str, str, str], list[Measurement]] = defaultdict(list)

    def add(self, table: str, build: str, peer: str, measurement: Measurement) -> None:
        self.runs[(table, build, peer)].append(measurement)
        print(f"  {table:14} {build:52} {peer:8} {measurement.seconds:7.2f} s (cpu {measurement.cpu_seconds:6.2f} s)"
              f" {measurement.rss_mb:6.0f} MB", flush=True)

    def rows(self, table: str, builds: Sequence[str], peers: Sequence[str], total: str | None = None) -> list[Row]:
        rows = []
        for build in builds:
            cells = {p: median(self.runs[(table, build, p)]) for p in peers if self.runs.get((table, build, p))}
            if cells:
                rows.append(Row(build, cells))
        if total is not None and rows:
            sums = {}
            for peer in peers:
                per_run = [self.runs.get((table, build, peer), []) for build in builds]
                if all(per_run) and len({len(r) for r in per_run}) == 1:
                    runs = [Measurement(sum(m.seconds for m in ms), max(m.rss_mb for m in ms),
                                        sum(m.cpu_seconds for m in ms)) for ms in zip(*per_run)]
                    sums[peer] = median(runs)  # the median of each run's sum, not the sum of medians
            rows.append(Row(total, sums))
        return rows


def _cell(measurement: Measurement | None) -> str:
    if measurement is None:
        return "—"
    return f"{measurement.seconds:.2f} s (cpu {measurement.cpu_seconds:.2f}), {measurement.rss_mb:.0f} MB"


def _ratio(row: Row) -> str:
    """wharfie's wall time over the faster peer's, and the same for CPU time."""
    peers = [m for name, m in row.cells.items() if name != "wharfie"]
    if "wharfie" not in row.cells or not peers:
        return "—"
    wharfie = row.cells["wharfie"]
    wall = wharfie.seconds / min(m.seconds for m in peers)
    cpu = min(m.cpu_seconds for m in peers)
    return f"{wall:.2f}× (cpu {wharfie.cpu_seconds / cpu:.2f}×)" if cpu > 0 else f"{wall:.2f}×"


def render_table(title: str, rows: list[Row], peers: Sequence[str]) -> str:
    header = f"| {title} | " + " | ".join(peers) + " | wharfie ÷ faster peer |"
    lines = [header, "|---|" + "---|" * (len(peers) + 1)]
    for row in rows:
        lines.append(f"| {row.build} | " + " | ".join(_cell(row.cells.get(p)) for p in peers) + f" | {_ratio(row)} |")
    return "\n".join(lines)


@dataclass
class Run:
    """One bench run's registry, bases, contexts and builders."""

    registry: Registry
    work: Path
    logs: Path
    peers: list[Peer]
    contexts: dict[str, Path]
    bases: dict[bool, str]  # debian? -> base reference
    recorder: Recorder
    base_blob: Path | None  # the Debian base's one layer blob, for the extraction probe

    def build(self, table: str, label: str, peer: Peer, workload: Workload, repo: str, state: Path,
              extra: tuple[str, ...] = ()) -> None:
        destination = f"{self.registry.host}/bench/{repo.lower()}:latest"
        measurement = peer.build(self.contexts[workload.name], destination, {"BASE": self.bases[workload.debian]},
                                 state, self.logs / f"{repo}.log", extra)
        self.recorder.add(table, label, peer.name, measurement)

    def fresh_state(self, name: str) -> Path:
        state = self.work / "state" / name
        state.mkdir(parents=True)
        return state

    def w1(self, run: int) -> None:
        for peer in self.peers:
            state = self.fresh_state(f"w1-{peer.name}-{run}")
            try:
                self.build("W1", W1_COLD, peer, W1, f"w1-{peer.name}-{run}", state)
            finally:
                peer.release(state)
        wharfie = next((p for p in self.peers if p.name == "wharfie"), None)
        if wharfie is None:
            return
        cache_repo = f"{self.registry.host}/bench/w1cache-{run}/cache"
        for label, tag in ((W1_CACHE_COLD, "cold"), (W1_REBUILD, "rebuild")):
            state = self.fresh_state(f"w1cache-{tag}-{run}")
            try:
                self.build("W1", label, wharfie, W1, f"w1cache-{run}-{tag}", state,
                           ("--cache", "--cache-repo", cache_repo))
            finally:
                wharfie.release(state)

    def debian_fresh(self, run: int) -> None:
        for workload in DEBIAN_BUILDS:
            for peer in self.peers:
                state = self.fresh_state(f"{workload.name}-{peer.name}-{run}")
                try:
                    self.build("Debian fresh", workload.name, peer, workload, f"{workload.name}-{peer.name}-{run}",
                               state)
                finally:
                    peer.release(state)

    def debian_kept(self, run: int) -> None:
        for peer in self.peers:
            if not peer.keeps_state:
                continue
            state = self.fresh_state(f"kept-{peer.name}-{run}")
            try:
                for workload in DEBIAN_BUILDS:
                    self.build("Debian kept", workload.name, peer, workload,
                               f"kept-{workload.name}-{peer.name}-{run}", state)
            finally:
                peer.release(state)

    def profile(self, workloads: Sequence[Workload]) -> list[str]:
        wharfie = WharfiePeer()
        texts = []
        for workload in workloads:
            state = self.fresh_state(f"profile-{workload.name}")
            command = wharfie.command(self.contexts[workload.name],
                                      f"{self.registry.host}/bench/profile-{workload.name.lower()}:latest",
                                      {"BASE": self.bases[workload.debian]}, state, ("-v", "debug"))
            lines, total = stamped_run(command, self.logs / f"profile-{workload.name}.log", cwd=REPO)
            wharfie.release(state)
            texts.append(parse_profile(lines, total).render(f"wharfie {workload.name}, cold, -v debug"))
        if self.base_blob is not None:
            texts.append(extraction_cost(self.base_blob, self.work, repo=REPO, python=wharfie.python))
        return texts


def _kaniko_peer() -> KanikoPeer | str:
    """The kaniko peer, or why there is none."""
    src = os.environ.get("KANIKO_SRC")
    try:
        why = Kaniko.available()
        if why:
            raise KanikoUnavailable(why)
        executor, version = build_executor(Path(src) if src else None, DEFAULT_STATE)
    except KanikoUnavailable as exc:
        return str(exc)
    return KanikoPeer(Kaniko(executor, version))


def _versions(peers: Sequence[Peer]) -> dict[str, str]:
    def first_line(command: list[str]) -> str:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        return (result.stdout or result.stderr).strip().splitlines()[0] if result.returncode == 0 else "?"

    versions = {"wharfie": first_line(["git", "-C", str(REPO), "describe", "--always", "--dirty"])}
    for peer in peers:
        if isinstance(peer, BuildahPeer):
            versions["buildah"] = first_line(["buildah", "--version"])
        elif isinstance(peer, KanikoPeer):
            versions["kaniko"] = peer.kaniko.version
    return versions


def _machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.machine())
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({model}), {memory_gb:.0f} GB RAM, Linux {platform.release()}"


def _load() -> str:
    """The 1-minute load average: other work on the machine shows in every figure, so each report names it."""
    return f"{os.getloadavg()[0]:.1f}"


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python3 -m bench.compare", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3,
                        help="runs per build; tables give medians (default 3; 0: only the profile)")
    parser.add_argument("--peers", default="wharfie,buildah,kaniko", help="comma-separated subset to run")
    parser.add_argument("--skip-w1", action="store_true")
    parser.add_argument("--skip-debian", action="store_true")
    parser.add_argument("--skip-kept", action="store_true", help="no builds on a kept local state")
    parser.add_argument("--skip-profile", action="store_true", help="no -v debug profile of wharfie")
    return parser.parse_args(argv)


def _choose_peers(wanted: set[str]) -> list[Peer]:
    peers: list[Peer] = []
    if "wharfie" in wanted:
        compile_wharfie()
        peers.append(WharfiePeer())
    if "buildah" in wanted:
        if shutil.which("buildah"):
            peers.append(BuildahPeer())
        else:
            print("buildah skipped: buildah is not installed (apt-get install buildah)")
    if "kaniko" in wanted:
        kaniko = _kaniko_peer()
        if isinstance(kaniko, str):
            print(f"kaniko skipped: {kaniko}")
        else:
            print(f"kaniko {kaniko.kaniko.version}: {kaniko.kaniko.executor}")
            peers.append(kaniko)
    return peers


def main(argv: Sequence[str] | None = None) -> None:
    args = _parse_args(argv)
    if os.geteuid() != 0:
        sys.exit("run as root: debootstrap, buildah's overlay store and kaniko's bubblewrap root need it")
    if not Path(GNU_TIME).exists():
        sys.exit(f"{GNU_TIME} is missing: apt-get install time")
    peers = _choose_peers(set(args.peers.split(",")))
    debian = not args.skip_debian
    DEFAULT_STATE.mkdir(parents=True, exist_ok=True)
    base = ensure_debian_base(cache=DEFAULT_STATE) if debian else None
    wheels = fetch_wheels(DEFAULT_STATE) if debian else None
    workloads = ((W1,) if not args.skip_w1 else ()) + (DEBIAN_BUILDS if debian else ())
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H%M%SZ")
    results = DEFAULT_STATE / "results" / stamp
    results.mkdir(parents=True)
    recorder = Recorder()
    load_at_start, versions = _load(), _versions(peers)  # before the runs: the code measured, not a later commit
    profiles: list[str] = []
    with tempfile.TemporaryDirectory(prefix="run-", dir=DEFAULT_STATE) as tmp, \
            Registry(Path(tmp) / "registry") as registry:
        bases = {False: push_busybox(registry)}
        if base is not None:
            bases[True] = push_debian_base(base, registry, "bench/minbase")
        run = Run(registry, Path(tmp), results, peers, make_contexts(Path(tmp) / "contexts", workloads, wheels),
                  bases, recorder, base.layer_blob() if base is not None else None)
        try:
            for number in range(1, args.runs + 1):
                print(f"run {number} of {args.runs}", flush=True)
                if not args.skip_w1:
                    run.w1(number)
                if debian:
                    run.debian_fresh(number)
                    if not args.skip_kept:
                        run.debian_kept(number)
            if not args.skip_profile and any(p.name == "wharfie" for p in peers):
                profiles = run.profile(workloads)
        except BenchError as exc:
            sys.exit(str(exc))
    names = [p.name for p in peers]
    debian_names = [w.name for w in DEBIAN_BUILDS]
    tables = [
        render_table(f"W1 ({args.runs} runs, median)", recorder.rows("W1", [W1_COLD, W1_CACHE_COLD, W1_REBUILD], names),
                     names),
        render_table("Debian, each build from empty local state",
                     recorder.rows("Debian fresh", debian_names, names, total="three Debian builds"), names),
        render_table("Debian, three builds in a row on one kept local state",
                     recorder.rows("Debian kept", debian_names, names, total="three Debian builds"), names),
    ]
    peak = {name: max(m.rss_mb for (_, _, peer), ms in recorder.runs.items() if peer == name for m in ms)
            for name in names if any(peer == name for (_, _, peer) in recorder.runs)}
    header = (f"{datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, {_machine()}, "
              f"load average {load_at_start} at the start, {_load()} at the end\n"
              f"versions: {json.dumps(versions)}\n")
    report = "\n\n".join([header, *tables, "peak RSS, any build: " + ", ".join(f"{k} {v:.0f} MB" for k, v in peak.items()),
                          *profiles])
    print("\n" + report)
    (results / "report.md").write_text(report + "\n")
    (results / "runs.json").write_text(json.dumps(
        [{"table": t, "build": b, "peer": p, "runs": [asdict(m) for m in ms]} for (t, b, p), ms in recorder.runs.items()],
        indent=1))
    print(f"\nresults and logs: {results}")


if __name__ == "__main__":
    main()
