"""registry/: an OCI distribution client (pull, push, tags, cleanup), GitLab's registry first.

The public surface is re-exported here; the modules are split by verb as
go-containerregistry's `remote` is (manifests, blobs, upload, mount, push,
tags, cleanup, pull) over one `Session` (per-host clients, auth, retries).
"""

from registry.client import RegistryClient
from registry.credentials import resolve_credentials
from registry.dockerconfig import Credentials
from registry.errors import AuthError, InvalidReferenceError, RegistryError, RegistryUnreachableError
from registry.manifests import ResolvedImage
from registry.options import RegistryOptions
from registry.reference import Reference, parse_reference

__all__ = [
    "AuthError",
    "Credentials",
    "InvalidReferenceError",
    "Reference",
    "RegistryClient",
    "RegistryError",
    "RegistryOptions",
    "RegistryUnreachableError",
    "ResolvedImage",
    "parse_reference",
    "resolve_credentials",
]
