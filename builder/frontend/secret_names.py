"""BuildKit's `SecretsUsedInArgOrEnv` check: ARG and ENV names that look like they carry a secret.

Why: an ARG's value is kept in the image history and in the cache entries'
labels, an ENV's in the image config; a token passed that way is published
with the image. BuildKit warns when a name holds one of its secret words as a
whole `_`-separated word (`GITHUB_TOKEN`, `db_password`, `AUTH`, but not
`MONKEY` or `TOKENIZER`), unless it also holds an allowed word (`PUBLIC_KEY`,
`KEY_FILE`, `TOKEN_VERSION`). The word lists are BuildKit's
(dockerfile2llb `getSecretsRegex`); the check runs, as there, on the ARG and
ENV instructions of the stages the build runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from builder.frontend import instructions as ins

__all__ = ["looks_like_secret", "secret_name_warnings"]

_SECRET_WORDS = ("apikey", "auth", "credential", "credentials", "key", "password", "pword", "passwd", "secret",
                 "token")
_ALLOWED_WORDS = ("public", "file", "version")
_SECRET = re.compile(r"(?:_|^)(?:" + "|".join(_SECRET_WORDS) + r")(?:_|\Z)", re.IGNORECASE)
_ALLOWED = re.compile(r"(?:_|^)(?:" + "|".join(_ALLOWED_WORDS) + r")(?:_|\Z)", re.IGNORECASE)


def looks_like_secret(name: str) -> bool:
    """True when BuildKit's SecretsUsedInArgOrEnv rule flags `name`."""
    return _SECRET.search(name) is not None and _ALLOWED.search(name) is None


def secret_name_warnings(filename: str, instructions: Iterable[ins.Instruction]) -> list[str]:
    """One warning, with file:line, per ARG or ENV name among `instructions` that looks like a secret."""
    warnings = []
    for instr in instructions:
        if isinstance(instr, ins.ARG):
            keyword, where = "ARG", "the image history"
        elif isinstance(instr, ins.ENV):
            keyword, where = "ENV", "the image config"
        else:
            continue
        for key, _ in instr.pairs:
            if looks_like_secret(key):
                warnings.append(
                    f"{filename}:{instr.line}: SecretsUsedInArgOrEnv: Do not use ARG or ENV instructions for "
                    f'sensitive data ({keyword} "{key}"): its value is kept in {where}; pass a secret with '
                    f"--secret id={key},env={key} and read it in RUN --mount=type=secret,id={key}")
    return warnings
