"""The registry commands of the `wharfie` CLI: login, logout, tags ls/rm, inspect, cleanup, pull.

Thin by design: each command turns flags into `RegistryOptions` and calls one
function of registry/; results go to stdout, logs and progress to stderr.
`builder.cli` attaches `REGISTRY_COMMANDS` to the main group, whose `main()`
turns any `WharfieError` into one line and a non-zero exit.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from builder.options import default_cache_dir
from oci.blobstore import BlobStore
from oci.models import Platform, host_platform
from registry.cleanup import CleanupPolicy, parse_age, run_cleanup
from registry.client import RegistryClient
from registry.dockerconfig import Credentials, DockerConfig
from registry.inspect import inspect_image
from registry.options import RegistryOptions
from registry.progress import choose_progress
from registry.pull import pull_image, write_docker_tarball, write_oci_layout
from registry.reference import DEFAULT_REGISTRY, Reference, parse_host, parse_reference
from registry.tags import delete_tag, list_tags

__all__ = ["REGISTRY_COMMANDS", "cleanup", "inspect", "login", "logout", "pull", "tags"]

log = logging.getLogger("wharfie")


def _setup_logging(quiet: bool, verbosity: str) -> None:
    level = logging.WARNING if quiet else getattr(logging, verbosity.upper(), logging.INFO)
    logging.basicConfig(level=level, format="%(message)s", stream=sys.stderr)
    logging.getLogger().setLevel(level)
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))


def _ca_files(items: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items:
        host, sep, path = item.partition("=")
        if not sep or not host or not path:
            raise click.BadParameter(f"expected HOST=PATH, got {item!r}", param_hint="--registry-certificate")
        out[host] = path
    return out


def registry_flags(func: Callable[..., None]) -> Callable[..., None]:
    """The flags every registry command shares; `_client(kw)` turns them into a client."""
    for option in reversed([
        click.option("--insecure-registry", "insecure", multiple=True, help="HOST[:PORT] reached over plain HTTP."),
        click.option("--skip-tls-verify", is_flag=True, help="Do not verify registries' TLS certificates."),
        click.option("--registry-certificate", "certs", multiple=True, help="HOST=PATH of a CA bundle for that registry."),
        click.option("--registry-mirror", "mirrors", multiple=True, help="Docker Hub mirror HOST[/PATH], tried first."),
        click.option("--push-retry", "retries", type=int, default=3, show_default=True, help="Retries of a failed request."),
        click.option("--quiet", "-q", is_flag=True, help="No progress or log output."),
        click.option("--verbosity", "-v", type=click.Choice(["debug", "info", "warn", "error"]), default="info"),
    ]):
        func = option(func)
    return func


def _client(kw: dict[str, Any], *, credentials: dict[str, Credentials] | None = None) -> RegistryClient:
    """A client from the shared flags (removed from `kw`), with logging and progress set up."""
    quiet = kw.pop("quiet")
    _setup_logging(quiet, kw.pop("verbosity"))
    options = RegistryOptions(insecure_registries=frozenset(kw.pop("insecure")), skip_tls_verify=kw.pop("skip_tls_verify"),
                              ca_files=_ca_files(kw.pop("certs")), mirrors=tuple(kw.pop("mirrors")),
                              retries=kw.pop("retries"), credentials=credentials or {})
    return RegistryClient(options, progress=choose_progress(quiet=quiet))


def _registry_host(text: str | None) -> str:
    """``docker login`` accepts a host, a URL or nothing (Docker Hub)."""
    if not text:
        return DEFAULT_REGISTRY
    for scheme in ("https://", "http://"):
        text = text.removeprefix(scheme)
    return parse_host(text.split("/", 1)[0])


def _read_password(password: str | None, password_stdin: bool) -> str:
    if password_stdin:
        if password:
            raise click.UsageError("--password and --password-stdin are mutually exclusive")
        return sys.stdin.read().rstrip("\r\n")
    if password:
        log.warning("WARNING! Using --password on the command line is insecure. Use --password-stdin.")
        return password
    return str(click.prompt("Password", hide_input=True, err=True))


@click.command()
@click.argument("server", required=False)
@click.option("--username", "-u", required=True, help="User name (GitLab: your user, a deploy token's, gitlab-ci-token).")
@click.option("--password", "-p", help="Password or token (prefer --password-stdin).")
@click.option("--password-stdin", is_flag=True, help="Read the password or token from stdin.")
@registry_flags
def login(server: str | None, username: str, password: str | None, password_stdin: bool, **kw: Any) -> None:
    """Check credentials against SERVER (default Docker Hub) and save them in docker's config.json."""
    host = _registry_host(server)
    creds = Credentials(username, _read_password(password, password_stdin))
    with _client(kw, credentials={host: creds}) as client:
        client.check_login(host)
    DockerConfig.load().store(host, creds)
    click.echo("Login Succeeded")


@click.command()
@click.argument("server", required=False)
def logout(server: str | None) -> None:
    """Remove SERVER's credentials (default Docker Hub) from docker's config.json."""
    host = _registry_host(server)
    if DockerConfig.load().erase(host):
        click.echo(f"Removing login credentials for {host}")
    else:
        click.echo(f"Not logged in to {host}")


@click.group()
def tags() -> None:
    """List and delete tags."""


@tags.command("ls")
@click.argument("repository")
@click.option("--page-size", type=int, help="Tags per request (the registry's default if unset).")
@registry_flags
def tags_ls(repository: str, page_size: int | None, **kw: Any) -> None:
    """List REPOSITORY's tags, one a line."""
    with _client(kw) as client:
        for tag in list_tags(client.session, parse_reference(repository).repo_ref, page_size=page_size):
            click.echo(tag)


