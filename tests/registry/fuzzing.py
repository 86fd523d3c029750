"""Settings of the registry fuzz tests: a fixed seed and a bounded count in CI, long campaigns on demand."""

from __future__ import annotations

import datetime as dt
import os

from hypothesis import HealthCheck, settings
from hypothesis.errors import InvalidArgument

__all__ = ["campaign"]

_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]

try:  # tests/conftest.py may register it for every surface: theirs stands
    settings.get_profile("long")
except InvalidArgument:
    settings.register_profile("long", max_examples=20_000, deadline=None, suppress_health_check=_SLOW_OK)


def _long() -> bool:
    return os.environ.get("WHARFIE_FUZZ") == "long" or settings.get_current_profile_name() == "long"


def campaign(examples: int) -> settings:
    """`examples` derandomized examples (the seed is fixed by the test's name), or the long profile's count.

    A deadline stands in for a hang detector: no example of these in-process
    tests takes more than milliseconds, so ten seconds is a hang.
    """
    if _long():
        return settings(settings.get_profile("long"), deadline=dt.timedelta(seconds=10), suppress_health_check=_SLOW_OK)
    return settings(max_examples=examples, derandomize=True, database=None, deadline=dt.timedelta(seconds=10),
                    suppress_health_check=_SLOW_OK)
