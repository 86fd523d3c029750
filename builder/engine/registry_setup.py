"""From the CLI's registry flags to one `RegistryClient`."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from oci.errors import WharfieError
from registry.client import RegistryClient
from registry.options import RegistryOptions
from registry.progress import choose_progress
from registry.reference import parse_reference

__all__ = ["registry_client"]


def registry_client(*, insecure: Iterable[str] = (), insecure_destinations: Iterable[str] = (),
                    skip_tls_verify: bool = False, certificates: Iterable[str] = (), retries: int = 3,
                    push_concurrency: int = 4, mirrors: Iterable[str] = (), quiet: bool = False,
                    adjust: Callable[[RegistryOptions], RegistryOptions] | None = None) -> RegistryClient:
    """`adjust` refines the options made from these flags (kaniko's registry flags: builder/cli/kaniko_flags.py)."""
    hosts = set(insecure) | {parse_reference(d).registry for d in insecure_destinations}
    ca_files: dict[str, str] = {}
    for item in certificates:
        host, sep, path = item.partition("=")
        if not sep or not host or not path:
            raise WharfieError(f"--registry-certificate expects HOST=PATH, got {item!r}")
        ca_files[host] = path
    options = RegistryOptions(insecure_registries=frozenset(hosts), skip_tls_verify=skip_tls_verify,
                              ca_files=ca_files, retries=retries, push_concurrency=push_concurrency,
                              mirrors=tuple(mirrors))
    return RegistryClient(adjust(options) if adjust else options, progress=choose_progress(quiet=quiet))
