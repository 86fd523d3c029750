"""`wharfie build`: a thin layer over the Python API (`builder.build`, builder/engine/api.py).

Each flag is declared once, in `BUILD_FLAGS`, with the keyword of `build` it
sets and how its text becomes that keyword's value (KEY=VALUE pairs, true or
false, durations, `--secret` specs; the environment where a default comes
from it: $SOURCE_DATE_EPOCH, $CI_REGISTRY_IMAGE). Click applies the
conversion while parsing, so the command's body only re-enters a user
namespace when it must and calls `build(**values)`: the API alone makes the
engine's options. The registry and logging flags are the ones every command
shares (builder/cli/flags.py).
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import click

from builder.cli.cancel import private_tmpdir
from builder.cli.flags import logging_flags, registry_flags
from builder.cli.gitlab_destinations import apply_gitlab_conventions, gitlab_options
from builder.cli.kaniko_argv import KanikoCompatibleCommand
from builder.cli.kaniko_flags import clean_up_after_build, kaniko_options, kaniko_settings

log = logging.getLogger("wharfie")

__all__ = ["BUILD_FLAGS", "BuildFlag", "build"]

_LAST_EPOCH = 253402300799  # 9999-12-31T23:59:59Z


@dataclass(frozen=True)
class BuildFlag:
    """One flag of `wharfie build`: its names, the `builder.build` keyword it sets, and how."""

    names: tuple[str, ...]  # "--build-arg", and a short form if any
    keyword: str | None  # None: accepted for kaniko's sake and ignored
    convert: Callable[[Any], Any] | None = None  # the flag's value (a tuple when repeatable) -> the keyword's
    click_options: Mapping[str, Any] = field(default_factory=dict)  # help, type, default, multiple, ...

    @property
    def dest(self) -> str:
        return self.keyword or self.names[0].lstrip("-").replace("-", "_")

    def option(self) -> Callable[[Any], Any]:
        convert = self.convert
        callback = None if convert is None else (lambda _ctx, _param, value: convert(value))
        return click.option(*self.names, self.dest, callback=callback, **self.click_options)


def _flag(*names: str, keyword: str | None, convert: Callable[[Any], Any] | None = None,
          **click_options: Any) -> BuildFlag:
    return BuildFlag(names, keyword, convert, click_options)


# -- conversions: flag text to API values -----------------------------------------------------


def _context(text: str | None) -> str | None:
    """kaniko's `dir://DIR` is DIR; other schemes (git, s3) are not supported."""
    if text is None:
        return None
    if text.startswith("dir://"):
        return text[len("dir://"):]
    if "://" in text:
        raise click.BadParameter(f"unsupported context {text!r}: only local directories (dir://) are supported")
    return text


def _pairs(values: tuple[str, ...], *, from_env: bool = False) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in values:
        key, sep, value = pair.partition("=")
        if not key or not (sep or from_env):
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}")
        if not sep:
            if key not in os.environ:
                continue  # docker: `--build-arg NAME` with NAME unset passes nothing
            value = os.environ[key]
        out[key] = value
    return out


def _build_args(values: tuple[str, ...]) -> dict[str, str]:
    return _pairs(values, from_env=True)


def _truthy(value: str) -> bool:
    lowered = value.lower()
    if lowered in ("true", "1", "yes", "t"):  # Go's strconv.ParseBool spellings too, as kaniko takes them
        return True
    if lowered in ("false", "0", "no", "f"):
        return False
    raise click.BadParameter(f"expected true or false, got {value!r}")


def _epoch(reproducible: bool) -> int | None:
    """$SOURCE_DATE_EPOCH when set, else 0 with --reproducible, else None (timestamps of now)."""
    raw = os.environ.get("SOURCE_DATE_EPOCH")
    if raw:
        if not raw.isdigit() or not raw.isascii():
            raise click.BadParameter(f"SOURCE_DATE_EPOCH must be a whole number of seconds, got {raw!r}")
        if int(raw) > _LAST_EPOCH:  # timestamps are written as RFC 3339, years up to 9999
            raise click.BadParameter(f"SOURCE_DATE_EPOCH {raw} is after the year 9999")
        return int(raw)
    return 0 if reproducible else None


def _check_compression_level(compression: str, level: int | None) -> None:
    """--compression-level, checked now (by making a compressor) rather than at the first layer."""
    if level is None:
        return
    from layers.compress import new_compressor  # here: the engine need not load for --help

    try:
        new_compressor(compression, level)
    except (ValueError, OverflowError) as exc:
        raise click.BadParameter(f"{level} for {compression}: {exc}", param_hint="--compression-level") from None


def _cache_repo(value: str | None) -> str | None:
    """--cache-repo, else $CI_REGISTRY_IMAGE/cache in a GitLab job (the engine's default: <first destination>/cache)."""
    image = os.environ.get("CI_REGISTRY_IMAGE")
    return value or (f"{image}/cache" if image else None)


