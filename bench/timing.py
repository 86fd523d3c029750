"""Wall time and peak RSS of one command, measured by GNU time (``/usr/bin/time -v``, Debian package ``time``).

GNU time reports the largest resident set among the command and the children it
waited for, so a builder's helpers (unshare, tar, a RUN step's programs) count
as its own; the same holds for the CPU time (user + system) it reports.  Wall
time is taken around the whole command here, with ``perf_counter``, because
GNU time prints it only to the hundredth.  On a machine shared with other work
the CPU time moves much less than the wall time, so both are kept.
"""

from __future__ import annotations

import re
import statistics
import subprocess
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = ["GNU_TIME", "BenchError", "Measurement", "median", "timed"]

GNU_TIME = "/usr/bin/time"
_MAX_RSS = re.compile(r"Maximum resident set size \(kbytes\): (\d+)")
_CPU = re.compile(r"(?:User|System) time \(seconds\): ([\d.]+)")


class BenchError(RuntimeError):
    """A measured command failed: the message names it and ends with its output's tail."""


@dataclass(frozen=True)
class Measurement:
    seconds: float
    rss_mb: float
    cpu_seconds: float
    """User plus system time of the command and its children."""

    def __add__(self, other: Measurement) -> Measurement:
        """Two commands run one after the other (buildah's bud then push): times add up, the peak is the larger."""
        return Measurement(self.seconds + other.seconds, max(self.rss_mb, other.rss_mb),
                           self.cpu_seconds + other.cpu_seconds)


def timed(command: list[str], *, log: Path, env: Mapping[str, str] | None = None, cwd: Path | None = None,
          what: str = "") -> Measurement:
    """Run ``command`` with its output appended to ``log``; raise `BenchError` if it fails."""
    report = log.with_name(log.name + ".time")
    with log.open("ab") as out:
        start = time.perf_counter()
        result = subprocess.run([GNU_TIME, "-v", "-o", str(report), *command], stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, env=dict(env) if env is not None else None, cwd=cwd,
                                check=False)
        seconds = time.perf_counter() - start
    text = report.read_text(errors="replace")
    report.unlink()
    if result.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
        raise BenchError(f"{what or command[0]} failed with exit code {result.returncode} (log {log}):\n{tail}")
    found = _MAX_RSS.search(text)
    if found is None:
        raise BenchError(f"GNU time printed no peak RSS for {what or command[0]}: {text[-300:]}")
    return Measurement(seconds, int(found[1]) / 1024, sum(float(cpu) for cpu in _CPU.findall(text)))


def median(measurements: Iterable[Measurement]) -> Measurement:
    """The median wall and CPU times, and the largest peak RSS seen in any of the runs."""
    items = list(measurements)
    return Measurement(statistics.median(m.seconds for m in items), max(m.rss_mb for m in items),
                       statistics.median(m.cpu_seconds for m in items))
