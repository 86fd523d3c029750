"""A step's capabilities: docker's default set, written into all five sets as runc does.

Dropping capabilities from the bounding set alone is not enough: a process
started with an inheritable (or ambient) capability keeps it across exec
whatever the bounding set says (some CI runners hand their jobs such a
capability). So, like runc's `finalizeNamespace`, after the namespace's
set-up the bounding set is cut to docker's default, the ids are switched
with PR_SET_KEEPCAPS, then capset(2) writes effective = permitted = the
default and inheritable = nothing, and the ambient set is cleared. After
exec, root holds exactly docker's default (CapEff 00000000a80425fb) and any
other user holds nothing, as under docker.

On the default network (its own namespace wired out by slirp4netns) the
step gets that set without `net_raw`, as podman's default does: with it a
root step could open an AF_PACKET socket on the tap device and write its own
frames to slirp4netns, past the routes that fence the host's own addresses
and cloud metadata off the step (builder/execution/host_fence.py); slirp
would connect() from the host to wherever they lead. Root may still ping
through ICMP datagram sockets (the namespace's `net.ipv4.ping_group_range`
is `0 0`, podman's default too): iputils' ping falls back to them, busybox's
does not (as under podman and buildah, whose default sets lack net_raw too).

`no_new_privs` is set too (the issue asks for it, runc's
`noNewPrivileges`): neither setuid files nor file capabilities can raise a
step's privileges. BuildKit's RUN does not set it, so `sudo` inside a RUN
that runs as another USER fails under wharfie; see README, "Threat model".

libc's prctl(2) and capset(2) through ctypes: Python's `os` has neither, and
libcap's python binding is not packaged for pip.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Callable

__all__ = ["DEFAULT_CAPS", "NO_NEW_PRIVS", "apply_step_capabilities", "cap_mask", "cap_names", "describe",
           "drop_bounding", "last_cap", "step_capabilities"]

_libc = ctypes.CDLL("libc.so.6", use_errno=True)

# Names in capability(7) order; docker's default set is the ones in DEFAULT_CAPS.
_NAMES = ("chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid", "setuid", "setpcap",
          "linux_immutable", "net_bind_service", "net_broadcast", "net_admin", "net_raw", "ipc_lock", "ipc_owner",
          "sys_module", "sys_rawio", "sys_chroot", "sys_ptrace", "sys_pacct", "sys_admin", "sys_boot", "sys_nice",
          "sys_resource", "sys_time", "sys_tty_config", "mknod", "lease", "audit_write", "audit_control", "setfcap",
          "mac_override", "mac_admin", "syslog", "wake_alarm", "block_suspend", "audit_read", "perfmon", "bpf",
          "checkpoint_restore")
# moby's oci/caps DefaultCapabilities (the set `docker run` and BuildKit's RUN get).
DEFAULT_CAPS = frozenset({"chown", "dac_override", "fowner", "fsetid", "kill", "setgid", "setuid", "setpcap",
                          "net_bind_service", "net_raw", "sys_chroot", "mknod", "audit_write", "setfcap"})
NO_NEW_PRIVS = True


def step_capabilities(network: str) -> frozenset[str]:
    """What a step on `network` ("default", "host", "none") holds as root: docker's set, less net_raw on the
    default network (see the module docstring)."""
    return DEFAULT_CAPS - {"net_raw"} if network == "default" else DEFAULT_CAPS


_PR_CAPBSET_DROP = 24
_PR_SET_KEEPCAPS = 8
_PR_SET_NO_NEW_PRIVS = 38
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def cap_mask(names: frozenset[str] = DEFAULT_CAPS) -> int:
    """The bit mask of `names`, as /proc/PID/status prints it (CapEff 00000000a80425fb for the default)."""
    return sum(1 << _NAMES.index(name) for name in names)


def cap_names(mask: int) -> list[str]:
    return [name for bit, name in enumerate(_NAMES) if mask >> bit & 1]


def describe(uid: int, caps: frozenset[str] = DEFAULT_CAPS) -> str:
    """One line for `-v debug`, in /proc/PID/status terms, of what a step running as `uid` holds after exec."""
    mask = f"{cap_mask(caps):016x}"
    held = f"permitted=effective={mask}" if uid == 0 else "permitted=effective=0000000000000000 (not root)"
    return (f"bounding={mask} {held} inheritable=0000000000000000 ambient=0000000000000000 "
            f"no_new_privs={int(NO_NEW_PRIVS)} ({','.join(sorted(caps))})")


def last_cap() -> int:
    """The kernel's highest capability number (read before the pivot: /proc is the host's then)."""
    with open("/proc/sys/kernel/cap_last_cap") as handle:
        return int(handle.read())


def _prctl(option: int, arg: int, what: str) -> None:
    if _libc.prctl(option, ctypes.c_ulong(arg), ctypes.c_ulong(0), ctypes.c_ulong(0), ctypes.c_ulong(0)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def drop_bounding(top: int, keep: int = cap_mask()) -> None:
    for cap in range(top + 1):
        if not keep >> cap & 1:
            _prctl(_PR_CAPBSET_DROP, cap, f"drop capability {cap} from the bounding set")


def _capset(effective: int, permitted: int, inheritable: int) -> None:
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for index in (0, 1):
        shift = 32 * index
        data[index].effective = effective >> shift & 0xFFFFFFFF
        data[index].permitted = permitted >> shift & 0xFFFFFFFF
        data[index].inheritable = inheritable >> shift & 0xFFFFFFFF
    if _libc.capset(ctypes.byref(header), data) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"capset: {os.strerror(err)}")


def apply_step_capabilities(top: int, switch_user: Callable[[], None], caps: frozenset[str] = DEFAULT_CAPS) -> None:
    """Bounding, then the ids (`switch_user`), then effective/permitted/inheritable and ambient; then no_new_privs."""
    keep = cap_mask(caps)
    drop_bounding(top, keep)
    _prctl(_PR_SET_KEEPCAPS, 1, "keep capabilities across the id switch")
    switch_user()
    _prctl(_PR_SET_KEEPCAPS, 0, "clear keep-capabilities")
    _capset(effective=keep, permitted=keep, inheritable=0)
    _prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, "clear the ambient set")
    if NO_NEW_PRIVS:
        _prctl(_PR_SET_NO_NEW_PRIVS, 1, "set no_new_privs")
