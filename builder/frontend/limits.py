"""The limits a Dockerfile must stay within, in one place; each error that enforces one names it.

Why: the Dockerfile is untrusted input, and a few bytes of it can otherwise
ask for unbounded work before any step runs: a variable that doubles at every
ENV (`ENV A=$A$A`, forty times), `${a:-${a:-...}}` nested until the stack
ends, a line of a million heredocs. Docker
has few such limits (BuildKit refuses physical lines of 64 KiB and more); these
are far above what real Dockerfiles use and far below what would exhaust a CI
runner. The README's "Errors" section lists them.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "LIMITS",
    "MAX_DOCKERFILE_SIZE",
    "MAX_EXPANDED_LENGTH",
    "MAX_EXPANSION_DEPTH",
    "MAX_HEREDOCS",
    "MAX_INSTRUCTIONS",
    "MAX_LINE_LENGTH",
    "MAX_STAGES",
    "MAX_VARIABLES_SIZE",
    "Limit",
]


@dataclass(frozen=True)
class Limit:
    """One limit: the name errors and the README give it, its value and the unit it counts."""

    name: str
    value: int
    unit: str

    def exceeded(self, what: str) -> str:
        """The error message: what went over, and which limit it went over."""
        return f"{what} exceeds the limit {self.name} = {self.value} {self.unit}"


MiB = 1024 * 1024

MAX_DOCKERFILE_SIZE = Limit("max-dockerfile-size", 10 * MiB, "bytes")
MAX_LINE_LENGTH = Limit("max-line-length", 1 * MiB, "characters")  # one physical line
MAX_INSTRUCTIONS = Limit("max-instructions", 10_000, "instructions")
MAX_STAGES = Limit("max-stages", 200, "stages")
MAX_HEREDOCS = Limit("max-heredocs", 64, "heredocs per instruction")
MAX_EXPANSION_DEPTH = Limit("max-expansion-depth", 32, "nested ${...}")
# An expanded word (or COPY heredoc body) may be this much longer than it is written.
MAX_EXPANDED_LENGTH = Limit("max-expanded-length", 1 * MiB, "characters of growth")
# ARG and ENV values in force at one step ("K=V" each): a RUN's environment could not hold more (execve's limit is
# about 2 MiB), and every step's cache key hashes them all.
MAX_VARIABLES_SIZE = Limit("max-variables-size", 1 * MiB, "characters")

LIMITS = (MAX_DOCKERFILE_SIZE, MAX_LINE_LENGTH, MAX_INSTRUCTIONS, MAX_STAGES, MAX_HEREDOCS, MAX_EXPANSION_DEPTH,
          MAX_EXPANDED_LENGTH, MAX_VARIABLES_SIZE)
