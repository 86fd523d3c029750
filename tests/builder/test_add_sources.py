"""ADD helpers: URL credentials never leave the process."""

from __future__ import annotations

import pytest

from builder.steps.add_sources import redact_url


@pytest.mark.parametrize(("url", "shown"), [
    ("https://user:s3cret@example.com/a.tgz", "https://example.com/a.tgz"),
    ("https://token@example.com:8443/x?y=1", "https://example.com:8443/x?y=1"),
    ("https://example.com/plain", "https://example.com/plain"),
    ("file.txt", "file.txt"),
])
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown
