"""Every flag of kaniko's executor (v1.23.2), with what it does in wharfie or why it changes nothing.

`KANIKO_FLAGS` is the whole table, read from kaniko's cmd/executor/cmd/root.go:
- ``native``: wharfie's own `build` flag of the same name and meaning (declared in app.py);
- ``mapped``: declared here (`kaniko_options`) and turned into wharfie's settings (`KanikoSettings`);
- ``inert``: declared here, accepted, and ``-v debug`` says why it changes nothing;
- ``deprecated``: kaniko's old spelling, rewritten to the new one (builder/cli/kaniko_argv.py).
kaniko's command-line spellings (``--flag=false``, ``-v=trace``, Go durations)
and its ``KANIKO_*`` variables are kaniko_argv.py's job, so each value reaches
this module already in wharfie's terms.
"""

from __future__ import annotations

import logging
import os
import ssl
import tempfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import click

from builder.cli.kaniko_argv import NOTES_KEY, go_bool
from builder.cli.log_format import apply_log_format
from registry.client_cert import ClientCertificateError, load_client_certificate
from registry.options import RegistryOptions
from registry.reference import normalize_host, parse_reference

if TYPE_CHECKING:  # the engine loads when a build runs, not for --help
    from builder.engine.options import BuildOptions, OutputOptions

__all__ = ["KANIKO_FLAGS", "KanikoFlag", "KanikoSettings", "clean_up_after_build", "kaniko_options", "kaniko_settings"]

log = logging.getLogger("wharfie")

Kind = Literal["bool", "string", "int", "duration", "multi", "keyvalue", "multikeyvalue", "git", "compression"]
Handling = Literal["native", "mapped", "inert", "deprecated"]


@dataclass(frozen=True)
class KanikoFlag:
    name: str  # without the dashes
    kind: Kind
    handling: Handling
    meaning: str  # native/mapped: what it does here; inert: why it changes nothing; deprecated: its new name
    short: str | None = None


def _f(name: str, kind: Kind, handling: Handling, meaning: str, short: str | None = None) -> KanikoFlag:
    return KanikoFlag(name, kind, handling, meaning, short)


