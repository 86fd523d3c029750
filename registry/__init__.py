"""registry/: an OCI distribution client (pull, push, tags, cleanup), GitLab's registry first.

The public surface is re-exported here; the modules are split by verb as
go-containerregistry's `remote` is (manifests, blobs, upload, mount, push,
tags, cleanup, pull) over one `Session` (per-host clients, auth, retries).
Callers hold a `RegistryClient` and never its session.
"""

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
