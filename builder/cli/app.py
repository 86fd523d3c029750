"""The `wharfie` command line (click), with kaniko's flag names where kaniko had one.

Every `WharfieError` becomes one line on stderr and exit 1: users see what is
wrong and where, never a traceback.
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from builder.cli.cancel import Cancelled, handle_cancel_signals, private_tmpdir
from builder.cli.lazy_commands import LazyGroup
from oci.errors import WharfieError

if TYPE_CHECKING:  # imported where used: `--help` and the other commands need none of the build's modules
    from builder.attest.options import AttestOptions

__all__ = ["cli", "main"]

log = logging.getLogger("wharfie")


def _key_values(pairs: tuple[str, ...], flag: str, *, from_env: bool = False) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint=flag)
        if not sep:
            if not from_env:
                raise click.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint=flag)
            if key not in os.environ:
                continue  # docker: `--build-arg NAME` with NAME unset passes nothing
            value = os.environ[key]
        out[key] = value
    return out


def _truthy(value: str, flag: str) -> bool:
    lowered = value.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise click.BadParameter(f"expected true or false, got {value!r}", param_hint=flag)


def _context_dir(context: str | None, flag_context: str | None) -> Path:
    raw = flag_context or context or "."
    if raw.startswith("dir://"):
        raw = raw[len("dir://"):]
    elif "://" in raw:
        raise click.BadParameter(f"unsupported context {raw!r}: only local directories (dir://) are supported",
                                 param_hint="--context")
    path = Path(raw)
    if not path.is_dir():
        raise click.BadParameter(f"build context {raw} is not a directory", param_hint="--context")
    return path.resolve()


def _dockerfile_path(dockerfile: str | None, context: Path) -> Path:
    name = dockerfile or "Dockerfile"
    for candidate in (Path(name), context / name):
        if candidate.is_file():
            return candidate.resolve()
    raise click.BadParameter(f"Dockerfile {name} not found (looked in the current directory and in {context})",
                             param_hint="--dockerfile")


def _epoch(reproducible: bool) -> int | None:
    raw = os.environ.get("SOURCE_DATE_EPOCH")
    if raw:
        if not raw.isdigit():
            raise click.BadParameter(f"SOURCE_DATE_EPOCH must be a whole number of seconds, got {raw!r}")
        return int(raw)
    return 0 if reproducible else None


def _attest_options(kw: dict[str, Any]) -> AttestOptions:
    from builder.attest.options import AttestOptions

    files = {flag: Path(kw[flag]) if kw[flag] else None for flag in ("sbom_file", "provenance_file")}
    for flag, path in files.items():
        if path is not None and not path.resolve().parent.is_dir():  # found out before the build, not after
            raise click.BadParameter(f"{path.parent} is not a directory", param_hint=f"--{flag.replace('_', '-')}")
    return AttestOptions(sbom=kw["sbom"] or files["sbom_file"] is not None,
                         provenance=kw["provenance"] or files["provenance_file"] is not None,
                         sbom_file=files["sbom_file"], provenance_file=files["provenance_file"])


def _setup_logging(verbosity: str, quiet: bool) -> None:
    level = logging.WARNING if quiet else getattr(logging, verbosity.upper(), logging.INFO)
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)
    logging.getLogger("httpx").setLevel(max(level, logging.WARNING))
    logging.getLogger("httpcore").setLevel(max(level, logging.WARNING))


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="wharfie")
def cli() -> None:
    """wharfie: build container images from Dockerfiles without a daemon, and push them."""


@cli.command()
@click.argument("context", required=False)
@click.option("--context", "-c", "flag_context", help="Build context directory (also dir://DIR).")
@click.option("--dockerfile", "-f", help="Path to the Dockerfile (relative: from here, then in the context).")
@click.option("--destination", "-d", "destinations", multiple=True, help="Image reference to push to (repeatable).")
@click.option("--build-arg", "build_args", multiple=True, help="KEY=VALUE, or KEY to take it from the environment.")
@click.option("--label", "labels", multiple=True, help="KEY=VALUE label to add to the image (repeatable).")
@click.option("--target", help="Build up to this stage (name or index).")
@click.option("--platform", "--custom-platform", "platform",
              help="os/arch[/variant] of the image (default: this machine's); picks the base from an index.")
@click.option("--no-push", is_flag=True, help="Build only; push nothing.")
@click.option("--skip-unused-stages", is_flag=False, flag_value="true", default="true", hidden=True,
              help="Accepted for kaniko: only the stages the target needs are ever built.")
@click.option("--insecure-registry", "insecure", multiple=True, help="HOST[:PORT] reached over plain HTTP.")
@click.option("--insecure", "insecure_all", is_flag=True, help="Push to the destinations over plain HTTP.")
@click.option("--skip-tls-verify", is_flag=True, help="Do not verify registries' TLS certificates.")
@click.option("--registry-certificate", "certs", multiple=True, help="HOST=PATH of a CA bundle for that registry.")
@click.option("--push-retry", type=int, default=3, show_default=True, help="Retries of a failed registry request.")
@click.option("--push-concurrency", type=click.IntRange(1, 32), default=4, show_default=True,
              help="Blobs uploaded at once.")
@click.option("--registry-mirror", "mirrors", multiple=True, help="Mirror tried before docker.io (repeatable).")
@click.option("--digest-file", type=click.Path(dir_okay=False), help="Write the pushed image's digest here.")
@click.option("--image-name-with-digest-file", type=click.Path(dir_okay=False),
              help="Write REF@DIGEST for each destination here.")
@click.option("--oci-layout-path", type=click.Path(file_okay=False), help="Also write the image as an OCI layout here.")
@click.option("--manifest-format", type=click.Choice(["oci", "docker"]), default="oci", show_default=True)
@click.option("--compression", type=click.Choice(["gzip", "zstd", "none"]), default="gzip", show_default=True)
@click.option("--compression-level", type=int, help="Compression level (gzip 1-9, zstd 1-22).")
@click.option("--reproducible", is_flag=True, help="Clamp timestamps (SOURCE_DATE_EPOCH or 0) for equal digests.")
@click.option("--network", type=click.Choice(["default", "host", "none"]), default="default", show_default=True,
              help="RUN steps' network: default (a namespace of their own with outbound access through slirp4netns, "
              "the host's loopback out of reach), host (the host's own network), none.")
@click.option("--allow", "allow", multiple=True, type=click.Choice(["network.host"]),
              help="network.host: honour RUN --network=host in the Dockerfile (BuildKit's entitlement).")
@click.option("--cache-dir", type=click.Path(file_okay=False), help="Local blob cache (default ~/.cache/wharfie).")
@click.option("--cache", "cache", is_flag=False, flag_value="true", default="false", metavar="[=true|false]",
              help="Use and fill the remote layer cache (kaniko's --cache=true also works).")
@click.option("--cache-repo", help="Repository of the layer cache (default: <first destination>/cache, "
              "or $CI_REGISTRY_IMAGE/cache in GitLab CI).")
@click.option("--cache-ttl", default="336h", show_default=True, help="Cache entries older than this are rebuilt.")
@click.option("--no-push-cache", is_flag=True, help="Read the layer cache but store nothing in it.")
@click.option("--cache-from", "cache_from", multiple=True,
              help="An image built with --cache whose layers may be reused (repeatable).")
@click.option("--cache-copy-layers", is_flag=False, flag_value="true", default="true",
              help="Cache COPY and ADD results (default true).")
@click.option("--cache-run-layers", is_flag=False, flag_value="true", default="true",
              help="Cache RUN results (default true).")
@click.option("--isolation", type=click.Choice(["auto", "sandbox", "in-place"]), default="auto", show_default=True,
              help="How RUN steps run: namespaces (rootless when not root), or in this container's own / (kaniko's way).")
@click.option("--force", is_flag=True, help="Build in place even where no container is detected.")
@click.option("--secret", "secrets", multiple=True,
              help="id=NAME,src=PATH or id=NAME,env=VAR: a secret for RUN --mount=type=secret (repeatable).")
@click.option("--ignore-path", "ignore_paths", multiple=True, help="A path never captured in a layer (repeatable).")
@click.option("--snapshot-mode", type=click.Choice(["full", "redo", "time"]), default="redo", show_default=True,
              help="How the walk snapshotter compares files (full: by content).")
@click.option("--sbom", is_flag=True, help="Attach an SPDX 2.3 SBOM of the image (an OCI referrer).")
@click.option("--provenance", is_flag=True, help="Attach a SLSA v1 provenance statement (an OCI referrer).")
@click.option("--sbom-file", type=click.Path(dir_okay=False), help="Also write the SBOM here (implies --sbom).")
@click.option("--provenance-file", type=click.Path(dir_okay=False),
              help="Also write the provenance here (implies --provenance).")
@click.option("--verbosity", "-v", type=click.Choice(["debug", "info", "warn", "error"]), default="info")
@click.option("--quiet", "-q", is_flag=True, help="Print only the result.")
def build(**kw: Any) -> None:
    """Build CONTEXT's Dockerfile and push the image to every --destination."""
    from builder.execution.rootless import enter_user_namespace_if_needed

    _setup_logging(kw["verbosity"], kw["quiet"])
    enter_user_namespace_if_needed(kw["isolation"], sys.argv[1:])
    with private_tmpdir():
        _build(kw)


