"""Hypothesis profiles for the fuzz tests.

CI runs every fuzz test with a fixed seed and a small example budget (see
`fuzz_support.fuzz_settings`). A long campaign on demand:

    pytest tests/fuzz --hypothesis-profile=long      (or WHARFIE_FUZZ=long pytest tests/fuzz)

multiplies every budget (by 100, or by $WHARFIE_FUZZ_FACTOR), draws fresh
random examples and keeps Hypothesis' example database (.hypothesis/), so a
failure found once is replayed first next time. Every failure found becomes
an ``@example`` regression in the test.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis.errors import InvalidArgument

LONG = "long"

try:
    settings.get_profile(LONG)  # another suite may have registered it first: reuse theirs
except InvalidArgument:
    settings.register_profile(LONG, max_examples=20_000, deadline=None, derandomize=False,
                              suppress_health_check=list(HealthCheck))

if os.environ.get("WHARFIE_FUZZ") == LONG:
    settings.load_profile(LONG)
