"""The conformance suite's builds: every selected case built by wharfie and by buildah, a few at a time.

Building is most of the suite's time, and a build mostly waits on
subprocesses, so the session fixture starts every selected case's two builds
on a small thread pool as soon as the first test asks, and each test waits
for its own case only.  One private buildah (fixtures/buildah.py) serves the
whole session and is removed at its end.
"""

from __future__ import annotations

import os
import queue
import shutil
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import pytest
from conformance_cases import CASES_DIR, Case, CaseResult, build_buildah, build_wharfie, load_cases, prepare_context

from fixtures.buildah import Buildah

_SELECTED = pytest.StashKey[list[str]]()
_TIMES = pytest.StashKey[dict[str, float]]()
WORKERS = int(os.environ.get("WHARFIE_CONFORMANCE_JOBS", "3"))
KEEP = os.environ.get("WHARFIE_CONFORMANCE_KEEP")  # a directory to keep every case's contexts and images in


def pytest_collection_finish(session: pytest.Session) -> None:
    """Remember the cases left after selection (-k, -m, node ids): the ones to build up front."""
    names = []
    for item in session.items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and isinstance(callspec.params.get("case"), Case):
            names.append(callspec.params["case"].name)
    session.config.stash[_SELECTED] = names


class Builds:
    """Futures of every selected case's builds: ``result(name)`` waits for that case alone."""

    def __init__(self, cases: dict[str, Case], workdir: Path, base: str, peers: list[Buildah]) -> None:
        self.cases = cases
        self.workdir = workdir
        self.base = base
        # One buildah store per build running at once: buildah races with itself on a shared store
        # ("layer not known" while committing), and that race is ours to keep out of the comparison.
        self.peers: queue.SimpleQueue[Buildah] = queue.SimpleQueue()
        for peer in peers:
            self.peers.put(peer)
        self.pool = ThreadPoolExecutor(max_workers=WORKERS, thread_name_prefix="conformance")
        self.futures: dict[str, tuple[Future[CaseResult], Future[CaseResult] | None]] = {}
        self.tmpdir = workdir / "tmp"  # the builds' $TMPDIR, checked empty at the end
        self.tmpdir.mkdir(exist_ok=True)
        self.started = time.monotonic()

    def start(self, names: list[str]) -> None:
        for name in names:
            if name in self.futures:
                continue
            case = self.cases[name]
            case_dir = self.workdir / name
            if case_dir.exists():
                shutil.rmtree(case_dir)
            case_dir.mkdir()
            context = prepare_context(case, case_dir / "context")
            wharfie = self.pool.submit(build_wharfie, case, context, case_dir, base=self.base, tmpdir=self.tmpdir)
            buildah = None
            if case.wharfie_only is None:
                buildah = self.pool.submit(self._build_buildah, case, context, case_dir)
            self.futures[name] = (wharfie, buildah)

    def _build_buildah(self, case: Case, context: Path, case_dir: Path) -> CaseResult:
        peer = self.peers.get()  # a store no other build is using now
        try:
            return build_buildah(case, context, case_dir, base=self.base, buildah=peer)
        finally:
            self.peers.put(peer)

    def result(self, name: str) -> tuple[CaseResult, CaseResult | None]:
        self.start([name])
        wharfie, buildah = self.futures[name]
        return wharfie.result(), buildah.result() if buildah is not None else None

    def times(self) -> dict[str, float]:
        """Wall time of all the builds, and each builder's summed time (build + read back)."""
        totals = {"builds": time.monotonic() - self.started, "wharfie": 0.0, "buildah": 0.0}
        for wharfie, buildah in self.futures.values():
            for name, future in (("wharfie", wharfie), ("buildah", buildah)):
                if future is not None and future.done() and not future.cancelled() and future.exception() is None:
                    totals[name] += future.result().seconds
        return totals

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="session")
def conformance_builds(request: pytest.FixtureRequest, busybox_ref: str,
                       tmp_path_factory: pytest.TempPathFactory) -> Iterator[Builds]:
    cases = {case.name: case for case in load_cases(CASES_DIR)}
    with ExitStack() as stack:
        peers = [stack.enter_context(Buildah()) for _ in range(WORKERS)]
        for peer in peers:
            peer.pull(busybox_ref)
        workdir = Path(KEEP) if KEEP else tmp_path_factory.mktemp("conformance")
        workdir.mkdir(parents=True, exist_ok=True)
        builds = Builds(cases, workdir, busybox_ref, peers)
        builds.start([n for n in request.config.stash.get(_SELECTED, []) if n in cases])
        try:
            yield builds
        finally:
            builds.close()
            request.config.stash[_TIMES] = builds.times()
        left = [name for name in os.listdir(builds.tmpdir) if name.startswith("wharfie")]
        assert not left, f"conformance builds left {left} in their $TMPDIR"
        if not KEEP:
            shutil.rmtree(workdir, ignore_errors=True)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int,
                            config: pytest.Config) -> None:
    times = config.stash.get(_TIMES, None)
    if times:
        count = len(config.stash.get(_SELECTED, []))
        terminalreporter.write_line(f"conformance: {count} cases built by wharfie and buildah in "
                                    f"{times['builds']:.0f}s, {WORKERS} at a time (wharfie {times['wharfie']:.0f}s, "
                                    f"buildah {times['buildah']:.0f}s in all)")
