"""`BlobPusher`: blobs go up in the background as soon as they exist; manifests only once all are in.

A build hands each layer to the pusher the moment it is written (`add`),
and goes on with its next steps while a bounded pool makes the blob present
in every destination repository (registry/blob_push.py: HEAD, mount,
upload, retried whole). `push_image` then adds what is still missing (the
config), waits for exactly the blobs of that image in exactly its
repositories, and only then PUTs the manifest under each tag: every blob is
in every destination repository before any manifest, so a failure anywhere
leaves no tag pointing at a missing blob. go-containerregistry's
`remote.MultiWrite` gives the same guarantee for a finished image.

Several users may share one pusher (the build's destinations and its layer
cache): each (repository, digest) is pushed once, and one digest goes to
one registry one repository at a time, so the second repository mounts it
from the first instead of uploading it again. The first job of each
repository goes alone: it earns the token the others then share, and if it
fails the others are not tried.

A large layer can go up while it is still written (`stream`): the upload
reads the growing blob (oci/growing_blob.py) chunk by chunk and closes with
its digest once it is known; when that blob is then `add`ed, its push to
that repository is the stream's outcome, and if the stream failed, the
ordinary push starts over from the finished file. Measured on W1 (a 200 MB
COPY layer), the registry takes about as long to receive the layer as
wharfie takes to write it, so this hides nearly the whole upload.

`abandon` (a cancelled or failed build) drops what has not started and
tells whoever waits on a running push that it is given up, at once: a
registry that never answers must not hold a cancelled build. No manifest is
put after that, so a blob that still arrives is only an unreferenced blob,
which the registry's garbage collection removes.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, InvalidStateError, wait
from dataclasses import dataclass, field
from typing import Self

from oci.digest import Digest
from oci.errors import WharfieError
from oci.growing_blob import GrowingBlob
from oci.layer import Layer
from oci.models import Manifest
from registry.blob_push import BytesBlob, push_blob
from registry.manifests import put_manifest
from registry.progress import NullProgress, Progress
from registry.reference import Reference
from registry.session import Session
from registry.upload import Blob, upload_growing

__all__ = ["BlobPusher", "PushAbandoned", "by_repository", "check_manifest"]

log = logging.getLogger(__name__)


class PushAbandoned(WharfieError):
    """The push was given up (a cancelled or failed build) before this blob was confirmed."""


@dataclass
class _Stream:
    """A blob uploaded into `repo` while it is written; `outcome` is its digest, or None if it was not sent."""

    growing: GrowingBlob
    repo: Reference
    outcome: Future[Digest | None] = field(default_factory=Future)


@dataclass
class _Job:
    """One blob to a list of repositories, in order; one future per repository."""

    blob: Blob
    repos: list[Reference]
    outcomes: list[Future[str]]
    primes: set[Reference] = field(default_factory=set)  # repositories whose first job this is


def _settle(outcome: Future[str], *, result: str | None = None, error: BaseException | None = None) -> None:
    """Resolve `outcome` unless `abandon` already has (a push still running when the build gave up)."""
    try:
        if error is not None:
            outcome.set_exception(error)
        else:
            outcome.set_result(result or "")
    except InvalidStateError:
        pass


class BlobPusher:
    """Pushes blobs to repositories in the background; `push_image` puts manifests after them. Thread-safe.

    Its workers are daemon threads: a push blocked on a registry that never answers must not keep a
    cancelled build from ending (concurrent.futures' pool would be joined at exit).
    """

    def __init__(self, session: Session, *, mount_sources: Sequence[Reference] = (),
                 progress: Progress | None = None) -> None:
        self.session = session
        self.mount_sources = tuple(mount_sources)
        self.progress = progress or NullProgress()
        self._size = max(1, session.options.push_concurrency)
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._workers: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._outcomes: dict[tuple[Reference, Digest], Future[str]] = {}
        self._present: dict[Digest, list[Reference]] = {}  # repositories known to hold each blob
        self._primed: dict[Reference, threading.Event] = {}
        self._refused: dict[Reference, BaseException] = {}  # a repository whose first push failed
        self._moving: dict[tuple[str, Digest], threading.Lock] = {}  # one push of a digest per registry at a time
        self._streams: list[_Stream] = []
        self._closed = False

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is not None:
            self.abandon()
        self.close()

    # -- starting ----------------------------------------------------------------------------
    def add(self, blob: Blob, repos: Iterable[Reference]) -> list[Future[str]]:
        """Start making `blob` present in each of `repos` (in that order); one future per repository.

        A (repository, digest) already added is not pushed again: its first future is returned.
        """
        with self._lock:
            if self._closed:
                raise PushAbandoned("the push is over: no blob can be added")
            futures: list[Future[str]] = []
            job = _Job(blob, [], [])
            for repo in dict.fromkeys(r.repo_ref for r in repos):
                key = (repo, blob.digest)
                if key not in self._outcomes:
                    outcome: Future[str] = Future()
                    self._outcomes[key] = outcome
                    job.repos.append(repo)
                    job.outcomes.append(outcome)
                    if repo not in self._primed:
                        self._primed[repo] = threading.Event()
                        job.primes.add(repo)
                futures.append(self._outcomes[key])
            if job.repos:
                self._queue.put(job)
                if len(self._workers) < self._size:
                    worker = threading.Thread(target=self._work, name=f"push-{len(self._workers)}", daemon=True)
                    self._workers.append(worker)
                    worker.start()
            return futures

    def stream(self, growing: GrowingBlob, repos: Iterable[Reference]) -> None:
        """Start uploading a blob still being written into the first of `repos` (a head start for its push).

        Once the blob is `add`ed, its push to that repository takes the stream's outcome; the other
        repositories mount it from there as usual.
        """
        repo = next(iter(dict.fromkeys(r.repo_ref for r in repos)), None)
        stream = _Stream(growing, repo) if repo is not None else None
        with self._lock:
            if stream is not None and not self._closed:
                self._streams.append(stream)
            else:
                stream = None
        if stream is None:
            growing.release()  # nobody will read it: the writer then keeps no descriptor for it
            return
        threading.Thread(target=self._upload_growing, args=(stream,), name="push-stream", daemon=True).start()

    def _upload_growing(self, stream: _Stream) -> None:
        try:
            stream.outcome.set_result(upload_growing(self.session, stream.repo, stream.growing,
                                                     progress=self.progress))
        except BaseException as exc:  # noqa: BLE001 - the ordinary push of the finished blob follows
            stream.outcome.set_exception(exc)
        finally:
            stream.growing.release()

    def _await_streams(self, repo: Reference, digest: Digest) -> bool:
        """Wait for the streams of this blob into `repo`'s registry; True if one delivered it into `repo`.

        One that delivered it into another repository of the registry makes that repository a holder
        to mount from (the cache's push of a layer is often added before the destination's).
        """
        with self._lock:
            streams = [s for s in self._streams if s.repo.registry == repo.registry and s.growing.digest == digest]
        delivered = False
        for stream in streams:
            try:
                if stream.outcome.result() != digest:
                    continue  # not sent: too small to stream
            except BaseException as exc:  # noqa: BLE001 - reported by the ordinary push if it fails too
                log.debug("streaming %s to %s failed, pushing it again: %s", digest.short, stream.repo.name, exc)
                continue
            with self._lock:
                holders = self._present.setdefault(digest, [])
                if stream.repo not in holders:
                    holders.append(stream.repo)
            delivered = delivered or stream.repo == repo
        return delivered

    def _work(self) -> None:
        while (job := self._queue.get()) is not None:
            self._run(job)

    def _run(self, job: _Job) -> None:
        for repo, outcome in zip(job.repos, job.outcomes):
            try:
                if not outcome.set_running_or_notify_cancel():
                    continue  # abandoned (the `finally` still lets this repository's other pushes go)
                if repo not in job.primes:
                    self._primed[repo].wait()
                    if repo in self._refused:  # the repository's first push failed: the rest would too
                        raise self._refused[repo]
                _settle(outcome, result=self._push_one(repo, job.blob))
            except BaseException as exc:  # noqa: BLE001 - handed to whoever waits on this blob
                if repo in job.primes:
                    self._refused[repo] = exc
                _settle(outcome, error=exc)
            finally:
                if repo in job.primes:
                    self._primed[repo].set()

    def _push_one(self, repo: Reference, blob: Blob) -> str:
        with self._lock:
            moving = self._moving.setdefault((repo.registry, blob.digest), threading.Lock())
        with moving:
            if self._await_streams(repo, blob.digest):
                return "pushed while written"
            with self._lock:
                holders = [r for r in self._present.get(blob.digest, []) if r != repo]
            how = push_blob(self.session, repo, blob, [*holders, *self.mount_sources], self.progress)
            with self._lock:
                self._present.setdefault(blob.digest, []).append(repo)
            return how

    # -- finishing ---------------------------------------------------------------------------
    def wait(self, futures: Sequence[Future[str]]) -> None:
        """Wait for `futures`; the first failure is raised (those of them not started are dropped)."""
        done, pending = wait(futures, return_when=FIRST_EXCEPTION)
        failed = next((f for f in futures if f in done and not f.cancelled() and f.exception() is not None), None)
        if failed is None:
            return
        for future in pending:
            future.cancel()
        raise failed.exception()  # type: ignore[misc]

    def failure(self, repos: Iterable[Reference]) -> BaseException | None:
        """The first failure so far of a push into `repos` (to stop a build early), else None."""
        wanted = {r.repo_ref for r in repos}
        with self._lock:
            outcomes = [f for (repo, _), f in self._outcomes.items() if repo in wanted]
        return next((f.exception() for f in outcomes if f.done() and not f.cancelled() and f.exception()), None)

    def push_image(self, destinations: Sequence[Reference], manifest_raw: bytes, manifest_media_type: str,
                   config_raw: bytes, layers: Sequence[Layer]) -> Digest:
        """Every blob of the image in every destination repository, then its manifest under each tag."""
        if not destinations:
            raise WharfieError("nothing to push to: no destination given")
        blobs: list[Blob] = [BytesBlob(config_raw), *layers]
        check_manifest(manifest_raw, manifest_media_type, blobs)
        by_repo = by_repository(destinations)
        futures: dict[Reference, list[tuple[Digest, Future[str]]]] = {repo: [] for repo in by_repo}
        for blob in blobs:
            for repo, future in zip(by_repo, self.add(blob, by_repo)):
                futures[repo].append((blob.digest, future))
        self.wait([future for pairs in futures.values() for _, future in pairs])
        for repo, pairs in futures.items():
            log.debug("%s: %s", repo.name, ", ".join(f"{d.short} {f.result()}" for d, f in dict(pairs).items()))
        digest = Digest.of_bytes(manifest_raw)
        for refs in by_repo.values():
            for ref in refs:
                put_manifest(self.session, ref, manifest_raw, manifest_media_type)
                log.info("pushed %s@%s", ref, digest)
        return digest

    def abandon(self) -> None:
        """Give up every push not confirmed yet, at once (a cancelled or failed build).

        Pushes not started are never sent; whoever waits on a running one is told now, and its
        thread, a daemon, ends with its request (or with the process). No manifest follows.
        """
        with self._lock:
            self._closed = True
            outcomes = list(self._outcomes.values())
            primed = list(self._primed.values())
            streams, self._streams = self._streams, []
        for stream in streams:
            stream.growing.stop("the push was abandoned")  # its thread cancels the upload session after its chunk
        for outcome in outcomes:
            if not outcome.cancel():
                _settle(outcome, error=PushAbandoned("the push was abandoned"))
        for event in primed:
            event.set()
        self._stop_workers()

    def close(self) -> None:
        """Let the pushes added so far end, then stop the workers (they are joined).

        A stream whose blob was never added (a layer the image did not keep) is given up.
        """
        with self._lock:
            self._closed = True
            streams = list(self._streams)  # kept: a push still queued may yet take a stream's outcome
        for stream in streams:
            stream.growing.fail("the build did not keep this blob")  # a blob complete by now is not affected
        for worker in self._stop_workers():
            worker.join()

    def _stop_workers(self) -> list[threading.Thread]:
        with self._lock:
            workers, self._workers = self._workers, []
        for _ in workers:
            self._queue.put(None)
        return workers


def check_manifest(manifest_raw: bytes, media_type: str, blobs: Sequence[Blob]) -> None:
    """Refuse before any request a manifest naming a blob we were not given (it could never be complete)."""
    manifest = Manifest.from_bytes(manifest_raw, media_type)
    have = {b.digest: b.size for b in blobs}
    for desc in (manifest.config, *manifest.layers):
        if desc.digest not in have:
            raise WharfieError(f"the manifest names blob {desc.digest} but it was not given to push")
        if have[desc.digest] != desc.size:
            raise WharfieError(f"blob {desc.digest}: the manifest says {desc.size} bytes, the blob has "
                               f"{have[desc.digest]}")


def by_repository(destinations: Sequence[Reference]) -> dict[Reference, list[Reference]]:
    """Destinations grouped by repository; an untagged one means `latest`."""
    groups: dict[Reference, list[Reference]] = {}
    for ref in destinations:
        groups.setdefault(ref.repo_ref, []).append(ref if (ref.tag or ref.digest) else ref.with_tag("latest"))
    return groups
