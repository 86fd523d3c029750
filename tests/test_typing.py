"""wharfie's packages pass mypy in strict mode (the configuration is pyproject.toml's [tool.mypy])."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_mypy_strict_finds_no_errors() -> None:
    assert importlib.util.find_spec("mypy") is not None, "mypy is not installed: scripts/setup.sh installs it"
    # The incremental cache (.mypy_cache in the checkout) makes a run after a small change take a second or two;
    # a cold run takes about 12 s here.
    result = subprocess.run([sys.executable, "-m", "mypy"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"mypy reports errors:\n{result.stdout}{result.stderr}"
    assert "Success: no issues found" in result.stdout, result.stdout
