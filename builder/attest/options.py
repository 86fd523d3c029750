"""What the user asked to attest (`--sbom`, `--provenance`): a value the CLI and the engine's options
hold without importing the attestation machinery, which only a build that attests loads."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["AttestOptions"]


@dataclass(frozen=True)
class AttestOptions:
    """--sbom / --provenance, and the files they are also written to (--sbom-file / --provenance-file)."""

    sbom: bool = False
    provenance: bool = False
    sbom_file: Path | None = None
    provenance_file: Path | None = None

    @property
    def wanted(self) -> bool:
        return self.sbom or self.provenance
