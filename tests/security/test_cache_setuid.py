"""Issue #10 point 8: a cache directory on the host keeps no setuid, setgid or device file a step made.

A step writes a setuid-root copy of a shell into a cache mount: kept as it is
under --cache-dir, any host user reaching it becomes root (rootless: becomes
the invoking user). The cache is nosuid inside the step; afterwards the host
tree under --cache-dir holds no file with a set-id bit and no device node,
whatever the step hid them behind (subdirectories, symlinks to elsewhere).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from attack import Attacker

from builder.execution.run_mounts import strip_privileges


def _privileged_files(top: Path) -> list[str]:
    found = []
    for dirpath, dirnames, filenames in os.walk(top):
        for name in [*dirnames, *filenames]:
            st = os.lstat(os.path.join(dirpath, name))
            if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                found.append(f"device {name}")
            elif stat.S_ISREG(st.st_mode) and st.st_mode & (stat.S_ISUID | stat.S_ISGID):
                found.append(f"{oct(stat.S_IMODE(st.st_mode))} {name}")
    return found


def test_cache_dir_keeps_no_setuid_or_device_files(attacker: Attacker, busybox_ref: str) -> None:
    victim = attacker.directory("victim", {"tool": "not a step's"})
    (victim / "tool").chmod(0o4755)  # a host file the clean-up must leave alone, reached by a link
    dockerfile = (f"FROM {busybox_ref}\n"
                  "RUN --mount=type=cache,target=/c cp /bin/busybox /c/suid && chmod 4755 /c/suid && "
                  "mkdir -p /c/deep/er && cp /bin/busybox /c/deep/er/sgid && chmod 2755 /c/deep/er/sgid && "
                  f"ln -s {victim}/tool /c/link && ln -s {victim} /c/dirlink && "
                  "(mknod /c/deep/zero c 1 5 || true) && grep ' /c ' /proc/mounts\n")
    result = attacker.build(attacker.context(dockerfile))
    assert result.returncode == 0, result.stderr
    # The /proc/mounts line itself (with CI=true the log also has section markers quoting the RUN).
    mounted = next(line for line in result.stderr.splitlines() if line.split()[1:2] == ["/c"])
    assert {"nosuid", "nodev"} <= set(mounted.split()[3].split(","))
    caches = attacker.home / "cache" / "mounts"
    assert stat.S_IMODE(caches.stat().st_mode) == 0o700
    assert _privileged_files(caches) == []
    kept = [p for p in caches.rglob("suid") if p.is_file()]
    assert kept and os.access(kept[0], os.X_OK), "the file itself stays, only its set-id bit goes"
    assert stat.S_IMODE((victim / "tool").stat().st_mode) == 0o4755, "a link in the cache led the clean-up out"


def test_strip_privileges_does_not_follow_links(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "f").write_text("x")
    (outside / "f").chmod(0o6755)
    cache = tmp_path / "cache"
    (cache / "sub").mkdir(parents=True)
    (cache / "sub" / "f").write_text("y")
    (cache / "sub" / "f").chmod(0o6755)
    (cache / "link").symlink_to(outside / "f")
    (cache / "dirlink").symlink_to(outside)
    strip_privileges(cache)
    assert stat.S_IMODE((cache / "sub" / "f").stat().st_mode) == 0o755
    assert stat.S_IMODE((outside / "f").stat().st_mode) == 0o6755
