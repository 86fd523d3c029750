"""The package databases of an image, read from its layers: the untrusted input of the SBOM.

Only the files that name packages are extracted, into a scratch directory, by
the one layer extractor (layers/extract.py: whiteouts, opaque directories and
path containment as for any build), then read back without following any
symlink and up to a size limit each. A database that is a symlink, a device
or too large is skipped with a warning, never followed or read whole: the
image may have been built to make us read the host's files or exhaust memory.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from builder.image.base import materialize
from builder.image.state import ImageState
from layers.securepath import RootDir
from oci.errors import UnsafePathError, WharfieError

__all__ = ["MAX_DATABASE", "MAX_METADATA", "ImageFiles", "collect_package_files", "is_package_file"]

log = logging.getLogger("wharfie")

MAX_DATABASE = 64 << 20  # a dpkg status of a large image is a few MB
MAX_METADATA = 1 << 20  # a METADATA is read for its headers, which come first: a prefix is enough
MAX_PYTHON_DISTRIBUTIONS = 100_000

DPKG_STATUS = "var/lib/dpkg/status"
DPKG_STATUS_D = "var/lib/dpkg/status.d"  # distroless: one stanza file per package
APK_INSTALLED = "lib/apk/db/installed"
OS_RELEASE = ("etc/os-release", "usr/lib/os-release")
RPM_DATABASES = ("var/lib/rpm/Packages", "var/lib/rpm/Packages.db", "var/lib/rpm/rpmdb.sqlite",
                 "usr/lib/sysimage/rpm/Packages", "usr/lib/sysimage/rpm/Packages.db",
                 "usr/lib/sysimage/rpm/rpmdb.sqlite")
_PYTHON_METADATA = re.compile(
    r"(?:.*/)?(?:site|dist)-packages/[^/]+\.(?:dist-info/METADATA|egg-info/PKG-INFO|egg-info)")


@dataclass
class ImageFiles:
    """The package databases found, as text, by their path in the image."""

    os_release: dict[str, str] = field(default_factory=dict)
    dpkg: list[tuple[str, str]] = field(default_factory=list)  # status and status.d/* files
    apk: list[tuple[str, str]] = field(default_factory=list)
    python: list[tuple[str, str]] = field(default_factory=list)  # METADATA / PKG-INFO
    rpm: list[str] = field(default_factory=list)  # found, not read: rpm is not covered
    warnings: list[str] = field(default_factory=list)


def is_package_file(path: str) -> bool:
    """Whether a layer entry (relative path) is one the SBOM reads, or a whiteout that may delete one."""
    base = path.rpartition("/")[2]
    if base.startswith(".wh."):
        return True
    if path in (DPKG_STATUS, APK_INSTALLED, *OS_RELEASE, *RPM_DATABASES):
        return True
    if path.startswith(DPKG_STATUS_D + "/") and "/" not in path[len(DPKG_STATUS_D) + 1:]:
        return True
    return _PYTHON_METADATA.fullmatch(path) is not None


def collect_package_files(state: ImageState, work_dir: Path) -> ImageFiles:
    """Extract the package databases of `state`'s layers under `work_dir` and read them."""
    tree = Path(tempfile.mkdtemp(dir=work_dir, prefix="sbom-"))
    try:
        try:
            materialize(state, tree, select=is_package_file)
        except WharfieError as exc:
            # e.g. a hard link to a file left out of the selection: take the whole tree instead
            log.debug("partial extraction for the SBOM failed (%s); extracting every layer", exc)
            shutil.rmtree(tree)
            materialize(state, tree)
        return _read_tree(tree)
    finally:
        shutil.rmtree(tree, ignore_errors=True)


def _read_tree(tree: Path) -> ImageFiles:
    found = ImageFiles()
    with RootDir(tree) as root:
        for path in OS_RELEASE:
            text = _read(root, path, MAX_METADATA, [])  # often a symlink (Debian's): quietly try the next
            if text is not None:
                found.os_release = _parse_os_release(text)
                break
        for path in _candidates(tree):
            if path in RPM_DATABASES:
                found.rpm.append(path)
            elif path == DPKG_STATUS or path.startswith(DPKG_STATUS_D + "/"):
                _append(found.dpkg, root, path, MAX_DATABASE, found.warnings)
            elif path == APK_INSTALLED:
                _append(found.apk, root, path, MAX_DATABASE, found.warnings)
            elif _PYTHON_METADATA.fullmatch(path) and len(found.python) < MAX_PYTHON_DISTRIBUTIONS:
                _append(found.python, root, path, MAX_METADATA, found.warnings, prefix_only=True)
    return found


def _candidates(tree: Path) -> list[str]:
    """The package files present in the extracted tree, sorted (os.walk follows no symlinked directory)."""
    out: list[str] = []
    for dirpath, dirnames, filenames in os.walk(tree):
        rel_dir = os.path.relpath(dirpath, tree)
        links = [name for name in dirnames if os.path.islink(os.path.join(dirpath, name))]
        for name in (*filenames, *links):  # a symlink to a directory is listed, to be refused when read
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if is_package_file(rel) and not name.startswith(".wh."):
                out.append(rel)
    return sorted(out)


def _append(into: list[tuple[str, str]], root: RootDir, path: str, limit: int, warnings: list[str], *,
            prefix_only: bool = False) -> None:
    text = _read(root, path, limit, warnings, prefix_only=prefix_only)
    if text is not None:
        into.append((path, text))


def _read(root: RootDir, path: str, limit: int, warnings: list[str], *, prefix_only: bool = False) -> str | None:
    """The file's text, or None (with a warning) when it is not a regular file or is larger than `limit`."""
    parts = path.split("/")
    try:
        parent_fd, _ = root.parent(parts, create=False, name=path)
        fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=parent_fd)
    except FileNotFoundError:
        return None
    except (OSError, UnsafePathError) as exc:
        warnings.append(f"/{path} skipped: not a regular file inside the image ({getattr(exc, 'strerror', exc)})")
        return None
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(handle.fileno())
        if not stat.S_ISREG(st.st_mode):
            warnings.append(f"/{path} skipped: not a regular file")
            return None
        if st.st_size > limit and not prefix_only:
            warnings.append(f"/{path} skipped: {st.st_size} bytes, more than the {limit} read for an SBOM")
            return None
        data = handle.read(limit)
    return data.decode("utf-8", errors="replace")


def _parse_os_release(text: str) -> dict[str, str]:
    """KEY=value lines, values unquoted (os-release(5) is a shell-compatible assignment list)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key.isidentifier():
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                value = value[1:-1]
            out[key] = value
    return out
