"""A stage's platform: FROM --platform over --platform, and a mismatched base's config relabelled with a warning."""

from __future__ import annotations

import logging

import pytest

from builder.image.platforms import stage_platform, with_platform
from builder.image.state import ImageState
from oci.models import ImageConfig, Platform


def test_from_platform_wins_over_the_build_platform() -> None:
    default = Platform("linux", "arm64")
    assert stage_platform(None, default) == default
    assert stage_platform("linux/amd64", default) == Platform("linux", "amd64")
    assert stage_platform("linux/arm/v7", default) == Platform("linux", "arm", "v7")


def test_a_base_of_another_platform_is_relabelled_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test-platforms")
    state = ImageState(ImageConfig(architecture="amd64", os="linux"))
    with caplog.at_level(logging.WARNING, logger="test-platforms"):
        relabelled = with_platform(state, Platform("linux", "arm64", "v8"), "base:1", log)
    assert relabelled.config.platform == Platform("linux", "arm64", "v8")
    assert "base image base:1 is for linux/amd64, not linux/arm64/v8" in caplog.text


def test_a_matching_base_is_kept_and_its_variant_completed(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("test-platforms")
    state = ImageState(ImageConfig(architecture="arm", os="linux", variant="v7"))
    with caplog.at_level(logging.WARNING, logger="test-platforms"):
        assert with_platform(state, Platform("linux", "arm"), "b", log) is state
        assert with_platform(state, Platform("linux", "arm", "v7"), "b", log) is state
        assert with_platform(state, Platform("linux", "arm", "v6"), "b", log).config.variant == "v6"
    assert caplog.text == ""
