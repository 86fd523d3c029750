"""The registry client a build uses: the caller's `RegistryOptions`, plus its destinations over plain HTTP
when asked (kaniko's `--insecure`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from registry.client import RegistryClient
from registry.options import RegistryOptions
from registry.progress import choose_progress
from registry.reference import parse_reference

__all__ = ["registry_client"]


def registry_client(options: RegistryOptions | None = None, *, insecure_destinations: Iterable[str] = (),
                    quiet: bool = False) -> RegistryClient:
    options = options or RegistryOptions()
    hosts = {parse_reference(d).registry for d in insecure_destinations}
    if hosts:
        options = replace(options, insecure_registries=options.insecure_registries | hosts)
    return RegistryClient(options, progress=choose_progress(quiet=quiet))
