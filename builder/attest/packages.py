"""The packages an SBOM lists: one model, and the readers of dpkg, apk and Python metadata that produce it.

Each reader takes the text of one database file (image_files.py found and
bounded it) and returns packages with a package URL made by packageurl-python,
the purl specification's reference implementation (it knows each type's
normalisation, e.g. PyPI names lower-cased with `-`), rather than by hand.
"""

from __future__ import annotations

import email.parser
import email.utils
from collections.abc import Iterator
from dataclasses import dataclass

from packageurl import PackageURL

from builder.attest.image_files import ImageFiles

__all__ = ["Package", "catalog", "read_apk_installed", "read_dpkg_status", "read_python_metadata"]


@dataclass(frozen=True)
class Package:
    ecosystem: str  # "deb", "apk" or "pypi": the purl type
    name: str
    version: str
    purl: str
    found_in: str  # the file it was read from, in the image
    supplier: str | None = None  # SPDX form: "Person: NAME (EMAIL)"
    arch: str | None = None
    homepage: str | None = None


def catalog(files: ImageFiles) -> list[Package]:
    """Every package the image's databases name, in a stable order."""
    distro = files.os_release.get("ID", "").lower() or None
    found: list[Package] = []
    for path, text in files.dpkg:
        found.extend(read_dpkg_status(text, path, distro or "debian"))
    for path, text in files.apk:
        found.extend(read_apk_installed(text, path, distro or "alpine"))
    for path, text in files.python:
        package = read_python_metadata(text, path)
        if package is not None:
            found.append(package)
    unique = {(p.ecosystem, p.name, p.version, p.arch, p.found_in): p for p in found}
    return sorted(unique.values(), key=lambda p: (p.ecosystem, p.name, p.version, p.arch or "", p.found_in))


def _person(name: str | None, address: str | None = None) -> str | None:
    """An SPDX supplier: parentheses are the e-mail's, so none may stay in the name."""
    clean = " ".join("".join(c for c in (name or "") if c.isprintable() and c not in "()").split())
    address = "".join(c for c in (address or "") if c.isprintable() and c not in "() ") or None
    if not clean and not address:
        return None
    return f"Person: {clean or address}" + (f" ({address})" if address and clean else "")


def _maintainer(text: str | None) -> str | None:
    if not text:
        return None
    name, address = email.utils.parseaddr(text)
    return _person(name or text, address or None)


# -- dpkg -----------------------------------------------------------------------------------------------

def _deb822(text: str) -> Iterator[dict[str, str]]:
    """The stanzas of a deb822 file (dpkg's status): `Field: value`, continuation lines start with a blank."""
    fields: dict[str, str] = {}
    last: str | None = None
    for line in text.splitlines():
        if not line.strip():
            if fields:
                yield fields
            fields, last = {}, None
        elif line[0] in " \t":
            if last is not None:
                fields[last] += "\n" + line.strip()
        else:
            key, sep, value = line.partition(":")
            if sep:
                last = key.strip().lower()
                fields[last] = value.strip()
    if fields:
        yield fields


def read_dpkg_status(text: str, path: str, distro: str = "debian") -> list[Package]:
    """Installed packages of a dpkg status file (or one status.d file); other states are not in the image."""
    out: list[Package] = []
    for stanza in _deb822(text):
        name, version = stanza.get("package"), stanza.get("version")
        status = stanza.get("status", "install ok installed").split()  # status.d files often carry none
        if not name or not version or status[-1:] != ["installed"]:
            continue
        arch = stanza.get("architecture") or None
        purl = PackageURL("deb", distro, name, version, {"arch": arch} if arch else None).to_string()
        out.append(Package("deb", name, version, purl, path, _maintainer(stanza.get("maintainer")), arch,
                           stanza.get("homepage") or None))
    return out


# -- apk -------------------------------------------------------------------------------------------------

def read_apk_installed(text: str, path: str, distro: str = "alpine") -> list[Package]:
    """Packages of Alpine's /lib/apk/db/installed: `P:` name, `V:` version, `A:` arch, `m:` maintainer."""
    out: list[Package] = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            key, sep, value = line.partition(":")
            if sep and len(key) == 1 and key not in fields:  # F:/R: lines repeat; the first of each is enough
                fields[key] = value.strip()
        name, version = fields.get("P"), fields.get("V")
        if not name or not version:
            continue
        arch = fields.get("A") or None
        purl = PackageURL("apk", distro, name, version, {"arch": arch} if arch else None).to_string()
        out.append(Package("apk", name, version, purl, path, _maintainer(fields.get("m")), arch,
                           fields.get("U") or None))
    return out


# -- Python ----------------------------------------------------------------------------------------------

def read_python_metadata(text: str, path: str) -> Package | None:
    """A distribution from its core metadata (METADATA or PKG-INFO: e-mail style headers, then the description)."""
    headers = email.parser.HeaderParser().parsestr(text.split("\n\n", 1)[0] + "\n\n")
    name, version = (headers.get("Name") or "").strip(), (headers.get("Version") or "").strip()
    if not name or not version:
        return None
    supplier = None
    for who, address in (("Author", "Author-email"), ("Maintainer", "Maintainer-email")):
        addresses = email.utils.getaddresses([headers.get(address) or ""])
        person, mail = addresses[0] if addresses else ("", "")
        supplier = _person(person or headers.get(who), mail or None)
        if supplier:
            break
    purl = PackageURL("pypi", None, name, version).to_string()
    return Package("pypi", name, version, purl, path, supplier, None, (headers.get("Home-page") or "").strip() or None)
