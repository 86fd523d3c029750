"""registry/: an OCI distribution client (pull, push, tags, cleanup), GitLab's registry first.

The public surface is re-exported here; the modules are split by verb as
go-containerregistry's `remote` is (manifests, blobs, upload, mount, push,
tags, cleanup, pull) over one `Session` (per-host clients, auth, retries).
Callers hold a `RegistryClient` and never its session.

The names are loaded on first use (PEP 562 `__getattr__`): importing a light
module such as `registry.options` must not pull in httpx and the whole client,
or `wharfie --help` would pay for them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from registry.cleanup import CleanupPlan, CleanupPolicy, TagInfo
    from registry.client import RegistryClient
    from registry.credentials import resolve_credentials
    from registry.dockerconfig import Credentials
    from registry.errors import (
        AuthError,
        InvalidReferenceError,
        InvalidResponseError,
        LimitExceededError,
        NotFoundError,
        RegistryError,
        RegistryUnreachableError,
    )
    from registry.layer import RemoteLayer
    from registry.manifests import ResolvedImage
    from registry.options import RegistryOptions
    from registry.reference import Reference, parse_reference

_WHERE = {
    "AuthError": "registry.errors",
    "CleanupPlan": "registry.cleanup",
    "CleanupPolicy": "registry.cleanup",
    "Credentials": "registry.dockerconfig",
    "InvalidReferenceError": "registry.errors",
    "InvalidResponseError": "registry.errors",
    "LimitExceededError": "registry.errors",
    "NotFoundError": "registry.errors",
    "Reference": "registry.reference",
    "RegistryClient": "registry.client",
    "RegistryError": "registry.errors",
    "RegistryOptions": "registry.options",
    "RegistryUnreachableError": "registry.errors",
    "RemoteLayer": "registry.layer",
    "ResolvedImage": "registry.manifests",
    "TagInfo": "registry.cleanup",
    "parse_reference": "registry.reference",
    "resolve_credentials": "registry.credentials",
}

__all__ = [
    "AuthError",
    "CleanupPlan",
    "CleanupPolicy",
    "Credentials",
    "InvalidReferenceError",
    "InvalidResponseError",
    "LimitExceededError",
    "NotFoundError",
    "Reference",
    "RegistryClient",
    "RegistryError",
    "RegistryOptions",
    "RegistryUnreachableError",
    "RemoteLayer",
    "ResolvedImage",
    "TagInfo",
    "parse_reference",
    "resolve_credentials",
]
assert sorted(__all__) == sorted(_WHERE)


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 'registry' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_WHERE})
