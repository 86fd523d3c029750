"""Which platform a stage is built for, and an image's config labelled with it.

A stage is built for `FROM --platform` when given (e.g. `$BUILDPLATFORM` for a
cross-compiling stage), else for the build's `--platform`. Its base is picked
from an index for that platform. When a platform was asked for, a
single-platform base that is something else is used anyway, as BuildKit
does, with a warning, and its config is labelled with the platform the
stage was built for; without one, the base's config keeps its own.
"""

from __future__ import annotations

import logging
from dataclasses import replace

from builder.image.state import ImageState
from oci.models import Platform

__all__ = ["stage_platform", "with_platform"]


def stage_platform(from_platform: str | None, default: Platform) -> Platform:
    """`FROM --platform`'s value (already expanded) as a `Platform`, else `default`."""
    return Platform.parse(from_platform) if from_platform else default


def with_platform(state: ImageState, platform: Platform, name: str, log: logging.Logger) -> ImageState:
    """`state` with its config's os, architecture and variant set to `platform`'s."""
    config = state.config
    if (config.os, config.architecture) != (platform.os, platform.architecture):
        log.warning("warning: base image %s is for %s, not %s: building for %s anyway", name, config.platform,
                    platform, platform)
    elif platform.variant is None or config.variant == platform.variant:
        return state
    variant = platform.variant if platform.variant is not None else (
        config.variant if config.architecture == platform.architecture else None)
    return state.with_config(replace(config, os=platform.os, architecture=platform.architecture, variant=variant))
