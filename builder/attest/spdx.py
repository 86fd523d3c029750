"""An SPDX 2.3 JSON document of a built image: the image, its base, and the packages found in it.

The shape follows SPDX 2.3's JSON schema (checked in the tests by spdx-tools'
validator): a document that DESCRIBES the image package, which CONTAINS each
package and is a DESCENDANT_OF its base image. Packages carry their purl as a
PACKAGE-MANAGER external reference; nothing is asserted that was not read
(licenses and download locations are NOASSERTION). The namespace is derived
from the content, so equal builds give equal documents.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from packageurl import PackageURL

from builder.attest.packages import Package
from oci.digest import Digest
from oci.models import Platform
from registry.reference import Reference

__all__ = ["NAMESPACE_BASE", "ImageRecord", "image_purl", "spdx_document"]

NAMESPACE_BASE = "https://wharfie.io/spdx"
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9.-]+")
# A homepage is copied only when it is plainly a web URL: it comes from the image, and one malformed
# value would make the whole document invalid.
_URL = re.compile(r"https?://[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(:[0-9]{1,5})?(/[^\s]*)?")


@dataclass(frozen=True)
class ImageRecord:
    """An image by name and manifest digest (the built image, or a base image it came from)."""

    reference: Reference | None  # None: not pushed anywhere (the name is then the digest)
    digest: Digest
    platform: Platform | None = None

    @property
    def name(self) -> str:
        return self.reference.name if self.reference is not None else "image"


def image_purl(image: ImageRecord) -> str:
    """pkg:oci/NAME@DIGEST?repository_url=HOST/REPO (purl's oci type: the name is the last path component)."""
    qualifiers: dict[str, str] = {}
    if image.platform is not None:
        qualifiers["arch"] = image.platform.architecture
        qualifiers["os"] = image.platform.os
    if image.reference is not None:
        qualifiers["repository_url"] = image.reference.name
    name = image.reference.repository.rpartition("/")[2] if image.reference is not None else "image"
    return PackageURL("oci", None, name, str(image.digest), qualifiers or None).to_string()


def _purl_ref(purl: str) -> list[dict[str, str]]:
    return [{"referenceCategory": "PACKAGE-MANAGER", "referenceType": "purl", "referenceLocator": purl}]


def _image_package(spdx_id: str, image: ImageRecord, comment: str) -> dict[str, Any]:
    return {
        "SPDXID": spdx_id,
        "name": image.name,
        "versionInfo": str(image.digest),
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": False,
        "checksums": [{"algorithm": image.digest.algorithm.upper(), "checksumValue": image.digest.hex}],
        "primaryPackagePurpose": "CONTAINER",
        "externalRefs": _purl_ref(image_purl(image)),
        "comment": comment,
    }


def _package_id(package: Package) -> str:
    tag = hashlib.sha256(f"{package.purl}\0{package.found_in}".encode()).hexdigest()[:12]
    return f"SPDXRef-Package-{package.ecosystem}-{_ID_UNSAFE.sub('-', package.name)}-{tag}"


def _package(package: Package) -> dict[str, Any]:
    out: dict[str, Any] = {
        "SPDXID": _package_id(package),
        "name": package.name,
        "versionInfo": package.version,
        "supplier": package.supplier or "NOASSERTION",
        "downloadLocation": "NOASSERTION",
        "filesAnalyzed": False,
        "externalRefs": _purl_ref(package.purl),
        "sourceInfo": f"read from /{package.found_in}",
    }
    if package.homepage and _URL.fullmatch(package.homepage):
        out["homepage"] = package.homepage
    return out


def spdx_document(image: ImageRecord, packages: Sequence[Package], base: ImageRecord | None, *, created: str,
                  tool: str, not_covered: Sequence[str] = ()) -> dict[str, Any]:
    """The SPDX 2.3 document (a JSON-ready dict); `not_covered` are the notes of what was found but not read."""
    listed = [_package(p) for p in packages]
    relationships = [{"spdxElementId": "SPDXRef-DOCUMENT", "relationshipType": "DESCRIBES",
                      "relatedSpdxElement": "SPDXRef-Image"}]
    relationships += [{"spdxElementId": "SPDXRef-Image", "relationshipType": "CONTAINS",
                       "relatedSpdxElement": p["SPDXID"]} for p in listed]
    images = [_image_package("SPDXRef-Image", image, "the image built")]
    if base is not None:
        images.append(_image_package("SPDXRef-BaseImage", base, "the base image (FROM) of the final stage"))
        relationships.append({"spdxElementId": "SPDXRef-Image", "relationshipType": "DESCENDANT_OF",
                              "relatedSpdxElement": "SPDXRef-BaseImage"})
    content = json.dumps([image.name, str(image.digest), listed], sort_keys=True).encode()
    document: dict[str, Any] = {
        "spdxVersion": "SPDX-2.3",
        "dataLicense": "CC0-1.0",
        "SPDXID": "SPDXRef-DOCUMENT",
        "name": f"{image.name}@{image.digest}",
        "documentNamespace": f"{NAMESPACE_BASE}/{_ID_UNSAFE.sub('-', image.name)}-{hashlib.sha256(content).hexdigest()}",
        "creationInfo": {"created": created, "creators": [f"Tool: {tool}"]},
        "packages": images + listed,
        "relationships": relationships,
    }
    if not_covered:
        document["comment"] = "; ".join(not_covered)
    return document
