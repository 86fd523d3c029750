"""Cross-repository blob mounts: ``POST /v2/DST/blobs/uploads/?mount=DIGEST&from=SRC``.

A layer that already lives in another repository of the same registry (the
base image's, the cache repo's, an earlier destination's) is linked, not
uploaded: 0 bytes on the wire. The token request names both repositories
(push to the destination, pull from the source). A registry that cannot
mount answers 202 with an upload session, which the caller uploads into.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from oci.digest import Digest
from registry.auth import repository_scope
from registry.reference import Reference
from registry.session import Session
from registry.upload import upload_location

__all__ = ["MountResult", "try_mount"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MountResult:
    mounted: bool
    location: str | None = None
    """When not mounted: the upload session the registry opened instead."""


def try_mount(session: Session, ref: Reference, digest: Digest, source: Reference) -> MountResult:
    """Ask `ref`'s registry to mount `digest` from `source`'s repository."""
    response = session.call(
        ref, "POST", "blobs/uploads/", action="push", ok=(201, 202),
        params={"mount": str(digest), "from": source.repository},
        extra_scopes=(repository_scope(source.repository, ("pull",)),),
        headers={"Content-Length": "0"},
        what=f"mount of {digest.short} from {source.repository} into {ref.context('push')}",
    )
    if response.status_code == 201:
        log.debug("mounted %s from %s into %s", digest.short, source.repository, ref.repository)
        return MountResult(True)
    return MountResult(False, upload_location(response, ref))