def _secrets(values: tuple[str, ...]) -> tuple[Any, ...]:
    from builder.execution.run_mounts import parse_secret_flag  # here: the engine need not load for --help

    return tuple(map(parse_secret_flag, values))


def _age(text: str) -> Any:
    from registry.cleanup import parse_age  # here: the registry client need not load for --help

    return parse_age(text)


def _negate(value: bool) -> bool:
    return not value


BUILD_FLAGS: tuple[BuildFlag, ...] = (
    _flag("--context", "-c", keyword="context", convert=_context,
          help="Build context directory (also dir://DIR); the CONTEXT argument does the same."),
    _flag("--dockerfile", "-f", keyword="dockerfile",
          help="Path to the Dockerfile (relative: from here, then in the context)."),
    _flag("--destination", "-d", keyword="destinations", multiple=True,
          help="Image reference to push to (repeatable)."),
    _flag("--build-arg", keyword="build_args", convert=_build_args, multiple=True,
          help="KEY=VALUE, or KEY to take it from the environment."),
    _flag("--label", keyword="labels", convert=_pairs, multiple=True,
          help="KEY=VALUE label to add to the image (repeatable)."),
    _flag("--target", keyword="target", help="Build up to this stage (name or index)."),
    _flag("--platform", "--custom-platform", keyword="platform",
          help="os/arch[/variant] of the image (default: this machine's); picks the base from an index."),
    _flag("--no-push", keyword="push", convert=_negate, is_flag=True, help="Build only; push nothing."),
    _flag("--skip-unused-stages", keyword=None, is_flag=False, flag_value="true", default="true", hidden=True,
          help="Accepted for kaniko: only the stages the target needs are ever built."),
    _flag("--insecure", keyword="insecure", is_flag=True, help="Push to the destinations over plain HTTP."),
    _flag("--digest-file", keyword="digest_file", type=click.Path(dir_okay=False),
          help="Write the pushed image's digest here."),
    _flag("--image-name-with-digest-file", keyword="image_name_with_digest_file", type=click.Path(dir_okay=False),
          help="Write REF@DIGEST for each destination here."),
    _flag("--oci-layout-path", keyword="oci_layout_path", type=click.Path(file_okay=False),
          help="Also write the image as an OCI layout here."),
    _flag("--manifest-format", keyword="manifest_format", type=click.Choice(["oci", "docker"]), default="oci",
          show_default=True),
    _flag("--compression", keyword="compression", type=click.Choice(["gzip", "zstd", "none"]), default="gzip",
          show_default=True),
    _flag("--compression-level", keyword="compression_level", type=int,
          help="Compression level (gzip 1-9, zstd 1-22)."),
    _flag("--reproducible", keyword="source_date_epoch", convert=_epoch, is_flag=True,
          help="Clamp timestamps (SOURCE_DATE_EPOCH or 0) for equal digests."),
    _flag("--network", keyword="network", type=click.Choice(["default", "host", "none"]), default="default",
          show_default=True,
          help="RUN steps' network: default (a namespace of their own with outbound access through slirp4netns, "
          "the host's loopback out of reach), host (the host's own network), none."),
    _flag("--allow", keyword="allow_host_network", convert=lambda values: "network.host" in values, multiple=True,
          type=click.Choice(["network.host"]),
          help="network.host: honour RUN --network=host in the Dockerfile (BuildKit's entitlement)."),
    _flag("--cache-dir", keyword="cache_dir", type=click.Path(file_okay=False),
          help="Local blob cache (default ~/.cache/wharfie)."),
    _flag("--cache", keyword="cache", convert=_truthy, is_flag=False, flag_value="true", default="false",
          metavar="[=true|false]", help="Use and fill the remote layer cache (kaniko's --cache=true also works)."),
    _flag("--cache-repo", keyword="cache_repo", convert=_cache_repo,
          help="Repository of the layer cache (default: <first destination>/cache, "
          "or $CI_REGISTRY_IMAGE/cache in GitLab CI)."),
    _flag("--cache-ttl", keyword="cache_ttl", convert=_age, default="336h", show_default=True,
          help="Cache entries older than this are rebuilt."),
    _flag("--no-push-cache", keyword="push_cache", convert=_negate, is_flag=True,
          help="Read the layer cache but store nothing in it."),
    _flag("--cache-from", keyword="cache_from", multiple=True,
          help="An image built with --cache whose layers may be reused (repeatable)."),
    _flag("--cache-copy-layers", keyword="cache_copy_layers", convert=_truthy, is_flag=False, flag_value="true",
          default="true", help="Cache COPY and ADD results (default true)."),
    _flag("--cache-run-layers", keyword="cache_run_layers", convert=_truthy, is_flag=False, flag_value="true",
          default="true", help="Cache RUN results (default true)."),
    _flag("--isolation", keyword="isolation", type=click.Choice(["auto", "sandbox", "in-place"]), default="auto",
          show_default=True,
          help="How RUN steps run: namespaces (rootless when not root), or in this container's own / (kaniko's way)."),
    _flag("--force", keyword="force", is_flag=True, help="Build in place even where no container is detected."),
    _flag("--secret", keyword="secrets", convert=_secrets, multiple=True,
          help="id=NAME,src=PATH or id=NAME,env=VAR: a secret for RUN --mount=type=secret (repeatable)."),
    _flag("--ignore-path", keyword="ignore_paths", multiple=True, help="A path never captured in a layer (repeatable)."),
    _flag("--snapshot-mode", keyword="snapshot_mode", type=click.Choice(["full", "redo", "time"]), default="redo",
          show_default=True, help="How the walk snapshotter compares files (full: by content)."),
    _flag("--sbom", keyword="sbom", is_flag=True, help="Attach an SPDX 2.3 SBOM of the image (an OCI referrer)."),
    _flag("--provenance", keyword="provenance", is_flag=True,
          help="Attach a SLSA v1 provenance statement (an OCI referrer)."),
    _flag("--sbom-file", keyword="sbom_file", type=click.Path(dir_okay=False),
          help="Also write the SBOM here (implies --sbom)."),
    _flag("--provenance-file", keyword="provenance_file", type=click.Path(dir_okay=False),
          help="Also write the provenance here (implies --provenance)."),
)


