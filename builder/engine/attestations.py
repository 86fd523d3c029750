"""The build's attestations: the session's facts turned into an SBOM and a provenance, attached to the image.

Runs after the image is delivered: its manifest is final, and what is made
here only points at it (builder/attest/ makes and attaches the documents).
"""

from __future__ import annotations

import datetime as _dt
import os
import time
from collections.abc import Sequence

from builder.attest.provenance import BuildFacts
from builder.attest.publish import attach, build_dependencies, final_base, make_attestations
from builder.attest.spdx import ImageRecord
from builder.engine.output import BuiltImage
from builder.engine.session import BuildSession
from builder.execution.run_mounts import SecretSource
from builder.frontend.plan import BuildPlan
from oci.models import Descriptor
from registry.reference import parse_reference

__all__ = ["attest_image", "seconds_timestamp"]

_MAX_SECRET = 1 << 20


def seconds_timestamp(epoch: float | None = None) -> str:
    """RFC 3339 to the second, in UTC (SPDX's `created` allows no fraction)."""
    moment = time.time() if epoch is None else epoch
    return _dt.datetime.fromtimestamp(moment, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _secret_values(secrets: Sequence[SecretSource]) -> list[str]:
    """The --secret values, only to make sure none of them reaches the provenance."""
    values = []
    for secret in secrets:
        try:
            if secret.env is not None:
                values.append(os.environ.get(secret.env, ""))
            elif secret.path is not None:
                with secret.path.open("rb") as handle:
                    values.append(handle.read(_MAX_SECRET).decode(errors="replace").strip())
        except OSError:
            continue
    return [value for value in values if value]


def attest_image(session: BuildSession, plan: BuildPlan, image: BuiltImage, *, pushed: bool, started: str) -> None:
    """Make the SBOM and/or provenance of `image`, write their files, attach them where it was pushed."""
    options = session.options
    destinations = [parse_reference(d) for d in options.output.destinations]
    platform = image.state.config.platform
    subject = ImageRecord(destinations[0].repo_ref if destinations else None, image.digest, platform)
    images = session.resolved_images()
    facts = BuildFacts(dockerfile=options.dockerfile, context=options.context, target=options.target,
                       build_args=options.build_args, platform=str(platform),
                       dependencies=build_dependencies(plan, images), started=started,
                       finished=seconds_timestamp(), secret_values=_secret_values(options.secrets))
    artifacts = make_attestations(options.attest, state=image.state, subject=subject,
                                  base=final_base(plan, images, platform), facts=facts, work_dir=session.work_dir,
                                  created=seconds_timestamp(options.source_date_epoch))
    if pushed:
        manifest = Descriptor(image.manifest_media_type, image.digest, len(image.manifest_raw))
        attach(session.client, destinations, manifest, artifacts)
