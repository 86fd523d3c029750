"""A whole build: parse the Dockerfile, build the stages the target needs, deliver the image."""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from builder.cache.layer_cache import CACHE_STEPS_ANNOTATION, LayerCache, encode_steps
from builder.context.dockerignore import load_ignore
from builder.engine.early_push import EarlyPush
from builder.engine.inplace_stage import stage_builder_class
from builder.engine.options import BuildOptions
from builder.engine.output import BuiltImage, deliver
from builder.engine.removal import BackgroundRemoval
from builder.engine.session import BuildSession, StageOutput, log_step_output
from builder.execution.binfmt import require_runnable
from builder.execution.stacked_rootfs import StackedRootfs
from builder.frontend import instructions as ins
from builder.frontend.limits import MAX_DOCKERFILE_SIZE
from builder.frontend.plan import BuildPlan, parse_dockerfile
from builder.image.platforms import stage_platform
from builder.image.state import render_manifest, timestamp
from builder.image.unpacked_store import UnpackedStore
from oci.blobstore import BlobStore
from oci.digest import Digest
from oci.errors import DockerfileError, WharfieError
from oci.models import Manifest
from registry.client import RegistryClient
from registry.pusher import BlobPusher
from registry.reference import Reference, parse_reference

__all__ = ["BuildResult", "LayerSummary", "build_image"]

log = logging.getLogger("wharfie")


@dataclass(frozen=True)
class LayerSummary:
    """One layer of the built image, as its manifest and config list it."""

    digest: Digest  # of the compressed blob
    diff_id: Digest  # of the uncompressed tar
    size: int
    media_type: str


@dataclass(frozen=True)
class BuildResult:
    """What a build made and where it went."""

    image: BuiltImage  # manifest, config and layers, as delivered
    references: dict[str, str]  # each destination as given -> REF@DIGEST pushed (empty: nothing pushed)
    timings: dict[str, float]  # seconds: "parse", "stage N" (or "stage N (name)") each, "output", "attest", "total"

    @property
    def digest(self) -> Digest:
        return self.image.digest

    @property
    def layers(self) -> tuple[LayerSummary, ...]:
        described = Manifest.from_bytes(self.image.manifest_raw).layers
        return tuple(LayerSummary(desc.digest, diff_id, desc.size, desc.media_type)
                     for desc, diff_id in zip(described, self.image.state.config.diff_ids, strict=True))

    @property
    def pushed(self) -> list[str]:
        return list(self.references.values())

    def summary(self) -> str:
        if self.references:
            return "\n".join(f"pushed {ref}" for ref in self.references.values())
        return f"built {self.digest}"


class _Stopwatch:
    """Seconds per phase of a build, for `BuildResult.timings`."""

    def __init__(self) -> None:
        self.start = self._last = time.monotonic()
        self.laps: dict[str, float] = {}

    def lap(self, name: str) -> None:
        now = time.monotonic()
        self.laps[name] = round(now - self._last, 3)
        self._last = now

    def total(self) -> dict[str, float]:
        return {**self.laps, "total": round(time.monotonic() - self.start, 3)}


def _read_dockerfile(path: Path) -> str:
    if path.stat().st_size > MAX_DOCKERFILE_SIZE.value:  # before reading it all into memory
        raise DockerfileError(MAX_DOCKERFILE_SIZE.exceeded("the Dockerfile"), file=path.name)
    try:
        return path.read_text()
    except UnicodeDecodeError:
        raise DockerfileError("not a text file", file=path.name) from None


def _cache_repo(options: BuildOptions) -> Reference | None:
    """The cache's repository, else <first destination>/cache (the CLI gives $CI_REGISTRY_IMAGE/cache in a
    GitLab job: the engine reads no environment)."""
    if not options.cache.enabled:
        return None
    if options.cache.repo:
        return parse_reference(options.cache.repo).repo_ref
    if options.output.destinations:
        first = parse_reference(options.output.destinations[0])
        return parse_reference(f"{first.name}/cache").repo_ref
    log.warning("warning: --cache without --cache-repo or a --destination: no layer cache")
    return None


def _check_run_platforms(plan: BuildPlan, options: BuildOptions) -> None:
    """Before anything is pulled: every RUN of a foreign platform has an interpreter (builder/execution/binfmt.py)."""
    for stage in plan.needed:
        root = stage
        while root.base_stage is not None:
            root = plan.stages[root.base_stage]
        run = next((i for i in stage.instructions if isinstance(i, ins.RUN)), None)
        if run is not None:
            try:
                require_runnable(stage_platform(root.platform, options.platform))
            except WharfieError as exc:
                raise WharfieError(f"{options.dockerfile.name}:{run.line}: {exc}") from None


def _registries(options: BuildOptions, plan: BuildPlan, cache_repo: Reference | None,
                client: RegistryClient) -> list[str]:
    """The registries the build will certainly talk to: destinations, cache, the stages' bases (and mirrors)."""
    found = [parse_reference(d).registry for d in options.output.destinations]
    found += [ref.registry for ref in (cache_repo,) if ref is not None]
    for name in (*options.cache.cache_from, *(s.base for s in plan.needed if s.base_stage is None and not s.is_scratch)):
        try:
            found += [candidate.registry for candidate in client.read_candidates(parse_reference(name))]
        except WharfieError:
            continue  # a bad base is reported, with its line, when its stage starts
    return found


