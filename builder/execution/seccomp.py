"""A seccomp filter equivalent to docker's default profile, built with libseccomp.

The rules are data: builder/execution/seccomp_default.json is moby's
profiles/seccomp/default.json (its source commit is named inside), the
profile `docker run` and BuildKit's RUN apply. `profile_rules` reads it the
way moby's `setupSeccomp` does: a rule applies when every capability in its
`includes.caps` is in the step's bounding set, none of its `excludes.caps`
is, its arches match this machine and the kernel is recent enough. With
docker's default capabilities that leaves, among others, `mount`, `unshare`,
`setns`, `keyctl`, `add_key`, `bpf`, `perf_event_open`, `io_uring_*`,
`userfaultfd` and `clone` with namespace flags failing with EPERM, and
`clone3` with ENOSYS (so libc falls back to `clone`, whose flags can be
checked).

The filter is compiled and loaded by libseccomp (the library runc and
crun use) through `pyseccomp` (PyPI: a ctypes binding with the API of
libseccomp's own Python module, so it works with any CPython and needs only
libseccomp.so.2). Debian's python3-seccomp was tried too: it is a C
extension built for Debian's own /usr/bin/python3 and is not on this
project's interpreter's path, nor installable by pip. Syscall names that
the installed libseccomp does not know (the newest ones) are left out and
so fail with EPERM, as under a runc built against the same libseccomp.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyseccomp  # type: ignore[import-untyped]

__all__ = ["PROFILE_NAME", "Rule", "build_filter", "describe", "load_profile", "profile_rules"]

PROFILE_NAME = "docker-default"
_PROFILE = Path(__file__).with_name("seccomp_default.json")

# platform.machine() -> the arch names the profile's includes/excludes use (moby's goToNative).
_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64",
         "i686": "x86", "armv7l": "arm", "loongarch64": "loongarch64"}
_ACTIONS = {"SCMP_ACT_ALLOW": pyseccomp.ALLOW, "SCMP_ACT_KILL": pyseccomp.KILL,
            "SCMP_ACT_KILL_PROCESS": pyseccomp.KILL_PROCESS, "SCMP_ACT_KILL_THREAD": pyseccomp.KILL_THREAD,
            "SCMP_ACT_LOG": pyseccomp.LOG}
_OPS = {"SCMP_CMP_NE": pyseccomp.NE, "SCMP_CMP_LT": pyseccomp.LT, "SCMP_CMP_LE": pyseccomp.LE,
        "SCMP_CMP_EQ": pyseccomp.EQ, "SCMP_CMP_GE": pyseccomp.GE, "SCMP_CMP_GT": pyseccomp.GT,
        "SCMP_CMP_MASKED_EQ": pyseccomp.MASKED_EQ}


@dataclass(frozen=True)
class Rule:
    names: tuple[str, ...]
    action: str  # SCMP_ACT_*
    errno: int | None
    args: tuple[dict[str, Any], ...]


def load_profile() -> dict[str, Any]:
    profile: dict[str, Any] = json.loads(_PROFILE.read_text())
    return profile


def _kernel() -> tuple[int, ...]:
    numbers = platform.release().split("-")[0].split(".")
    return tuple(int(n) for n in numbers[:2] if n.isdigit())


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(n) for n in text.split(".")[:2])


def _applies(entry: dict[str, Any], caps: frozenset[str], arch: str, kernel: tuple[int, ...]) -> bool:
    excludes, includes = entry.get("excludes") or {}, entry.get("includes") or {}
    if arch in excludes.get("arches", []) or any(cap in caps for cap in excludes.get("caps", [])):
        return False
    if excludes.get("minKernel") and kernel >= _version(excludes["minKernel"]):
        return False
    if includes.get("arches") and arch not in includes["arches"]:
        return False
    if not all(cap in caps for cap in includes.get("caps", [])):
        return False
    return not (includes.get("minKernel") and kernel < _version(includes["minKernel"]))


def profile_rules(profile: dict[str, Any], caps: Iterable[str], *, machine: str | None = None,
                  kernel: tuple[int, ...] | None = None) -> list[Rule]:
    """The profile's rules that apply to a step with bounding set `caps` (names like `chown`)."""
    held = frozenset(f"CAP_{cap.upper()}" for cap in caps)
    arch = _ARCH.get(machine or platform.machine(), machine or platform.machine())
    kernel = kernel or _kernel()
    rules = []
    for entry in profile["syscalls"]:
        if _applies(entry, held, arch, kernel):
            names = tuple(entry.get("names") or [entry["name"]])
            rules.append(Rule(names, entry["action"], entry.get("errnoRet"), tuple(entry.get("args") or ())))
    return rules


def _action(action: str, errno: int | None, default_errno: int) -> int:
    if action == "SCMP_ACT_ERRNO":
        return int(pyseccomp.ERRNO(errno if errno is not None else default_errno))
    return int(_ACTIONS[action])


def _arches(profile: dict[str, Any]) -> list[int]:
    native = f"SCMP_ARCH_{platform.machine().upper()}"
    for entry in profile.get("archMap") or []:
        if entry["architecture"] == native:
            names = entry.get("subArchitectures") or []
            return [getattr(pyseccomp.Arch, name.removeprefix("SCMP_ARCH_")) for name in names
                    if hasattr(pyseccomp.Arch, name.removeprefix("SCMP_ARCH_"))]
    return []


def build_filter(caps: Iterable[str], *, no_new_privs: bool) -> pyseccomp.SyscallFilter:
    """The compiled-on-load filter for a step; call `.load()` on it as the last thing before exec."""
    profile = load_profile()
    default_errno = int(profile.get("defaultErrnoRet", 1))
    filt = pyseccomp.SyscallFilter(defaction=_action(profile["defaultAction"], None, default_errno))
    # libseccomp sets no_new_privs itself by default; leave that to builder/capabilities.py.
    filt.set_attr(pyseccomp.Attr.CTL_NNP, 1 if no_new_privs else 0)
    for arch in _arches(profile):
        filt.add_arch(arch)
    for rule in profile_rules(profile, caps):
        action = _action(rule.action, rule.errno, default_errno)
        conditions = [pyseccomp.Arg(int(a["index"]), _OPS[a["op"]], int(a["value"]), int(a.get("valueTwo", 0)))
                      for a in rule.args]
        for name in rule.names:
            if pyseccomp.resolve_syscall(pyseccomp.Arch.NATIVE, name) == -1:
                continue  # unknown to this libseccomp: left to the default action
            filt.add_rule(action, name, *conditions)
    return filt


def describe(caps: Iterable[str]) -> str:
    """One line for `-v debug`: the profile, what it allows, what it answers otherwise."""
    profile = load_profile()
    rules = profile_rules(profile, caps)
    allowed = {name for rule in rules if rule.action == "SCMP_ACT_ALLOW" for name in rule.names}
    conditional = {name for rule in rules if rule.args for name in rule.names}
    errno = profile.get("defaultErrnoRet", 1)
    source = f"{profile.get('source', '?')} @ {profile.get('source_commit', '?')[:12]}"
    return (f"{PROFILE_NAME} ({source}): {len(allowed)} syscalls allowed ({len(conditional)} on argument checks), "
            f"others {profile['defaultAction']} errno {errno}")
