"""The registry commands of the `wharfie` CLI: login, logout, tags ls/rm, repositories ls, inspect, cleanup, pull.

Thin by design: each command takes the shared registry and logging flags
(builder/cli/flags.py: one `RegistryOptions`, logging set up once), plus
`--creds` where it names a registry, and calls one function of registry/;
results go to stdout, logs and progress to stderr. builder/cli/app.py
attaches `REGISTRY_COMMANDS` to the main group, whose `main()` turns any
`WharfieError` into one line and a non-zero exit. `tags ls`,
`cleanup` and `repositories ls` speak GitLab's REST API when one is given
(``--gitlab-url``, ``$CI_API_V4_URL`` in a job) and say on stderr which API
they use.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import click

from builder.cli.flags import logging_flags, registry_flags
from oci.blobstore import BlobStore
from oci.models import Platform, host_platform
from oci.tls_trust import https_context
from registry.cleanup import CleanupPlan, CleanupPolicy, TagInfo, parse_age
from registry.client import RegistryClient
from registry.dockerconfig import Credentials, DockerConfig
from registry.gitlab_api import GitLabAPI, gitlab_token
from registry.gitlab_cleanup import find_target, run_gitlab_cleanup
from registry.inspect import inspect_image
from registry.options import RegistryOptions
from registry.progress import choose_progress
from registry.pull import pull_image, write_docker_tarball, write_oci_layout
from registry.reference import DEFAULT_REGISTRY, Reference, normalize_host, parse_host, parse_reference
from registry.session import is_loopback

__all__ = ["REGISTRY_COMMANDS", "cleanup", "inspect", "login", "logout", "pull", "registry_command", "repositories",
           "tags"]

log = logging.getLogger("wharfie")


def registry_command(func: Callable[..., None]) -> Callable[..., None]:
    """The flags of a command that talks to registries: --creds, the shared registry flags, -v/-q.

    The command gets `creds` (text), `registry` (`RegistryOptions`) and `quiet`; `_client` makes the client.
    """
    func = logging_flags(func)
    func = registry_flags(func)
    return click.option("--creds", help="USER:PASSWORD for the registry named (e.g. a GitLab deploy token's "
                                        "user and token).")(func)


def _creds(text: str | None, host: str | None) -> dict[str, Credentials]:
    """``--creds USER:PASSWORD`` for `host` (the error never repeats the value: it holds a secret)."""
    if not text:
        return {}
    user, sep, secret = text.partition(":")
    if not sep or not user or not secret:
        raise click.BadParameter("expected USER:PASSWORD", param_hint="--creds")
    if host is None:
        raise click.BadParameter("this command names no registry to send them to", param_hint="--creds")
    return {host: Credentials(user, secret)}


def _client(kw: dict[str, Any], *, credentials: dict[str, Credentials] | None = None,
            host: str | None = None) -> RegistryClient:
    """A client from the shared flags (`creds` and `registry` removed from `kw`), with progress unless quiet.

    ``--creds`` applies to `host`, the registry the command names; explicit `credentials` (login's) win.
    """
    flag_creds = _creds(kw.pop("creds"), host)
    options = replace(kw.pop("registry"), credentials=credentials or flag_creds)
    return RegistryClient(options, progress=choose_progress(quiet=kw["quiet"]))


def gitlab_flags(func: Callable[..., None]) -> Callable[..., None]:
    """Where GitLab's REST API is and who asks it; `_gitlab_api(kw)` turns them into a client (or None)."""
    for option in reversed([
        click.option("--gitlab-url", help="GitLab's API, e.g. https://gitlab.example.com/api/v4 "
                                          "(default: $CI_API_V4_URL, set in every GitLab CI job)."),
        click.option("--gitlab-token", help="An access token, sent as PRIVATE-TOKEN (default: $GITLAB_TOKEN, "
                                            "else $CI_JOB_TOKEN sent as JOB-TOKEN)."),
        click.option("--project", help="GitLab project id or GROUP/PROJECT (default: $CI_PROJECT_ID, else the "
                                       "project the repository path names)."),
        click.option("--registry-api", is_flag=True, help="Use the registry's own API even when GitLab's is known."),
    ]):
        func = option(func)
    return func


@dataclass(frozen=True)
class _APIChoice:
    """GitLab's API, or None and why not (the words a command uses to say which API it speaks)."""

    api: GitLabAPI | None
    why_not: str = ""


def _gitlab_api(kw: dict[str, Any], reference: str | None = None) -> _APIChoice:
    """GitLab's API from the flags (removed from `kw`; the shared `registry` options are only read).

    A job's own API (``$CI_API_V4_URL``) serves the job's registry only: a REFERENCE naming another
    registry than ``$CI_REGISTRY`` is handled by that registry's API. The token travels in every
    request, so plain HTTP is refused except to loopback or an ``--insecure-registry`` host.
    """
    flag_url = kw.pop("gitlab_url")
    url = flag_url or os.environ.get("CI_API_V4_URL")
    token = gitlab_token(kw.pop("gitlab_token"), os.environ)
    if kw.pop("registry_api"):
        return _APIChoice(None, "--registry-api")
    if not url:
        return _APIChoice(None, "no GitLab API given: --gitlab-url or $CI_API_V4_URL")
    host = _explicit_host(reference) if reference else None
    ci_registry = os.environ.get("CI_REGISTRY")
    if not flag_url and host and ci_registry and _registry_host(ci_registry) != host:
        return _APIChoice(None, f"{host} is not this job's registry $CI_REGISTRY")
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("https", "http"):
        raise click.BadParameter(f"expected an http(s) URL, got {url!r}", param_hint="--gitlab-url")
    api_host = rest.split("/", 1)[0]
    registry: RegistryOptions = kw["registry"]
    if scheme == "http" and not (is_loopback(api_host) or api_host in registry.insecure_registries):
        raise click.BadParameter(f"{url} is plain HTTP: the token would travel in clear (list the host in "
                                 "--insecure-registry to allow it)", param_hint="--gitlab-url")
    ca_file = registry.ca_files.get(api_host)
    verify = https_context(ca_file=ca_file, server=api_host) if ca_file or not registry.skip_tls_verify else False
    return _APIChoice(GitLabAPI(url, token, verify=verify, retries=registry.retries))


def _project(kw: dict[str, Any]) -> str | None:
    return kw.pop("project") or os.environ.get("CI_PROJECT_ID") or None


def _say(kw: dict[str, Any], message: str) -> None:
    """Which API a command uses, on stderr (stdout stays for results, e.g. JSON for jq)."""
    if not kw.get("quiet"):
        click.echo(message, err=True)


def _explicit_host(text: str) -> str | None:
    """The registry host written in `text`, or None for a bare GitLab path such as ``group/project/app``."""
    first, sep, _ = text.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return normalize_host(first)
    return None


def _source_date_epoch() -> int | None:
    raw = os.environ.get("SOURCE_DATE_EPOCH")
    if raw is None or not raw.strip():
        return None
    if not raw.strip().isdigit():
        raise click.BadParameter(f"SOURCE_DATE_EPOCH must be a whole number of seconds, got {raw!r}")
    return int(raw)


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
@registry_command
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
@click.option("--page-size", type=int, help="Tags per request (the API's default if unset).")
@click.option("--format", "output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@gitlab_flags
@registry_command
def tags_ls(repository: str, page_size: int | None, output: str, **kw: Any) -> None:
    """List REPOSITORY's tags: with GitLab's API, with digest, size and push time (created_at)."""
    ref = parse_reference(repository).repo_ref
    project = _project(kw)
    choice = _gitlab_api(kw, repository)
    if (api := choice.api) is not None:
        with api:
            target = find_target(api, ref.repository, host=_explicit_host(repository), project=project,
                                 per_page=page_size)
            _say(kw, f"Using {api.describe()}: {target.describe()}")
            found = api.tags(target.project, target.repository.id, per_page=page_size)
        rows = [{"name": t.name, "digest": str(t.digest) if t.digest else None, "size": t.total_size,
                 "created_at": t.created_at.isoformat() if t.created_at else None} for t in found]
        _print_tags(rows, output)
        return
    _say(kw, f"Using the registry API of {ref.registry}: names only ({choice.why_not})")
    with _client(kw, host=ref.registry) as client:
        names = client.list_tags(ref, page_size=page_size)
    if output == "json":
        click.echo(json.dumps([{"name": name} for name in names], indent=2))
    else:
        for name in names:
            click.echo(name)


def _print_tags(rows: list[dict[str, Any]], output: str) -> None:
    if output == "json":
        click.echo(json.dumps(rows, indent=2))
        return
    width = max([len("NAME")] + [len(r["name"]) for r in rows])
    click.echo(f"{'NAME':<{width}}  {'DIGEST':<71}  {'SIZE':>12}  CREATED_AT")
    for r in rows:
        size = "" if r["size"] is None else str(r["size"])
        click.echo(f"{r['name']:<{width}}  {r['digest'] or '-':<71}  {size:>12}  {r['created_at'] or '-'}")


@click.group()
def repositories() -> None:
    """A GitLab project's container repositories (GitLab's REST API)."""


@repositories.command("ls")
@click.option("--format", "output", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--page-size", type=int, help="Repositories per request (the API's default if unset).")
@gitlab_flags
@registry_command
def repositories_ls(output: str, page_size: int | None, **kw: Any) -> None:
    """List the project's container repositories: name, path and tag count."""
    project = _project(kw)
    api = _gitlab_api(kw).api
    if api is None:
        raise click.UsageError("repositories ls needs GitLab's API: give --gitlab-url (a CI job has $CI_API_V4_URL)")
    if project is None:
        raise click.UsageError("give --project ID or GROUP/PROJECT (a CI job has $CI_PROJECT_ID)")
    with api:
        _say(kw, f"Using {api.describe()}: project {project}")
        found = api.repositories(project, per_page=page_size)
    if output == "json":
        rows = [{"id": r.id, "name": r.name, "path": r.path, "location": r.location, "tags_count": r.tags_count,
                 "created_at": r.created_at.isoformat() if r.created_at else None} for r in found]
        click.echo(json.dumps(rows, indent=2))
        return
    width = max([len("PATH")] + [len(r.path) for r in found])
    click.echo(f"{'ID':>8}  {'PATH':<{width}}  {'TAGS':>6}  NAME")
    for r in found:
        count = "" if r.tags_count is None else str(r.tags_count)
        click.echo(f"{r.id:>8}  {r.path:<{width}}  {count:>6}  {r.name}")


@tags.command("rm")
@click.argument("references", nargs=-1, required=True)
@registry_command
def tags_rm(references: tuple[str, ...], **kw: Any) -> None:
    """Delete REPO:TAG (only that tag: other tags of the same image stay)."""
    refs = [parse_reference(text) for text in references]
    with _client(kw, host=refs[0].registry) as client:
        for ref in refs:
            digest = client.delete_tag(ref)
            click.echo(f"Deleted {ref} ({digest})")


@click.command()
@click.argument("reference")
@click.option("--raw", is_flag=True, help="Print the manifest (or index) exactly as the registry sent it.")
@click.option("--config", "show_config", is_flag=True, help="Print the image config blob.")
@click.option("--platform", help="os/arch[/variant] to pick from an index (default: this machine's).")
@registry_command
def inspect(reference: str, raw: bool, show_config: bool, platform: str | None, **kw: Any) -> None:
    """Show REFERENCE's manifest digest, platforms, config and layer sizes, as JSON."""
    ref = parse_reference(reference)
    wanted = Platform.parse(platform) if platform else host_platform()
    with _client(kw, host=ref.registry) as client:
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
@click.option("--older-than", help="Delete only tags pushed longer ago than this (90d, 14d, 12h, 1month).")
@click.option("--trust-image-dates", is_flag=True,
              help="Take a date in doubt (an image config dated before 2013 or at/before $SOURCE_DATE_EPOCH) as the age.")
@click.option("--dry-run", is_flag=True, help="Print what would be deleted; delete nothing.")
@gitlab_flags
@registry_command
def cleanup(repository: str, name_regex_delete: str, name_regex_keep: str | None, keep_n: int | None,
            older_than: str | None, trust_image_dates: bool, dry_run: bool, **kw: Any) -> None:
    """Delete REPOSITORY's tags as a GitLab cleanup policy would (never `latest`).

    A tag's age is GitLab's created_at with GitLab's API, else its image config's date, unless that is a
    date builds fix (--reproducible, SOURCE_DATE_EPOCH): then --older-than keeps the tag and says why.
    """
    repo = parse_reference(repository).repo_ref
    policy = CleanupPolicy(name_regex_delete, name_regex_keep, keep_n,
                           parse_age(older_than) if older_than else None, trust_image_dates)
    project = _project(kw)
    choice = _gitlab_api(kw, repository)
    if (api := choice.api) is not None:
        with api:
            target = find_target(api, repo.repository, host=_explicit_host(repository), project=project)
            _say(kw, f"Using {api.describe()}: {target.describe()}; ages from GitLab's created_at")
            result = run_gitlab_cleanup(api, target, policy, dry_run=dry_run)
        verb = {"bulk": "Scheduled deletion of", "per tag": "Deleted"}.get(result.method, "Would delete")
        _print_plan(repo.name, result.plan, verb)
        if result.method == "bulk":
            _say(kw, "GitLab deletes these in the background (bulk endpoint DELETE .../registry/repositories/"
                     f"{target.repository.id}/tags)")
        elif result.method == "per tag":
            _say(kw, f"Deleted tag by tag (DELETE .../tags/:tag_name): {result.note}")
        return
    _say(kw, f"Using the registry API of {repo.registry}: ages from image configs ({choice.why_not})")
    with _client(kw, host=repo.registry) as client:
        plan = client.cleanup(repo, policy, dry_run=dry_run, source_date_epoch=_source_date_epoch())
    _print_plan(repo.name, plan, "Would delete" if dry_run else "Deleted")


def _print_plan(name: str, plan: CleanupPlan, verb: str, *, what: str = "") -> None:
    for tag in plan.delete:
        created = tag.created.isoformat() if tag.created else "unknown date"
        click.echo(f"{verb} {what}{name}:{tag.name} ({created})")
    for tag in plan.undated:
        click.echo(f"Kept {what}{name}:{tag.name}: {_why_kept(tag)}")
    if not plan.delete:
        click.echo(f"Nothing to delete in {name}")


def _why_kept(tag: TagInfo) -> str:
    if tag.date_source == "image config":
        return (f"{tag.doubt}; a plain registry records no push time (give --gitlab-url for GitLab's "
                "created_at, or --trust-image-dates to use the config's date)")
    return f"{tag.doubt}; its age is unknown, so --older-than keeps it"


@click.group("cache")
def cache_group() -> None:
    """The remote layer cache of `wharfie build --cache`."""


@cache_group.command("prune")
@click.argument("cache_repository")
@click.option("--older-than", required=True, help="Delete entries stored longer ago than this (14d, 336h).")
@click.option("--dry-run", is_flag=True, help="Print what would be deleted; delete nothing.")
@registry_command
def cache_prune(cache_repository: str, older_than: str, dry_run: bool, **kw: Any) -> None:
    """Delete CACHE_REPOSITORY's entries stored longer ago than --older-than.

    An entry's age is the store time wharfie wrote on it, never the date --reproducible gives images.
    """
    repo = parse_reference(cache_repository).repo_ref
    policy = CleanupPolicy(".*", None, None, parse_age(older_than))
    _say(kw, f"Using the registry API of {repo.registry}: ages from each entry's store time")
    with _client(kw, host=repo.registry) as client:
        plan = client.cleanup(repo, policy, dry_run=dry_run, cache_entries=True)
    verb = "Would delete" if dry_run else "Deleted"
    for tag in plan.delete:
        click.echo(f"{verb} cache entry {repo.name}:{tag.name} (stored {tag.created.isoformat() if tag.created else '?'})")
    for tag in plan.undated:
        click.echo(f"Kept cache entry {repo.name}:{tag.name}: {_why_kept(tag)}")
    click.echo(f"{len(plan.delete)} cache entries {'to delete' if dry_run else 'deleted'} in {repo.name}")


@click.command()
@click.argument("reference")
@click.option("--tar-path", type=click.Path(dir_okay=False), help="Write a docker tarball (docker load) here.")
@click.option("--oci-layout-path", type=click.Path(file_okay=False), help="Add the image to this OCI layout.")
@click.option("--platform", help="os/arch[/variant] to pull from an index (default: this machine's).")
@click.option("--cache-dir", type=click.Path(file_okay=False), help="Local blob cache (default ~/.cache/wharfie).")
@registry_command
def pull(reference: str, tar_path: str | None, oci_layout_path: str | None, platform: str | None,
         cache_dir: str | None, **kw: Any) -> None:
    """Pull REFERENCE into a docker tarball and/or an OCI image layout."""
    if not tar_path and not oci_layout_path:
        raise click.UsageError("give --tar-path FILE or --oci-layout-path DIR (or both)")
    ref = parse_reference(reference)
    from builder.engine.options import default_cache_dir  # here: the engine need not load for --help

    store = BlobStore(Path(cache_dir) if cache_dir else default_cache_dir())
    with _client(kw, host=ref.registry) as client:
        image = pull_image(client, ref, Platform.parse(platform) if platform else host_platform(), store)
    if tar_path:
        tagged = [Reference(ref.registry, ref.repository, ref.tag).familiar] if ref.tag else []
        write_docker_tarball(Path(tar_path), image, store, tagged)
    if oci_layout_path:
        write_oci_layout(Path(oci_layout_path), image, store, ref.tag or ref.identifier)
    click.echo(f"{ref.familiar}: {image.manifest_digest}")


REGISTRY_COMMANDS: list[click.Command] = [login, logout, tags, repositories, inspect, cleanup, pull, cache_group]

