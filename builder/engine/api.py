"""The Python API: one call builds a Dockerfile and delivers the image, as `wharfie build` does.

    import builder

    result = builder.build("app/", destinations=["registry.example.com/group/app:1.0"],
                           build_args={"VERSION": "1.0"}, cache=True)
    print(result.digest, result.references["registry.example.com/group/app:1.0"])

`build` is what the CLI runs: each keyword is the option of the `wharfie
build` flag with the same name (`--build-arg` is `build_args`, `--no-push` is
`push=False`), and this function alone turns them into the engine's option
values (`BuildOptions`): one constructor for the CLI and for programs. It
reads no environment variable and parses no flag text; the CLI does that
($SOURCE_DATE_EPOCH, $CI_REGISTRY_IMAGE, HOST=PATH certificates, durations)
and passes values. Errors are `oci.errors.WharfieError`s whose text is one
line naming what is at fault.

RUN steps need root, or a user namespace the caller runs in: the CLI enters
one itself for a non-root user (builder/execution/rootless.py re-runs the
whole command); a program calling `build` as a non-root user does that first.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path

from builder.attest.options import AttestOptions
from builder.cache.layer_cache import CacheOptions
from builder.context.files import context_file
from builder.engine.build import BuildResult, LayerSummary, build_image
from builder.engine.options import BuildOptions, OutputOptions, default_cache_dir
from builder.engine.registry_setup import registry_client
from builder.engine.session import StageOutput, log_step_output
from builder.execution.isolation import Isolation, Requested, resolve_isolation
from builder.execution.run_mounts import SecretSource
from oci.errors import WharfieError
from oci.models import Platform, host_platform
from registry.client import RegistryClient
from registry.options import RegistryOptions
from registry.reference import parse_reference

__all__ = ["BuildResult", "LayerSummary", "build"]

PathLike = str | os.PathLike[str]


def build(
    context: PathLike,
    *,
    dockerfile: PathLike | None = None,
    destinations: Sequence[str] = (),
    build_args: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    target: str | None = None,
    platform: str | Platform | None = None,
    push: bool = True,
    cache: bool = False,
    cache_repo: str | None = None,
    cache_ttl: _dt.timedelta = _dt.timedelta(hours=336),
    push_cache: bool = True,
    cache_copy_layers: bool = True,
    cache_run_layers: bool = True,
    cache_from: Sequence[str] = (),
    digest_file: PathLike | None = None,
    image_name_with_digest_file: PathLike | None = None,
    oci_layout_path: PathLike | None = None,
    manifest_format: str = "oci",
    compression: str = "gzip",
    compression_level: int | None = None,
    source_date_epoch: int | None = None,
    network: str = "default",
    allow_host_network: bool = False,
    cache_dir: PathLike | None = None,
    work_dir: PathLike | None = None,
    isolation: Requested | Isolation = "auto",
    force: bool = False,
    secrets: Sequence[SecretSource] = (),
    ignore_paths: Sequence[str] = (),
    snapshot_mode: str = "redo",
    sbom: bool = False,
    provenance: bool = False,
    sbom_file: PathLike | None = None,
    provenance_file: PathLike | None = None,
    registry: RegistryOptions | None = None,
    insecure: bool = False,
    quiet: bool = False,
    step_output: StageOutput = log_step_output,
    adjust: Callable[[BuildOptions], BuildOptions] | None = None,
    around: Callable[[RegistryClient], AbstractContextManager[object]] | None = None,
) -> BuildResult:
    """Build `context`'s Dockerfile and deliver the image; see `wharfie build --help` for each option.

    The less obvious ones: `dockerfile` relative is looked for here, then in
    the context (default `Dockerfile` there); `platform` (`os/arch[/variant]`)
    picks bases from indexes and labels the image, default this machine's;
    `push=False` builds without pushing (no `destinations` pushes nothing
    either); `cache` uses and fills the layer cache in `cache_repo` (default
    `<first destination>/cache`); `source_date_epoch` clamps every timestamp
    (0 is `--reproducible`); `isolation` is `auto`, `sandbox`, `in-place` or
    an already resolved `Isolation`; `registry` carries TLS, mirrors, retries
    and credentials for every registry (`insecure`: push to the destinations
    over plain HTTP); `step_output` receives each line a RUN step prints
    (default: logged on `wharfie.step`), nothing with `quiet`. `adjust`
    refines the options made from these keywords (the CLI's kaniko flags) and
    `around` wraps the build given the registry client (the CLI's live view).
    """
    for destination in destinations:
        parse_reference(destination)  # a bad destination fails now, not after the build
    context_dir = _context_dir(Path(context))
    attest = AttestOptions(sbom=sbom or sbom_file is not None, provenance=provenance or provenance_file is not None,
                           sbom_file=_output_file(sbom_file, "sbom_file"),
                           provenance_file=_output_file(provenance_file, "provenance_file"))
    options = BuildOptions(
        context=context_dir,
        dockerfile=_dockerfile_path(dockerfile, context_dir),
        output=OutputOptions(
            destinations=tuple(destinations), no_push=not push, digest_file=_optional_path(digest_file),
            image_name_with_digest_file=_optional_path(image_name_with_digest_file),
            oci_layout_path=_optional_path(oci_layout_path), manifest_format=manifest_format,
            compression=compression, compression_level=compression_level),
        build_args=dict(build_args or {}),
        labels=dict(labels or {}),
        target=target,
        platform=Platform.parse(platform) if isinstance(platform, str) else platform or host_platform(),
        platform_requested=platform is not None,
        source_date_epoch=source_date_epoch,
        network=network,
        allow_host_network=allow_host_network,
        cache_dir=Path(cache_dir) if cache_dir is not None else default_cache_dir(),
        cache=CacheOptions(enabled=cache, repo=cache_repo, ttl_seconds=int(cache_ttl.total_seconds()),
                           push=push_cache, cache_copy_layers=cache_copy_layers, cache_run_layers=cache_run_layers,
                           cache_from=tuple(cache_from)),
        work_dir=_optional_path(work_dir),
        quiet=quiet,
        isolation=isolation if isinstance(isolation, Isolation) else resolve_isolation(
            isolation, force=force, work_root=Path(work_dir or tempfile.gettempdir())),
        secrets=tuple(secrets),
        ignore_paths=tuple(ignore_paths),
        snapshot_mode=snapshot_mode,
        attest=attest,
    )
    if adjust is not None:
        options = adjust(options)
    client = registry_client(registry, insecure_destinations=destinations if insecure else (), quiet=quiet)
    with client, (around(client) if around is not None else contextlib.nullcontext()):
        return build_image(options, client=client, step_output=step_output)


def _context_dir(path: Path) -> Path:
    if not path.is_dir():
        raise WharfieError(f"build context {path} is not a directory")
    return path.resolve()


def _dockerfile_path(dockerfile: PathLike | None, context: Path) -> Path:
    """A relative Dockerfile is looked for from the current directory, then in the context.

    Without one named, the context's own `Dockerfile`, as docker builds it: never one that happens to be
    in the current directory.
    """
    if dockerfile is None:
        found = context_file(context, context / "Dockerfile", what="Dockerfile")
        if found is None:
            raise WharfieError(f"no Dockerfile in {context}")
        return found
    name = Path(dockerfile)
    for candidate in (name, context / name):
        found = context_file(context, candidate, what="Dockerfile")  # never a link out of the context
        if found is not None:
            return found
    raise WharfieError(f"Dockerfile {name} not found (looked in the current directory and in {context})")


def _optional_path(path: PathLike | None) -> Path | None:
    return Path(path) if path is not None else None


def _output_file(path: PathLike | None, what: str) -> Path | None:
    """A file the build writes at the end: its directory must exist now, not after the build."""
    if path is None:
        return None
    file = Path(path)
    if not file.resolve().parent.is_dir():
        raise WharfieError(f"{what}: {file.parent} is not a directory")
    return file
