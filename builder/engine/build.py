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
from builder.engine.attestations import attest_image, seconds_timestamp
from builder.engine.inplace_stage import stage_builder_class
from builder.engine.options import BuildOptions
from builder.engine.output import BuiltImage, deliver
from builder.engine.session import BuildSession, StageOutput, log_step_output
from builder.execution.binfmt import require_runnable
from builder.frontend import instructions as ins
from builder.frontend.limits import MAX_DOCKERFILE_SIZE
from builder.frontend.plan import BuildPlan, parse_dockerfile
from builder.image.platforms import stage_platform
from builder.image.state import render_manifest, timestamp
from oci.blobstore import BlobStore
from oci.digest import Digest
from oci.errors import DockerfileError, WharfieError
from oci.models import Manifest
from registry.client import RegistryClient
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


def build_image(options: BuildOptions, *, client: RegistryClient,
                step_output: StageOutput = log_step_output) -> BuildResult:
    """Build the image `options` describe; RUN steps' output lines go to `step_output` (unless quiet)."""
    started, clock = seconds_timestamp(), _Stopwatch()
    text = _read_dockerfile(options.dockerfile)
    plan = parse_dockerfile(text, filename=options.dockerfile.name, build_args=options.build_args,
                            target=options.target, target_platform=str(options.platform))
    _check_run_platforms(plan, options)
    clock.lap("parse")
    store = BlobStore(options.cache_dir)
    work_root = options.work_dir or Path(tempfile.gettempdir())
    work_root.mkdir(parents=True, exist_ok=True)
    work_dir = Path(tempfile.mkdtemp(prefix="wharfie-build-", dir=work_root))
    cache: LayerCache | None = None
    try:
        cache = LayerCache(options.cache, _cache_repo(options), client=client, store=store,
                           platform=options.platform, epoch=options.source_date_epoch)
        for source in options.cache.cache_from:
            cache.add_source(parse_reference(source))
        session = BuildSession(options=options, client=client, store=store, work_dir=work_dir,
                               ignore=load_ignore(options.context, options.dockerfile), cache=cache,
                               step_output=step_output)
        result = None
        for warning in plan.warnings:
            log.warning("warning: %s", warning)
        for stage in plan.needed:
            log.info("stage %d%s", stage.index, f" ({stage.name})" if stage.name else "")
            result = stage_builder_class(options.isolation.mode)(session, plan, stage).run()
            session.results[stage.index] = result
            clock.lap(f"stage {stage.index}" + (f" ({stage.name})" if stage.name else ""))
        assert result is not None
        state = result.state
        if options.labels:
            labels = {**(state.config.config.labels or {}), **options.labels}
            state = state.with_config(state.config.with_container(labels=labels))
        created = timestamp(options.source_date_epoch)
        annotations = {CACHE_STEPS_ANNOTATION: encode_steps(result.step_keys)} if options.cache.enabled else None
        manifest_raw, config_raw, media_type = render_manifest(
            state, oci=options.output.manifest_format == "oci", created=created, annotations=annotations)
        image = BuiltImage(state, manifest_raw, media_type, config_raw)
        cache.wait()  # cached layers are then in the cache repo, and the push mounts them from there
        pushed = deliver(image, options.output, client, mount_sources=(cache.repo,) if cache.repo else ())
        clock.lap("output")
        if options.attest.wanted:
            attest_image(session, plan, image, pushed=bool(pushed), started=started)
            clock.lap("attest")
        references = dict(zip(options.output.destinations, pushed, strict=False))
        return BuildResult(image, references, clock.total())
    except Exception:
        if cache is not None:
            cache.wait()  # a failed build still stores its finished steps, and the store's threads end
        raise
    except BaseException:
        if cache is not None:
            cache.abandon()  # cancelled: what has not started is dropped, what has finishes whole
        raise
    finally:
        if cache is not None:
            cache.wait()
        shutil.rmtree(work_dir, ignore_errors=True)