KANIKO_FLAGS: tuple[KanikoFlag, ...] = (
    _f("verbosity", "string", "native", "log level; kaniko's trace is debug here, fatal and panic are error", "v"),
    _f("log-format", "string", "mapped", "json: one logrus-style JSON object per log line; color: each line "
       "starts with its level, coloured, as logrus writes it; text (and no flag): wharfie's plain lines"),
    _f("log-timestamp", "bool", "mapped", "each text log line starts with its RFC 3339 time"),
    _f("force", "bool", "native", "build in place even where no container is detected"),
    _f("dockerfile", "string", "native", "the Dockerfile (from the current directory, then the context)", "f"),
    _f("context", "string", "native", "the build context (a directory, or dir://DIR)", "c"),
    _f("context-sub-path", "string", "mapped", "the context is this directory inside --context"),
    _f("bucket", "string", "mapped", "refused with an error when set: wharfie builds only a local directory "
       "context (check the context out in the job instead)", "b"),
    _f("destination", "multi", "native", "an image reference to push to (repeatable)", "d"),
    _f("snapshot-mode", "string", "native", "full|redo|time for the walk snapshotter (default redo; kaniko's full)"),
    _f("custom-platform", "string", "native", "the same as --platform"),
    _f("build-arg", "multi", "native", "KEY=VALUE, or KEY from the environment"),
    _f("insecure", "bool", "native", "push to the destinations over plain HTTP"),
    _f("skip-tls-verify", "bool", "native", "verify no registry's TLS certificate"),
    _f("insecure-pull", "bool", "mapped", "registries only pulled from (not destinations, not the cache repo) "
       "are tried over plain HTTP when HTTPS fails"),
    _f("skip-tls-verify-pull", "bool", "mapped", "registries only pulled from are not TLS-verified"),
    _f("push-retry", "int", "native", "retries of every registry request (default 3 here, 0 in kaniko)"),
    _f("push-ignore-immutable-tag-errors", "bool", "mapped", "a push refused because the tag is immutable "
       "(Artifact Registry, ECR) counts as done"),
    _f("image-fs-extract-retry", "int", "mapped", "at least this many registry retries: a failed extraction here "
       "is a failed download (retried) or a corrupt layer (never fixed by retrying)"),
    _f("image-download-retry", "int", "mapped", "at least this many retries of registry requests"),
    _f("kaniko-dir", "string", "mapped", "wharfie's scratch files go there (never captured in place), and "
       "DIR/.docker is the docker config when DOCKER_CONFIG is kaniko's /kaniko/.docker"),
    _f("tar-path", "string", "mapped", "also write the image as a docker archive (docker load, skopeo "
       "docker-archive:), tagged with the destinations"),
    _f("single-snapshot", "bool", "mapped", "each stage's own steps make one layer, the difference between its "
       "base's tree and its final tree"),
    _f("reproducible", "bool", "native", "clamp timestamps for equal digests"),
    _f("target", "string", "native", "build up to this stage"),
    _f("no-push", "bool", "native", "build only; push nothing"),
    _f("no-push-cache", "bool", "native", "read the layer cache but store nothing in it"),
    _f("cache-repo", "string", "native", "repository of the layer cache"),
    _f("cache-dir", "string", "native", "wharfie's local blob cache (kaniko's base-image cache directory serves as one)"),
    _f("digest-file", "string", "native", "write the image digest here"),
    _f("image-name-with-digest-file", "string", "native", "write REPO@DIGEST per destination here"),
    _f("image-name-tag-with-digest-file", "string", "mapped", "write REPO:TAG@DIGEST per destination here"),
    _f("oci-layout-path", "string", "native", "also write the image as an OCI layout here"),
    _f("compression", "compression", "native", "gzip or zstd (or none)"),
    _f("compression-level", "int", "native", "the compressor's level; kaniko's -1 is the compressor's default"),
    _f("cache", "bool", "native", "use and fill the remote layer cache"),
    _f("compressed-caching", "bool", "inert", "wharfie streams every layer to disk while compressing it; "
       "no layer is ever held in memory, so there is no trade to make"),
    _f("cleanup", "bool", "mapped", "after an in-place build, clear / (keeping wharfie, the context and volumes) "
       "for the next build; sandboxed builds never change /"),
    _f("cache-ttl", "duration", "native", "cache entries older than this are rebuilt (Go durations accepted)"),
    _f("insecure-registry", "multi", "native", "a registry reached over plain HTTP (repeatable)"),
    _f("skip-tls-verify-registry", "multi", "mapped", "a registry whose TLS certificate is not verified (repeatable)"),
    _f("registry-certificate", "keyvalue", "native", "HOST=PATH of a CA bundle for that registry"),
    _f("registry-client-cert", "keyvalue", "mapped", "HOST=CERT,KEY: a client certificate for mutual TLS with HOST"),
    _f("registry-map", "multikeyvalue", "mapped", "HOST=MIRROR[/PREFIX][;...]: pulls from HOST try each MIRROR first"),
    _f("registry-mirror", "multi", "native", "a Docker Hub mirror tried first (repeatable)"),
    _f("skip-default-registry-fallback", "bool", "mapped", "an image not found on its mirrors is an error "
       "instead of being pulled from its own registry"),
    _f("ignore-var-run", "bool", "mapped", "true: /var/run is never captured in a layer (wharfie's default, "
       "without the flag, captures it as docker does)"),
    _f("label", "multi", "native", "KEY=VALUE label (repeatable)"),
    _f("skip-unused-stages", "bool", "native", "only the stages the target needs are ever built, whatever its "
       "value: an unused stage cannot change the image"),
    _f("use-new-run", "bool", "inert", "kaniko's experimental mtime-based RUN detection; wharfie finds a step's "
       "changes by its overlay's upper directory or a full snapshot, with the same result"),
    _f("git", "git", "inert", "options of a git context; wharfie builds only a local directory context, so "
       "there is no clone to configure"),
    _f("cache-copy-layers", "bool", "native", "cache COPY and ADD results (default true here, false in kaniko)"),
    _f("cache-run-layers", "bool", "native", "cache RUN results"),
    _f("ignore-path", "multi", "native", "a path never captured in a layer"),
    _f("force-build-metadata", "bool", "inert", "config instructions (ENV, LABEL, ...) never make a layer here, as "
       "in docker and BuildKit; forcing empty layers would only change the digest"),
    _f("skip-push-permission-check", "bool", "inert", "wharfie does not probe push permission before the build; "
       "a denied push fails when pushing, with the repository and user named"),
    _f("whitelist-var-run", "bool", "deprecated", "--ignore-var-run"),
    _f("snapshotMode", "string", "deprecated", "--snapshot-mode"),
    _f("customPlatform", "string", "deprecated", "--custom-platform"),
    _f("tarPath", "string", "deprecated", "--tar-path"),
    # Not a flag of kaniko v1.23.2 (later forks have it); accepted all the same.
    _f("preserve-context", "bool", "inert", "the context is never deleted: in place it is on the ignore list, "
       "kept whole between stages"),
)

_BY_NAME = {flag.name: flag for flag in KANIKO_FLAGS}


def _param(flag: KanikoFlag) -> str:
    return "kaniko_" + flag.name.replace("-", "_")