@tags.command("rm")
@click.argument("references", nargs=-1, required=True)
@registry_flags
def tags_rm(references: tuple[str, ...], **kw: Any) -> None:
    """Delete REPO:TAG (only that tag: other tags of the same image stay)."""
    refs = [parse_reference(text) for text in references]
    with _client(kw) as client:
        for ref in refs:
            digest = delete_tag(client.session, ref)
            click.echo(f"Deleted {ref} ({digest})")


@click.command()
@click.argument("reference")
@click.option("--raw", is_flag=True, help="Print the manifest (or index) exactly as the registry sent it.")
@click.option("--config", "show_config", is_flag=True, help="Print the image config blob.")
@click.option("--platform", help="os/arch[/variant] to pick from an index (default: this machine's).")
@registry_flags
def inspect(reference: str, raw: bool, show_config: bool, platform: str | None, **kw: Any) -> None:
    """Show REFERENCE's manifest digest, platforms, config and layer sizes, as JSON."""
    ref = parse_reference(reference)
    wanted = Platform.parse(platform) if platform else host_platform()
    with _client(kw) as client:
        _inspect(client, ref, wanted, raw=raw, show_config=show_config)


def _inspect(client: RegistryClient, ref: Reference, wanted: Platform, *, raw: bool, show_config: bool) -> None:
    if raw:
        click.echo(client.get_manifest(ref)[0].decode())
    elif show_config:
        click.echo(client.resolve_image(ref, wanted).config_raw.decode())
    else:
        click.echo(json.dumps(inspect_image(client, ref, wanted), indent=2))


@click.command()
@click.argument("repository")
@click.option("--name-regex-delete", required=True, help="Tags whose whole name matches may be deleted (e.g. '.*').")
@click.option("--name-regex-keep", help="Tags whose whole name matches are always kept.")
@click.option("--keep-n", type=click.IntRange(min=0), help="Keep the N most recent matching tags.")
@click.option("--older-than", help="Delete only tags created longer ago than this (90d, 14d, 12h, 1month).")
@click.option("--dry-run", is_flag=True, help="Print what would be deleted; delete nothing.")
@registry_flags
def cleanup(repository: str, name_regex_delete: str, name_regex_keep: str | None, keep_n: int | None,
            older_than: str | None, dry_run: bool, **kw: Any) -> None:
    """Delete REPOSITORY's tags as a GitLab cleanup policy would (never `latest`)."""
    repo = parse_reference(repository).repo_ref
    policy = CleanupPolicy(name_regex_delete, name_regex_keep, keep_n,
                           parse_age(older_than) if older_than else None)
    with _client(kw) as client:
        doomed = run_cleanup(client.session, repo, policy, dry_run=dry_run)
    verb = "Would delete" if dry_run else "Deleted"
    for tag in doomed:
        created = tag.created.isoformat() if tag.created else "unknown date"
        click.echo(f"{verb} {repo.name}:{tag.name} ({created})")
    if not doomed:
        click.echo(f"Nothing to delete in {repo.name}")


@click.group("cache")
def cache_group() -> None:
    """The remote layer cache of `wharfie build --cache`."""


@cache_group.command("prune")
@click.argument("cache_repository")
@click.option("--older-than", required=True, help="Delete entries created longer ago than this (14d, 336h).")
@click.option("--dry-run", is_flag=True, help="Print what would be deleted; delete nothing.")
@registry_flags
def cache_prune(cache_repository: str, older_than: str, dry_run: bool, **kw: Any) -> None:
    """Delete CACHE_REPOSITORY's entries older than --older-than (a cleanup policy over every tag)."""
    repo = parse_reference(cache_repository).repo_ref
    policy = CleanupPolicy(".*", None, None, parse_age(older_than))
    with _client(kw) as client:
        doomed = run_cleanup(client.session, repo, policy, dry_run=dry_run)
    verb = "Would delete" if dry_run else "Deleted"
    for tag in doomed:
        click.echo(f"{verb} cache entry {repo.name}:{tag.name}")
    click.echo(f"{len(doomed)} cache entries {'to delete' if dry_run else 'deleted'} in {repo.name}")


@click.command()
@click.argument("reference")
@click.option("--tar-path", type=click.Path(dir_okay=False), help="Write a docker tarball (docker load) here.")
@click.option("--oci-layout-path", type=click.Path(file_okay=False), help="Add the image to this OCI layout.")
@click.option("--platform", help="os/arch[/variant] to pull from an index (default: this machine's).")
@click.option("--cache-dir", type=click.Path(file_okay=False), help="Local blob cache (default ~/.cache/wharfie).")
@registry_flags
def pull(reference: str, tar_path: str | None, oci_layout_path: str | None, platform: str | None,
         cache_dir: str | None, **kw: Any) -> None:
    """Pull REFERENCE into a docker tarball and/or an OCI image layout."""
    if not tar_path and not oci_layout_path:
        raise click.UsageError("give --tar-path FILE or --oci-layout-path DIR (or both)")
    ref = parse_reference(reference)
    store = BlobStore(Path(cache_dir) if cache_dir else default_cache_dir())
    with _client(kw) as client:
        image = pull_image(client, ref, Platform.parse(platform) if platform else host_platform(), store)
    if tar_path:
        tagged = [Reference(ref.registry, ref.repository, ref.tag).familiar] if ref.tag else []
        write_docker_tarball(Path(tar_path), image, store, tagged)
    if oci_layout_path:
        write_oci_layout(Path(oci_layout_path), image, store, ref.tag or ref.identifier)
    click.echo(f"{ref.familiar}: {image.manifest_digest}")


REGISTRY_COMMANDS: list[click.Command] = [login, logout, tags, inspect, cleanup, pull, cache_group]