def _early_push(options: BuildOptions, plan: BuildPlan, pusher: BlobPusher) -> EarlyPush | None:
    """The target stage's layers go to the destinations as they are written (builder/engine/early_push.py)."""
    if options.output.no_push or not options.output.destinations:
        return None
    destinations = [parse_reference(d) for d in options.output.destinations]
    return EarlyPush(pusher, destinations, plan.needed[-1].index)


def _layer_store(options: BuildOptions) -> UnpackedStore | None:
    """The machine's unpacked layers, where stage trees may stack on them (builder/engine/stage_tree.py)."""
    if not options.layer_store:
        return None
    store = UnpackedStore(options.cache_dir / "unpacked", userxattr=options.isolation.rootless)
    work_root = options.work_dir or Path(tempfile.gettempdir())
    if not StackedRootfs.stacking_works(store.root, work_root, userxattr=store.userxattr):
        return None
    return store


def build_image(options: BuildOptions, *, client: RegistryClient,
                step_output: StageOutput = log_step_output) -> BuildResult:
    """Build the image `options` describe; RUN steps' output lines go to `step_output` (unless quiet)."""
    started, clock = time.time(), _Stopwatch()
    text = _read_dockerfile(options.dockerfile)
    plan = parse_dockerfile(text, filename=options.dockerfile.name, build_args=options.build_args,
                            target=options.target, target_platform=str(options.platform))
    _check_run_platforms(plan, options)
    cache_repo = _cache_repo(options)
    # Before any step runs: one running in place could rewrite docker's config.json and plant a credential helper.
    client.resolve_credentials(_registries(options, plan, cache_repo, client))
    clock.lap("parse")
    store = BlobStore(options.cache_dir)
    cache: LayerCache | None = None
    # One pusher for the cache's entries and the image: a layer goes to each registry once.
    pusher = client.blob_pusher(mount_sources=(cache_repo,) if cache_repo else ())
    work_root = options.work_dir or Path(tempfile.gettempdir())
    work_root.mkdir(parents=True, exist_ok=True)
    work_dir = Path(tempfile.mkdtemp(prefix="wharfie-build-", dir=work_root))  # removed in the `finally` below
    removal = BackgroundRemoval()
    session: BuildSession | None = None
    try:
        cache = LayerCache(options.cache, cache_repo, client=client, store=store,
                           platform=options.platform, epoch=options.source_date_epoch, pusher=pusher)
        for source in options.cache.cache_from:
            cache.add_source(parse_reference(source))
        session = BuildSession(options=options, client=client, store=store, work_dir=work_dir,
                               ignore=load_ignore(options.context, options.dockerfile), cache=cache,
                               step_output=step_output, early_push=_early_push(options, plan, pusher),
                               layer_store=_layer_store(options))
        result = None
        for warning in plan.warnings:
            log.warning("warning: %s", warning)
        for stage in plan.needed:
            log.info("stage %d%s", stage.index, f" ({stage.name})" if stage.name else "")
            result = stage_builder_class(options.isolation.mode)(session, plan, stage).run()
            session.results[stage.index] = result
            clock.lap(f"stage {stage.index}" + (f" ({stage.name})" if stage.name else ""))
        assert result is not None
        removal.start([*session.trees, *(r.rootfs for r in session.results.values()  # while the push ends
                                           if r.rootfs is not None and r.tree is None)])
        state = result.state
        if options.labels:
            labels = {**(state.config.config.labels or {}), **options.labels}
            state = state.with_config(state.config.with_container(labels=labels))
        created = timestamp(options.source_date_epoch)
        annotations = {CACHE_STEPS_ANNOTATION: encode_steps(result.step_keys)} if options.cache.enabled else None
        manifest_raw, config_raw, media_type = render_manifest(
            state, oci=options.output.manifest_format == "oci", created=created, annotations=annotations)
        image = BuiltImage(state, manifest_raw, media_type, config_raw)
        cache.wait()  # cache entries are complete before the image that names them
        pushed = deliver(image, options.output, pusher)
        clock.lap("output")
        if options.attest.wanted:
            from builder.engine.attestations import attest_image, seconds_timestamp  # only a build that attests

            attest_image(session, plan, image, pushed=bool(pushed), started=seconds_timestamp(started))
            clock.lap("attest")
        references = dict(zip(options.output.destinations, pushed, strict=False))
        return BuildResult(image, references, clock.total())
    except Exception:
        if cache is not None:
            cache.wait()  # a failed build still stores its finished steps, and the store's threads end
        pusher.abandon()  # the image's own layers are not needed any more
        raise
    except BaseException:
        pusher.abandon()  # cancelled: what has not started is dropped, what has finishes whole
        if cache is not None:
            cache.abandon()
        raise
    finally:
        if cache is not None:
            cache.wait()
        pusher.close()
        removal.join()
        for tree in session.trees if session is not None else ():
            tree.remove()  # a failed build's stacked trees: unmounted before their directories go
        shutil.rmtree(work_dir, ignore_errors=True)