def _build(kw: dict[str, Any]) -> None:
    from builder.cache.layer_cache import CacheOptions
    from builder.engine.options import BuildOptions, OutputOptions, default_cache_dir
    from builder.execution.isolation import resolve_isolation
    from builder.execution.mount_namespace import enter_private_mount_namespace
    from builder.execution.run_mounts import parse_secret_flag
    from oci.models import Platform, host_platform
    from registry.cleanup import parse_age
    from registry.reference import parse_reference

    context = _context_dir(kw["context"], kw["flag_context"])
    if not kw["destinations"] and not kw["no_push"] and not kw["oci_layout_path"]:
        raise click.UsageError("no --destination given: name one, or pass --no-push")
    output = OutputOptions(
        destinations=tuple(kw["destinations"]), no_push=kw["no_push"],
        digest_file=Path(kw["digest_file"]) if kw["digest_file"] else None,
        image_name_with_digest_file=Path(kw["image_name_with_digest_file"]) if kw["image_name_with_digest_file"] else None,
        oci_layout_path=Path(kw["oci_layout_path"]) if kw["oci_layout_path"] else None,
        manifest_format=kw["manifest_format"], compression=kw["compression"],
        compression_level=kw["compression_level"],
    )
    isolation = resolve_isolation(kw["isolation"], force=kw["force"], work_root=Path(tempfile.gettempdir()))
    # Stage trees stack on the machine's unpacked layers where RUN steps use overlays (builder/engine/stage_tree.py).
    stacking = isolation.snapshotter == "overlay" and enter_private_mount_namespace()
    options = BuildOptions(
        context=context,
        dockerfile=_dockerfile_path(kw["dockerfile"], context),
        output=output,
        build_args=_key_values(kw["build_args"], "--build-arg", from_env=True),
        labels=_key_values(kw["labels"], "--label"),
        target=kw["target"],
        platform=Platform.parse(kw["platform"]) if kw["platform"] else host_platform(),
        platform_requested=bool(kw["platform"]),
        source_date_epoch=_epoch(kw["reproducible"]),
        network=kw["network"],
        allow_host_network="network.host" in kw["allow"],
        cache_dir=Path(kw["cache_dir"]) if kw["cache_dir"] else default_cache_dir(),
        cache=CacheOptions(enabled=_truthy(kw["cache"], "--cache"), repo=kw["cache_repo"],
                           ttl_seconds=int(parse_age(kw["cache_ttl"]).total_seconds()), push=not kw["no_push_cache"],
                           cache_copy_layers=_truthy(kw["cache_copy_layers"], "--cache-copy-layers"),
                           cache_run_layers=_truthy(kw["cache_run_layers"], "--cache-run-layers"),
                           cache_from=tuple(kw["cache_from"])),
        quiet=kw["quiet"],
        isolation=isolation,
        secrets=tuple(parse_secret_flag(value) for value in kw["secrets"]),
        ignore_paths=tuple(kw["ignore_paths"]),
        snapshot_mode=kw["snapshot_mode"],
        attest=_attest_options(kw),
        layer_store=stacking,
    )
    for destination in kw["destinations"]:
        parse_reference(destination)  # a bad --destination fails now, not after the build
    from builder.engine.build import build_image
    from builder.engine.registry_setup import registry_client

    client = registry_client(insecure=kw["insecure"], insecure_destinations=kw["destinations"] if kw["insecure_all"] else (),
                             skip_tls_verify=kw["skip_tls_verify"], certificates=kw["certs"], retries=kw["push_retry"],
                             push_concurrency=kw["push_concurrency"], mirrors=kw["mirrors"], quiet=kw["quiet"])
    result = build_image(options, client=client)
    click.echo(result.summary())


def main() -> None:
    handle_cancel_signals()
    try:
        cli.main(standalone_mode=False)
    except Cancelled as exc:
        click.echo(f"wharfie: {exc}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("wharfie: aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except WharfieError as exc:
        click.echo(f"wharfie: error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("wharfie: interrupted", err=True)
        sys.exit(130)
    except OSError as exc:
        click.echo(f"wharfie: error: {exc}", err=True)
        sys.exit(1)
