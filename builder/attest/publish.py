"""After a build: make the SBOM and the provenance of the image, write them to files, attach them as referrers.

The image's manifest is already final (and pushed) when this runs: the
attestations point at it through their `subject`, so asking for them never
changes the image's digest.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from builder.attest.image_files import collect_package_files
from builder.attest.options import AttestOptions
from builder.attest.packages import catalog
from builder.attest.provenance import BuildFacts, Dependency, provenance_statement, wharfie_version
from builder.attest.spdx import ImageRecord, spdx_document
from builder.frontend.plan import BuildPlan
from builder.image.state import ImageState
from oci import mediatypes as mt
from oci.digest import Digest
from oci.errors import WharfieError
from oci.models import Descriptor, Platform
from registry.client import RegistryClient
from registry.reference import Reference
from registry.referrers import Artifact, push_referrer

__all__ = ["attach", "build_dependencies", "final_base", "make_attestations"]

log = logging.getLogger("wharfie")

CREATED_ANNOTATION = "org.opencontainers.image.created"


# What the engine's session resolved: (name as written, platform) -> (state, reference, manifest digest).
ResolvedImages = Mapping[tuple[str, Platform], tuple[ImageState, Reference, Digest]]


def final_base(plan: BuildPlan, images: ResolvedImages, platform: Platform) -> ImageRecord | None:
    """The image the target stage starts from, following `FROM stage` back to an image (None: scratch)."""
    stage = plan.stages[plan.target]
    while stage.base_stage is not None:
        stage = plan.stages[stage.base_stage]
    if stage.is_scratch:
        return None
    candidates = [key for key in images if key[0] == stage.base]
    key = (stage.base, platform) if (stage.base, platform) in images else (candidates[0] if candidates else None)
    if key is None:
        return None
    state, ref, digest = images[key]
    return ImageRecord(ref.repo_ref, digest, state.config.platform)


def build_dependencies(plan: BuildPlan, images: ResolvedImages) -> list[Dependency]:
    """Every image the build resolved, by digest: stage bases first, then COPY --from and RUN --mount sources."""
    bases = {plan.stages[index].base for index in plan.order if plan.stages[index].base_stage is None}
    out = []
    for (name, platform), (state, ref, digest) in sorted(images.items(),
                                                          key=lambda item: (item[0][0] not in bases, str(item[0]))):
        role = "base" if name in bases else "copy or mount source"
        out.append(Dependency(ImageRecord(ref.repo_ref, digest, state.config.platform), role))
    return out


def _json(document: dict[str, Any]) -> bytes:
    return json.dumps(document, indent=2, ensure_ascii=False).encode() + b"\n"


def make_attestations(options: AttestOptions, *, state: ImageState, subject: ImageRecord, base: ImageRecord | None,
                      facts: BuildFacts, work_dir: Path, created: str) -> list[Artifact]:
    """The SBOM and/or provenance asked for, as artifacts; also written to their files."""
    out: list[Artifact] = []
    annotations = {CREATED_ANNOTATION: created}
    if options.sbom:
        files = collect_package_files(state, work_dir)
        for warning in files.warnings:
            log.warning("warning: SBOM: %s", warning)
        not_covered = [f"rpm database /{path} found: rpm packages are not covered by this SBOM" for path in files.rpm]
        for note in not_covered:
            log.warning("warning: %s", note)
        packages = catalog(files)
        document = spdx_document(subject, packages, base, created=created, tool=f"wharfie-{wharfie_version()}",
                                 not_covered=not_covered)
        log.info("SBOM: %d packages", len(packages))
        out.append(Artifact(mt.SPDX_JSON, _json(document), annotations))
        _write(options.sbom_file, out[-1].payload)
    if options.provenance:
        out.append(Artifact(mt.IN_TOTO_JSON, _json(provenance_statement(subject, facts)), annotations))
        _write(options.provenance_file, out[-1].payload)
    return out


def attach(client: RegistryClient, destinations: Sequence[Reference], subject: Descriptor,
           artifacts: Sequence[Artifact]) -> None:
    """Attach every artifact to `subject` in each destination repository (once per repository)."""
    repos = list(dict.fromkeys(ref.repo_ref for ref in destinations))
    for repo in repos:
        for artifact in artifacts:
            pushed = push_referrer(client.session, repo, subject, artifact, progress=client.progress)
            log.info("attached %s to %s@%s as %s", artifact.artifact_type, repo.name, subject.digest.short,
                     pushed.digest)


def _write(path: Path | None, payload: bytes) -> None:
    if path is None:
        return
    if not path.parent.is_dir():
        raise WharfieError(f"cannot write {path}: {path.parent} is not a directory")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(payload)
    os.replace(tmp, path)
