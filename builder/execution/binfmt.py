"""Can this machine run a RUN step's programs for a platform? Natively, or through a binfmt_misc interpreter.

A RUN for another architecture runs its programs as they are: the kernel
hands a foreign ELF binary to the interpreter registered for it in
/proc/sys/fs/binfmt_misc (qemu-user-static's `qemu-aarch64` and friends).
wharfie runs nothing itself to emulate; it only checks, before a step
starts, that such an interpreter is there, and says which one is missing
otherwise. The match is the kernel's own: a registration's magic and mask
against the ELF header of the target architecture. The interpreter must
be registered with the F (fix-binary) flag: the kernel opens it at
registration, so it works inside the step's root, where the host's
/usr/bin/qemu-* does not exist.
"""

from __future__ import annotations

import logging
import struct
from dataclasses import dataclass
from pathlib import Path

from oci.errors import WharfieError
from oci.models import Platform, host_platform

__all__ = ["BINFMT_DIR", "Interpreter", "find_interpreter", "require_runnable"]

log = logging.getLogger("wharfie")

BINFMT_DIR = Path("/proc/sys/fs/binfmt_misc")


@dataclass(frozen=True)
class _Elf:
    qemu: str  # qemu's name of the architecture, as in qemu-user-static's binaries
    machine: int  # e_machine
    bits: int
    big_endian: bool = False


# Go's architecture names (the OCI platform's) to the ELF header of their executables.
_ELF = {
    "amd64": _Elf("x86_64", 62, 64),
    "386": _Elf("i386", 3, 32),
    "arm64": _Elf("aarch64", 183, 64),
    "arm": _Elf("arm", 40, 32),
    "ppc64le": _Elf("ppc64le", 21, 64),
    "ppc64": _Elf("ppc64", 21, 64, big_endian=True),
    "s390x": _Elf("s390x", 22, 64, big_endian=True),
    "riscv64": _Elf("riscv64", 243, 64),
    "mips64le": _Elf("mips64el", 8, 64),
    "mips64": _Elf("mips64", 8, 64, big_endian=True),
    "mipsle": _Elf("mipsel", 8, 32),
    "mips": _Elf("mips", 8, 32, big_endian=True),
    "loong64": _Elf("loongarch64", 258, 64),
}
# Architectures a host runs without emulation besides its own (the 32-bit mode of x86-64).
_NATIVE_TOO = {"amd64": {"386"}}


@dataclass(frozen=True)
class Interpreter:
    name: str  # the registration's file name
    path: str
    flags: str

    @property
    def fix_binary(self) -> bool:
        return "F" in self.flags


def _elf_header(elf: _Elf) -> bytes:
    """The first 20 bytes of an executable for `elf`: what binfmt_misc's magic and mask look at."""
    order = ">" if elf.big_endian else "<"
    ident = b"\x7fELF" + bytes([2 if elf.bits == 64 else 1, 2 if elf.big_endian else 1, 1, 0]) + bytes(8)
    return ident + struct.pack(f"{order}HH", 2, elf.machine)  # e_type ET_EXEC, e_machine


def _parse(entry: Path) -> tuple[Interpreter, int, bytes, bytes] | None:
    try:
        lines = entry.read_text().splitlines()
    except OSError:
        return None
    fields: dict[str, str] = {}
    for line in lines[1:]:
        key, _, value = line.partition(" ")
        fields[key.rstrip(":")] = value.strip()
    if not lines or lines[0] != "enabled" or "magic" not in fields or "interpreter" not in fields:
        return None  # disabled, or an extension-matched (E) registration
    magic = bytes.fromhex(fields["magic"])
    mask = bytes.fromhex(fields.get("mask", "ff" * len(magic)))
    interpreter = Interpreter(entry.name, fields["interpreter"], fields.get("flags", ""))
    return interpreter, int(fields.get("offset", "0")), magic, mask


def find_interpreter(architecture: str, binfmt_dir: Path = BINFMT_DIR) -> Interpreter | None:
    """The enabled binfmt_misc registration that would run `architecture`'s executables, if any."""
    elf = _ELF.get(architecture)
    if elf is None or not (binfmt_dir / "status").is_file():
        return None
    if (binfmt_dir / "status").read_text().strip() != "enabled":
        return None
    header = _elf_header(elf)
    for entry in sorted(binfmt_dir.iterdir()):
        if entry.name in ("status", "register"):
            continue
        parsed = _parse(entry)
        if parsed is None:
            continue
        interpreter, offset, magic, mask = parsed
        window = header[offset:offset + len(magic)]
        if len(window) == len(magic) and all((h & m) == (g & m) for h, m, g in zip(window, mask, magic)):
            return interpreter
    return None


def require_runnable(platform: Platform, *, host: Platform | None = None, binfmt_dir: Path = BINFMT_DIR) -> None:
    """Return if RUN steps for `platform` can run here; else raise naming the interpreter that is missing."""
    host = host or host_platform()
    if platform.os != "linux":
        raise WharfieError(f"RUN for {platform} cannot run on {host}: only linux images run here")
    arch = platform.architecture
    if arch == host.architecture or arch in _NATIVE_TOO.get(host.architecture, ()):
        return
    elf = _ELF.get(arch)
    qemu = elf.qemu if elf is not None else arch
    interpreter = find_interpreter(arch, binfmt_dir)
    if interpreter is None:
        raise WharfieError(f"RUN for {platform} needs a binfmt_misc interpreter for {qemu} (qemu-user-static): "
                           f"none is registered in {binfmt_dir}")
    if not interpreter.fix_binary:
        raise WharfieError(f"RUN for {platform}: the binfmt_misc interpreter {interpreter.path} ({interpreter.name}) "
                           "is registered without the F (fix-binary) flag, so it cannot be found inside the step's "
                           "root; register it with F (qemu-user-static's binfmt configuration does)")
    log.debug("RUN for %s through %s (%s)", platform, interpreter.path, interpreter.name)
