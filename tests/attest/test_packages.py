"""The package readers: dpkg status, apk's installed db, Python core metadata; and the SPDX document they feed."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from builder.attest.image_files import ImageFiles
from builder.attest.packages import catalog, read_apk_installed, read_dpkg_status, read_python_metadata
from builder.attest.spdx import ImageRecord, spdx_document
from fixtures.multibase import PACKAGE_FILES
from oci.digest import Digest
from oci.models import Platform
from registry.reference import parse_reference


def test_dpkg_stanzas_states_and_purls() -> None:
    packages = read_dpkg_status(PACKAGE_FILES["var/lib/dpkg/status"], "var/lib/dpkg/status")
    assert [(p.name, p.version, p.arch) for p in packages] == [
        ("jq", "1.6-2.1", "amd64"), ("libjq1", "1.6-2.1", "amd64"), ("libc6", "2.36-9+deb12u4", "i386"),
        ("tzdata", "2024a-0+deb12u1", "all")]  # oldpkg: config-files only
    assert packages[0].purl == "pkg:deb/debian/jq@1.6-2.1?arch=amd64"
    assert packages[0].homepage == "https://github.com/stedolan/jq"
    epoch = read_dpkg_status("Package: x\nStatus: install ok installed\nVersion: 1:2.0-1\nArchitecture: arm64\n", "s")
    assert epoch[0].purl == "pkg:deb/debian/x@1:2.0-1?arch=arm64"
    ubuntu = read_dpkg_status("Package: y\nVersion: 1\n", "status.d/y", "ubuntu")  # status.d: no Status field
    assert ubuntu[0].purl == "pkg:deb/ubuntu/y@1"


def test_apk_installed() -> None:
    packages = read_apk_installed(PACKAGE_FILES["lib/apk/db/installed"], "lib/apk/db/installed")
    assert [(p.name, p.version, p.purl) for p in packages] == [
        ("musl", "1.2.4-r2", "pkg:apk/alpine/musl@1.2.4-r2?arch=x86_64"),
        ("busybox", "1.36.1-r15", "pkg:apk/alpine/busybox@1.36.1-r15?arch=x86_64")]
    assert packages[0].supplier == "Person: Timo Teräs (timo.teras@iki.fi)"


def test_python_metadata_headers_only() -> None:
    package = read_python_metadata(
        PACKAGE_FILES["usr/lib/python3/dist-packages/requests-2.28.1.dist-info/METADATA"], "m")
    assert package is not None and (package.name, package.version) == ("requests", "2.28.1")  # not the body's 9.9.9
    assert package.purl == "pkg:pypi/requests@2.28.1"
    normalised = read_python_metadata("Name: Foo_Bar\nVersion: 1.0\nAuthor-email: Jane Doe <jane@example.org>\n", "m")
    assert normalised is not None and normalised.purl == "pkg:pypi/foo-bar@1.0"
    assert normalised.supplier == "Person: Jane Doe (jane@example.org)"
    assert read_python_metadata("Name: no-version\n", "m") is None


def test_hostile_fields_still_make_a_valid_document(tmp_path: Path) -> None:
    files = ImageFiles(os_release={"ID": "debian"}, dpkg=[("var/lib/dpkg/status", (
        "Package: x(y)\nStatus: install ok installed\nVersion: 1 (2)\nArchitecture: amd64\n"
        "Maintainer: Evil (Person) ) <a@b (c)>\nHomepage: javascript:alert(1)\n\n"
        "Package: x(y)\nStatus: install ok installed\nVersion: 1 (2)\nArchitecture: i386\nMaintainer: \x1b[31m\n"))])
    image = ImageRecord(parse_reference("reg.example/g/app:1"), Digest.of_bytes(b"m"), Platform())
    document = spdx_document(image, catalog(files), None, created="2024-01-01T00:00:00Z", tool="wharfie-test")
    path = tmp_path / "doc.spdx.json"
    path.write_text(json.dumps(document))
    validated = subprocess.run(["pyspdxtools", "-i", str(path)], capture_output=True, text=True, check=False)
    assert validated.returncode == 0, validated.stdout + validated.stderr
    ids = [p["SPDXID"] for p in document["packages"]]
    assert len(ids) == len(set(ids)) == 3  # the image and the two arches of x(y)
    assert all("homepage" not in p for p in document["packages"])


def test_equal_inputs_give_equal_documents() -> None:
    files = ImageFiles(dpkg=[("var/lib/dpkg/status", PACKAGE_FILES["var/lib/dpkg/status"])])
    image = ImageRecord(None, Digest.of_bytes(b"m"))
    first = spdx_document(image, catalog(files), None, created="2024-01-01T00:00:00Z", tool="t")
    second = spdx_document(image, catalog(files), None, created="2024-01-01T00:00:00Z", tool="t")
    assert first == second and first["documentNamespace"].startswith("https://wharfie.io/spdx/image-")