def _click_option(flag: KanikoFlag) -> Callable[[Any], Any]:
    names = [f"--{flag.name}", *([f"-{flag.short}"] if flag.short else [])]
    common: dict[str, Any] = {"help": f"(kaniko) {flag.meaning}", "hidden": flag.handling == "inert"}
    if flag.kind == "bool":
        return click.option(*names, _param(flag), is_flag=False, flag_value="true", default=None,
                            metavar="[=true|false]", **common)
    if flag.kind in ("multi", "keyvalue", "multikeyvalue", "git"):
        return click.option(*names, _param(flag), multiple=True, **common)
    return click.option(*names, _param(flag), type=int if flag.kind == "int" else str, default=None, **common)


def kaniko_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Add the kaniko flags wharfie's `build` does not declare itself (mapped and inert ones)."""
    decorated = command
    for flag in reversed(KANIKO_FLAGS):
        if flag.handling in ("mapped", "inert"):
            decorated = _click_option(flag)(decorated)
    return decorated


@dataclass(frozen=True)
class KanikoSettings:
    """What kaniko's own flags ask of a build beyond wharfie's flags, in wharfie's terms."""

    context_sub_path: str | None = None
    tar_path: Path | None = None
    image_name_tag_with_digest_file: Path | None = None
    ignore_immutable_tag_errors: bool = False
    ignore_paths: tuple[str, ...] = ()
    log_format: str = "text"
    log_timestamp: bool = False
    cleanup: bool = False
    single_snapshot: bool = False
    work_dir: Path | None = None
    min_retries: int = 0
    registry: Mapping[str, Any] = field(default_factory=dict)  # RegistryOptions fields

    def context(self, context: Path) -> Path:
        """--context-sub-path applied to the resolved context directory."""
        if not self.context_sub_path:
            return context
        path = (context / self.context_sub_path).resolve()
        if not path.is_dir():
            raise click.BadParameter(f"{self.context_sub_path} is not a directory in the context {context}",
                                     param_hint="--context-sub-path")
        return path

    def build_options(self, options: BuildOptions) -> BuildOptions:
        return replace(options, ignore_paths=(*options.ignore_paths, *self.ignore_paths),
                       single_snapshot=self.single_snapshot, work_dir=self.work_dir or options.work_dir)

    def output_options(self, output: OutputOptions) -> OutputOptions:
        return replace(output, tar_path=self.tar_path, image_name_tag_with_digest_file=self.image_name_tag_with_digest_file,
                       ignore_immutable_tag_errors=self.ignore_immutable_tag_errors)

    def registry_options(self, options: RegistryOptions, *, push_to: Iterable[str | None]) -> RegistryOptions:
        """`options` with kaniko's registry flags; `push_to` are the references pushed to (destinations, cache)."""
        hosts = frozenset(parse_reference(ref).registry for ref in push_to if ref)
        return replace(options, retries=max(options.retries, self.min_retries), push_registries=hosts, **self.registry)


def _bool(kw: Mapping[str, Any], name: str) -> bool | None:
    value = kw[_param(_BY_NAME[name])]
    return None if value is None else go_bool(value, f"--{name}")


def _host_pairs(values: Iterable[str], flag: str) -> list[tuple[str, str]]:
    out = []
    for value in values:
        host, sep, rest = value.partition("=")
        if not sep or not host or not rest:
            raise click.BadParameter(f"expected HOST=VALUE, got {value!r}", param_hint=flag)
        out.append((normalize_host(host), rest))
    return out


def _client_certificates(values: Iterable[str]) -> dict[str, tuple[str, str]]:
    out = {}
    for host, files in _host_pairs(values, "--registry-client-cert"):
        cert, sep, key = files.partition(",")
        if not sep or not cert or not key or "," in key:
            raise click.BadParameter(f"expected {host}=/path/to/cert,/path/to/key, got {host}={files}",
                                     param_hint="--registry-client-cert")
        try:  # checked now, so a bad file fails the job before the build rather than at its push
            load_client_certificate(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), cert, key, registry=host)
        except ClientCertificateError as exc:
            raise click.BadParameter(str(exc), param_hint="--registry-client-cert") from None
        out[host] = (cert, key)
    return out


def _registry_maps(values: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """kaniko's multiKeyMultiValueArg: HOST=MIRROR pairs, ';'-separated, repeatable; mirrors kept in order."""
    out: dict[str, tuple[str, ...]] = {}
    pairs = [pair for value in values for pair in value.split(";") if pair]
    for host, mirror in _host_pairs(pairs, "--registry-map"):
        out[host] = (*out.get(host, ()), mirror)
    return out


def _registry_fields(kw: Mapping[str, Any]) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "skip_tls_verify_registries": frozenset(normalize_host(h) for h in kw["kaniko_skip_tls_verify_registry"]),
        "client_certificates": _client_certificates(kw["kaniko_registry_client_cert"]),
        "registry_maps": _registry_maps(kw["kaniko_registry_map"]),
        "skip_default_registry_fallback": bool(_bool(kw, "skip-default-registry-fallback")),
        "pull_insecure": bool(_bool(kw, "insecure-pull")),
        "pull_skip_tls_verify": bool(_bool(kw, "skip-tls-verify-pull")),
    }
    upstream = os.environ.get("UPSTREAM_CLIENT_TYPE")  # kaniko adds it to its User-Agent
    if upstream:
        fields["user_agent"] = f"{RegistryOptions.user_agent},{upstream}"
    return fields


