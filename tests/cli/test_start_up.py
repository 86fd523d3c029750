"""What a build's start loads: not the libraries only a terminal or an async client would use.

rich and pygments come in through httpx's own command line (`httpx._main`) and trio through httpcore's
async backends; together ~0.15 s of every start on a machine that has them installed (issue 14: a fully
cached rebuild takes well under a second). The CLI refuses them in its own process.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

_SHOW_LOADED = (
    "import atexit, sys\n"
    "atexit.register(lambda: print('loaded:', sorted({m.split('.')[0] for m in sys.modules if sys.modules[m]}"
    " & {'rich', 'pygments', 'trio', 'httpx'}), file=sys.stderr))\n"
    "from builder.cli.app import main\n"
    "sys.argv = ['wharfie', *sys.argv[1:]]\n"
    "main()\n"
)


def test_a_build_loads_httpx_but_not_rich_pygments_or_trio(tmp_path: Path) -> None:
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM 127.0.0.1:9/nothing/here\n")  # refused at once: the discard port
    result = subprocess.run([sys.executable, "-c", _SHOW_LOADED, "build", str(context), "--no-push",
                             "--insecure-registry", "127.0.0.1:9", "--cache-dir", str(tmp_path / "cache")],
                            capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[2])
    assert result.returncode != 0 and "127.0.0.1:9" in result.stderr, result.stderr
    assert "loaded: ['httpx']" in result.stderr, result.stderr
