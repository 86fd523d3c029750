"""In place, every mount of the container is known by its real name: the mount table's escapes decoded as bytes.

A whole build with a volume at `/srv/café` runs in the wharfie image under podman (tests/image).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from builder.execution.inplace import in_place_ignore
from layers.walk import mount_points, unescape_mount_field

_ROOT_ONLY = pytest.mark.skipif(os.geteuid() != 0, reason="mounting in a private mount namespace needs root")


def _line(mount_id: int, point: bytes) -> bytes:
    return b"%d 22 0:%d / %s rw,relatime - tmpfs tmpfs rw\n" % (mount_id, mount_id, point)


def test_escapes_are_decoded_as_bytes(tmp_path: Path) -> None:
    table = tmp_path / "mountinfo"
    table.write_bytes(b"".join([
        b"22 1 8:1 / / rw - ext4 /dev/sda1 rw\n",
        _line(30, b"/proc"),
        _line(31, b"/srv/caf\\303\\251"),             # escaped UTF-8
        _line(32, "/srv/naïve".encode()),              # raw UTF-8, as the kernel writes it
        _line(33, b"/srv/with\\040space\\011tab"),
        _line(34, b"/srv/new\\012line"),
        _line(35, b"/srv/back\\134slash"),
        _line(36, b"/srv/latin\\351"),                 # not UTF-8 at all
        _line(37, b"/var/run/secrets/..data"),         # a name starting with two dots is below /
    ]))
    expected = [b"proc", "srv/café".encode(), "srv/naïve".encode(), b"srv/with space\ttab", b"srv/new\nline",
                b"srv/back\\slash", b"srv/latin\xe9", b"var/run/secrets/..data"]
    assert sorted(mount_points(Path("/"), str(table))) == sorted(os.fsdecode(p) for p in expected)
    assert mount_points(Path("/srv"), str(table)) == sorted(
        os.fsdecode(p[len(b"srv/"):]) for p in expected if p.startswith(b"srv/"))
    assert unescape_mount_field(b"caf\\303\\251") == "café".encode()


@_ROOT_ONLY
def test_real_mounts_at_odd_paths_are_found_and_ignored(tmp_path: Path) -> None:
    names = ["café", "two words", "new\nline", "back\\slash"]
    for name in names:
        (tmp_path / name).mkdir()
    script = """
import json, sys
from pathlib import Path
from builder.execution.inplace import in_place_ignore
from layers.walk import mount_points
base = Path(sys.argv[1])
ignore = in_place_ignore(work_dir=base / "work", cache_dir=base / "cache", context=base / "ctx")
print(json.dumps({"below": mount_points(base), "ignore": list(ignore)}))
"""
    mounts = "\n".join(f'mount -t tmpfs tmpfs "$1/$n{i}"' for i in range(len(names)))
    shell = f'set -e\n{mounts}\nshift\nexec "$@"'
    env = {**os.environ, **{f"n{i}": name for i, name in enumerate(names)}}
    done = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", shell, "sh", str(tmp_path),
                           sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, env=env,
                          cwd=Path(__file__).resolve().parents[2], check=False)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert sorted(found["below"]) == sorted(names)
    for name in names:
        assert str(tmp_path / name).lstrip("/") in found["ignore"], name
    assert in_place_ignore(work_dir=tmp_path, cache_dir=tmp_path, context=tmp_path)  # no mount here: still works
