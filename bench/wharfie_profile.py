"""Where a wharfie build's time goes, from its ``-v debug`` log stamped line by line as it arrives.

wharfie's log lines carry no time of their own; the bench reads the child's
stderr (line-buffered, as Python's stderr is) and stamps each line with the
seconds since the process started.  The phases are read from the log's shape,
not from wharfie's internals, so the profile survives restructuring:

- start-up: process start to the first ``stage``/``FROM`` line (imports, probes);
- FROM: the base's manifest and config resolved;
- each instruction: its line to the next instruction's (a RUN that is the
  stage's first to need the rootfs includes extracting the base: its
  ``extracting`` line and the ``layer`` line that ends the snapshot are shown
  as offsets inside it);
- push: the end of the last instruction to the ``pushed REF@DIGEST`` line;
- exit: that line to the end of the process (work tree removal, interpreter exit).

The log does not say when extracting the base ends, so `extraction_cost`
measures it apart: wharfie's own ``layers.extract.extract_layer`` on the base's
blob in a child process, then ``rm -rf`` of the tree it made.
"""

from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.timing import BenchError, timed

__all__ = ["Phase", "Profile", "extraction_cost", "parse_profile", "stamped_run"]

INSTRUCTIONS = frozenset({"RUN", "COPY", "ADD", "ENV", "WORKDIR", "CMD", "ENTRYPOINT", "USER", "LABEL", "EXPOSE",
                          "VOLUME", "ARG", "SHELL", "STOPSIGNAL", "HEALTHCHECK", "ONBUILD", "MAINTAINER"})
_NOTABLE = ("extracting ", "downloaded ", "layer sha256:")
OWN_RSS_LINE = "peak RSS of wharfie itself"


@dataclass(frozen=True)
class Phase:
    name: str
    start: float
    end: float
    notes: tuple[str, ...] = ()
    """Notable lines inside the phase, as ``+OFFSET text``."""

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass
class Profile:
    total: float
    phases: list[Phase] = field(default_factory=list)
    own_rss: str | None = None  # wharfie's last debug line: its own peak RSS, its RUN steps' processes apart

    def render(self, title: str) -> str:
        lines = [f"{title}: {self.total:.2f} s in all"]
        for phase in self.phases:
            lines.append(f"  {phase.seconds:6.2f} s  {phase.name[:90]}")
            lines += [f"{'':14}{note[:100]}" for note in phase.notes]
        if self.own_rss:
            lines.append(f"  {self.own_rss}")
        return "\n".join(lines)


def stamped_run(command: list[str], log: Path, *, cwd: Path | None = None) -> tuple[list[tuple[float, str]], float]:
    """Run ``command``, stamping each stderr line; write them to ``log``; return (lines, total seconds)."""
    stamped: list[tuple[float, str]] = []
    start = time.perf_counter()
    with subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True, cwd=cwd) as process:
        assert process.stderr is not None
        for line in process.stderr:
            stamped.append((time.perf_counter() - start, line.rstrip("\n")))
    total = time.perf_counter() - start
    log.write_text("".join(f"{at:8.3f} {text}\n" for at, text in stamped) + f"{total:8.3f} (exit {process.returncode})\n")
    if process.returncode != 0:
        raise BenchError(f"wharfie failed ({process.returncode}) under -v debug; stamped log in {log}:\n"
                         + "\n".join(text for _, text in stamped[-15:]))
    return stamped, total


def _is_instruction(text: str) -> bool:
    return text.split(" ", 1)[0] in INSTRUCTIONS


def parse_profile(lines: list[tuple[float, str]], total: float) -> Profile:
    """Cut a stamped ``-v debug`` log into the phases named in the module docstring."""
    profile = Profile(total)
    profile.own_rss = next((text for _, text in lines if text.startswith(OWN_RSS_LINE)), None)
    first = next((at for at, text in lines if text.startswith(("stage ", "FROM "))), None)
    if first is None:
        return profile
    profile.phases.append(Phase("start-up (imports, probes) to the first stage", 0.0, first))
    result = next((at for at, text in reversed(lines) if text.startswith("pushed ") and "@sha256:" in text), total)
    marks = [(at, text) for at, text in lines if (_is_instruction(text) or text.startswith(("FROM ", "stage ")))
             and at <= result]
    for index, (at, text) in enumerate(marks):
        if text.startswith("stage "):
            continue
        if index + 1 < len(marks):
            end = marks[index + 1][0]
        else:  # the last instruction ends with its last indented detail line
            end = max((t for t, line in lines if at <= t <= result and line.startswith(" ")), default=at)
        notes = tuple(f"+{t - at:.2f} s {line}" for t, line in lines
                      if at <= t <= end and line.startswith(_NOTABLE))
        profile.phases.append(Phase(text, at, end, notes))
    last_end = profile.phases[-1].end
    profile.phases.append(Phase("push (after the last step) to the printed result", last_end, result))
    profile.phases.append(Phase("exit after the result (work tree removal, interpreter exit)", result, total))
    return profile


_EXTRACT = ("import sys; from pathlib import Path; from layers.extract import extract_layer; "
            "extract_layer(open(sys.argv[1], 'rb'), Path(sys.argv[2]))")


def extraction_cost(blob: Path, work: Path, *, repo: Path, python: str) -> str:
    """One line: wharfie extracting ``blob`` into an empty dir under ``work``, then removing that tree."""
    tree = work / "extract-probe"
    log = work / "extract-probe.log"
    try:
        extract = timed([python, "-c", _EXTRACT, str(blob), str(tree)], log=log, cwd=repo, what="extract_layer")
        remove = timed(["rm", "-rf", str(tree)], log=log, what="rm -rf")
    except BenchError as exc:  # layers/ may have moved on; the rest of the profile still stands
        return f"extraction not measured: {str(exc).splitlines()[0]}"
    finally:
        subprocess.run(["rm", "-rf", str(tree), str(log)], check=False)
    return (f"extracting the Debian base alone ({blob.stat().st_size / 1e6:.0f} MB gzip), layers.extract in a child: "
            f"{extract.seconds:.2f} s (cpu {extract.cpu_seconds:.2f} s), {extract.rss_mb:.0f} MB; "
            f"rm -rf of the tree: {remove.seconds:.2f} s (cpu {remove.cpu_seconds:.2f} s)")