def _kaniko_dir(value: str | None) -> Path | None:
    if not value or value == "/kaniko":
        return None  # kaniko's default: wharfie's own scratch place
    directory = Path(value)
    directory.mkdir(parents=True, exist_ok=True)
    if os.environ.get("DOCKER_CONFIG", "/kaniko/.docker") == "/kaniko/.docker" and (directory / ".docker").is_dir():
        os.environ["DOCKER_CONFIG"] = str(directory / ".docker")  # kaniko moves /kaniko there, config included
    return directory


def _explain(kw: Mapping[str, Any], notes: Iterable[str]) -> None:
    for note in notes:
        log.debug("kaniko: %s", note)
    for flag in KANIKO_FLAGS:
        if flag.handling not in ("mapped", "inert"):
            continue
        value = kw[_param(flag)]
        if value is None or value == ():
            continue
        if flag.handling == "inert":
            log.debug("kaniko flag --%s changes nothing here: %s", flag.name, flag.meaning)
        else:
            log.debug("kaniko flag --%s: %s", flag.name, flag.meaning)


def kaniko_settings(kw: dict[str, Any]) -> KanikoSettings:
    """Take the kaniko flags out of `kw` (click's values) and turn them into settings.

    The log format is applied at once (logging is already set up), then what each flag given does is logged.
    """
    log_format = kw["kaniko_log_format"]  # None: wharfie's plain lines (builder/cli/log_format.py says why)
    if log_format not in (None, "text", "color", "json"):
        raise click.BadParameter(f"not a valid log format: {log_format!r} (text, color or json)",
                                 param_hint="--log-format")
    apply_log_format(log_format, timestamp=bool(_bool(kw, "log-timestamp")))
    context = click.get_current_context(silent=True)
    _explain(kw, context.meta.get(NOTES_KEY, ()) if context is not None else ())
    if kw["kaniko_bucket"]:
        raise click.BadParameter("build contexts from cloud buckets are not supported: check the context out "
                                 "in the job and pass --context DIR", param_hint="--bucket")
    retries = [kw["kaniko_image_download_retry"] or 0, kw["kaniko_image_fs_extract_retry"] or 0]
    settings = KanikoSettings(
        context_sub_path=kw["kaniko_context_sub_path"],
        tar_path=Path(kw["kaniko_tar_path"]).absolute() if kw["kaniko_tar_path"] else None,
        image_name_tag_with_digest_file=(Path(kw["kaniko_image_name_tag_with_digest_file"]).absolute()
                                         if kw["kaniko_image_name_tag_with_digest_file"] else None),
        ignore_immutable_tag_errors=bool(_bool(kw, "push-ignore-immutable-tag-errors")),
        ignore_paths=("/var/run",) if _bool(kw, "ignore-var-run") else (),
        log_format=log_format or "text",
        log_timestamp=bool(_bool(kw, "log-timestamp")),
        cleanup=bool(_bool(kw, "cleanup")),
        single_snapshot=bool(_bool(kw, "single-snapshot")),
        work_dir=_kaniko_dir(kw["kaniko_kaniko_dir"]),
        min_retries=max(retries),
        registry=_registry_fields(kw),
    )
    for flag in KANIKO_FLAGS:
        if flag.handling == "inert" and flag.kind == "bool":
            _bool(kw, flag.name)  # accepted, but a value Go would refuse is still an error
        if flag.handling in ("mapped", "inert"):
            del kw[_param(flag)]
    return settings


def clean_up_after_build(options: BuildOptions, settings: KanikoSettings, *, root: Path = Path("/")) -> None:
    """kaniko's --cleanup: after an in-place build, clear `root` but for what in-place builds never touch."""
    if not settings.cleanup:
        return
    if options.isolation.mode != "in-place":
        log.debug("--cleanup: nothing to clean, the steps ran in a sandbox and / was never changed")
        return
    from builder.execution.inplace import clear_root, in_place_ignore  # only for --cleanup after an in-place build

    ignore = in_place_ignore(work_dir=Path(tempfile.gettempdir()), cache_dir=options.cache_dir,
                             context=options.context, extra=options.ignore_paths)
    log.info("--cleanup: clearing %s (keeping %d ignored paths)", root, len(ignore))
    clear_root(root, ignore)