def _with_build_flags(command: Callable[..., None]) -> Callable[..., None]:
    decorated: Any = command
    for flag in reversed(BUILD_FLAGS):
        decorated = flag.option()(decorated)
    with_argument: Callable[..., None] = click.argument(
        "context_argument", metavar="[CONTEXT]", required=False,
        callback=lambda _ctx, _param, value: _context(value))(decorated)
    return with_argument


@click.command(cls=KanikoCompatibleCommand)
@_with_build_flags
@registry_flags
@logging_flags
@gitlab_options
@kaniko_options
def build(context_argument: str | None, **values: Any) -> None:
    """Build CONTEXT's Dockerfile and push the image to every --destination."""
    from builder.cli.log_sections import build_view
    from builder.engine.api import build as build_image
    from builder.execution.mount_namespace import enter_private_mount_namespace
    from builder.execution.rootless import enter_user_namespace_if_needed
    from builder.execution.work_tmpfs import WorkDirFull, work_tmpfs
    from layers.overlay import in_user_namespace

    enter_user_namespace_if_needed(values["isolation"], sys.argv[1:])
    kaniko = kaniko_settings(values)  # kaniko's own flags, taken out of `values`, --log-format applied
    values["context"] = str(kaniko.context(Path(values["context"] or context_argument or ".").resolve()))
    destinations, no_push = apply_gitlab_conventions(
        values["destinations"], no_push=not values["push"], push=values.pop("force_push"),
        image_path=values.pop("image_path"), environ=os.environ)
    values["destinations"], values["push"] = destinations, not no_push
    if not values["destinations"] and values["push"] and not values["oci_layout_path"]:
        raise click.UsageError("no --destination given: name one, or pass --no-push")
    _check_compression_level(values["compression"], values["compression_level"])
    for flag in BUILD_FLAGS:
        if flag.keyword is None:
            del values[flag.dest]
    values["registry"] = kaniko.registry_options(
        values["registry"], push_to=[*values["destinations"], values["cache_repo"], os.environ.get("CI_REGISTRY_IMAGE")])
    used: list[Any] = []
    # A mount namespace of the build's own, entered before any thread exists: the overlays of stacked stage trees
    # and the work tmpfs live and die with the build (a process-wide change: the CLI's to make, not the API's).
    own_mounts = enter_private_mount_namespace()

    def adjust(options: Any) -> Any:
        options = kaniko.build_options(replace(options, output=kaniko.output_options(options.output)))
        # Stage trees stack on the machine's unpacked layers where RUN steps use overlays.
        options = replace(options, layer_store=own_mounts and options.isolation.snapshotter == "overlay")
        used.append(options)
        return options

    def run() -> Any:
        return build_image(**values, step_output=_print_step_output, adjust=adjust,
                           around=lambda client: build_view(client, quiet=values["quiet"], log_format=kaniko.log_format))

    with private_tmpdir() as tmpdir:  # after the rootless re-exec: everything temporary of the build goes under it
        on_tmpfs = work_tmpfs(tmpdir, rootless=in_user_namespace()) if own_mounts and kaniko.work_dir is None \
            else contextlib.nullcontext()
        with on_tmpfs as tmpfs:
            try:
                result = run()
            except WorkDirFull as exc:
                if tmpfs is None:
                    raise
                log.warning("warning: %s: building again with the work dir on disk", exc)
                tmpfs.unmount()
                used.clear()
                result = run()
        if used:  # the options the build ran with
            clean_up_after_build(used[-1], kaniko)
    # GNU time's figure for a build includes its RUN steps' programs (apt, pip): this one is wharfie's alone.
    log.debug("peak RSS of wharfie itself: %.0f MB (RUN steps' processes not included)",
              resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    click.echo(result.summary())


def _print_step_output(line: str) -> None:
    click.echo(line, err=True)
