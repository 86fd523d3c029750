"""Typed Dockerfile instructions, one frozen dataclass each, plus RUN --mount.

Why: the executor, the cache key and the image history all need the same
validated view of an instruction, so parsing happens once, before any step
runs. Values are kept as written (unexpanded); `builder.frontend.expansion.expand_instruction`
returns an expanded copy once the step's environment is known.

Every instruction has `line` (1-based first line), `end_line` (last line,
heredoc terminators included) and `original` (the logical line as written,
continuations joined, for history). Exec (JSON) forms hold a tuple of strings,
shell forms a single string.
"""

from __future__ import annotations

import csv
import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from builder.frontend.heredoc import Heredoc

__all__ = [
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
    "Command",
    "Instruction",
    "Mount",
    "MountSyntaxError",
    "PortError",
    "normalize_ports",
    "parse_mount",
]

Command = tuple[str, ...] | str  # exec form (JSON array) or shell form


@dataclass(frozen=True, kw_only=True)
class Instruction:
    """Fields common to all instructions."""

    keyword: ClassVar[str] = ""
    line: int = 0
    end_line: int = 0
    original: str = ""


@dataclass(frozen=True, kw_only=True)
class FROM(Instruction):
    keyword: ClassVar[str] = "FROM"
    image: str
    platform: str | None = None
    stage_name: str | None = None  # lower-cased, as docker compares stage names


@dataclass(frozen=True, kw_only=True)
class Mount:
    """One ``RUN --mount=...``; fields BuildKit leaves unset are None."""

    type: str = "bind"  # bind | cache | tmpfs | secret | ssh
    target: str | None = None
    source: str | None = None
    from_: str | None = None
    id: str | None = None
    sharing: str | None = None  # shared | private | locked (cache only; None means shared)
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    readonly: bool = True  # default: read-only for bind/secret/ssh, writable for cache/tmpfs
    required: bool = False
    env: str | None = None  # secret only: expose the secret as this environment variable
    size: int | None = None  # tmpfs only, bytes


@dataclass(frozen=True, kw_only=True)
class RUN(Instruction):
    keyword: ClassVar[str] = "RUN"
    command: Command
    is_exec: bool = False
    heredocs: tuple[Heredoc, ...] = ()
    mounts: tuple[Mount, ...] = ()
    mount_specs: tuple[str, ...] = ()  # the raw --mount values, re-parsed when expanding
    network: str | None = None  # default | none | host
    security: str | None = None  # sandbox | insecure


@dataclass(frozen=True, kw_only=True)
class CMD(Instruction):
    keyword: ClassVar[str] = "CMD"
    command: Command
    is_exec: bool = False


@dataclass(frozen=True, kw_only=True)
class ENTRYPOINT(Instruction):
    keyword: ClassVar[str] = "ENTRYPOINT"
    command: Command  # ENTRYPOINT [] is () with is_exec: the image's entrypoint is cleared
    is_exec: bool = False


@dataclass(frozen=True, kw_only=True)
class ENV(Instruction):
    keyword: ClassVar[str] = "ENV"
    pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True, kw_only=True)
class ARG(Instruction):
    keyword: ClassVar[str] = "ARG"
    pairs: tuple[tuple[str, str | None], ...]  # (name, default or None)


@dataclass(frozen=True, kw_only=True)
class LABEL(Instruction):
    keyword: ClassVar[str] = "LABEL"
    pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True, kw_only=True)
class EXPOSE(Instruction):
    keyword: ClassVar[str] = "EXPOSE"
    ports: tuple[str, ...]  # raw words, sorted as docker does; expanded: "80/tcp", ranges spelled out


@dataclass(frozen=True, kw_only=True)
class VOLUME(Instruction):
    keyword: ClassVar[str] = "VOLUME"
    paths: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class USER(Instruction):
    keyword: ClassVar[str] = "USER"
    user: str


@dataclass(frozen=True, kw_only=True)
class WORKDIR(Instruction):
    keyword: ClassVar[str] = "WORKDIR"
    path: str


@dataclass(frozen=True, kw_only=True)
class SHELL(Instruction):
    keyword: ClassVar[str] = "SHELL"
    shell: tuple[str, ...]


@dataclass(frozen=True, kw_only=True)
class STOPSIGNAL(Instruction):
    keyword: ClassVar[str] = "STOPSIGNAL"
    signal: str


@dataclass(frozen=True, kw_only=True)
class HEALTHCHECK(Instruction):
    """``test`` is ("NONE",), ("CMD", arg, ...) or ("CMD-SHELL", command); durations in ns, 0 = unset."""

    keyword: ClassVar[str] = "HEALTHCHECK"
    test: tuple[str, ...]
    interval: int = 0
    timeout: int = 0
    start_period: int = 0
    start_interval: int = 0
    retries: int = 0


@dataclass(frozen=True, kw_only=True)
class ONBUILD(Instruction):
    """``expression`` is the trigger text stored in the image config (heredoc bodies appended)."""

    keyword: ClassVar[str] = "ONBUILD"
    expression: str


@dataclass(frozen=True, kw_only=True)
class MAINTAINER(Instruction):
    keyword: ClassVar[str] = "MAINTAINER"
    maintainer: str


@dataclass(frozen=True, kw_only=True)
class COPY(Instruction):
    """``heredocs`` are inline sources (``COPY <<EOF /path``), written as files named after them."""

    keyword: ClassVar[str] = "COPY"
    sources: tuple[str, ...]
    dest: str
    from_: str | None = None
    chown: str | None = None
    chmod: str | None = None
    link: bool = False
    exclude: tuple[str, ...] = ()
    parents: bool = False
    heredocs: tuple[Heredoc, ...] = ()


@dataclass(frozen=True, kw_only=True)
class ADD(Instruction):
    keyword: ClassVar[str] = "ADD"
    sources: tuple[str, ...]
    dest: str
    chown: str | None = None
    chmod: str | None = None
    link: bool = False
    exclude: tuple[str, ...] = ()
    checksum: str | None = None
    keep_git_dir: bool = False
    heredocs: tuple[Heredoc, ...] = ()


class MountSyntaxError(ValueError):
    """A --mount value is malformed (a mount that cannot be set up is `execution.run_mounts.MountError`)."""


_MOUNT_TYPES = ("bind", "cache", "tmpfs", "secret", "ssh")
_SHARING = ("shared", "private", "locked")
_KEY_ALIASES = {"src": "source", "dst": "target", "destination": "target", "ro": "readonly", "rw": "readwrite"}
_RAM = re.compile(r"^(\d+(?:\.\d+)*) ?([kKmMgGtTpP])?[iI]?[bB]?$")
_GO_BOOLS = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
             "0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False}  # fmt: skip


@dataclass
class _MountDraft:
    values: dict[str, object] = field(default_factory=lambda: {"type": "bind"})
    ro_auto: bool = True


def parse_mount(spec: str, expand: Callable[[str], str] | None = None) -> Mount:
    """Parse one ``--mount`` value (CSV of key=value) as BuildKit does.

    With `expand`, every value is expanded first. Without it (parse time),
    values holding ``$`` are skipped, to be checked once expanded, except
    ``from``, which may never use variables.
    """
    try:
        fields = next(csv.reader([spec], strict=True), [])
    except csv.Error as exc:
        raise MountSyntaxError(f"failed to parse csv mounts: {exc}") from None
    draft = _MountDraft()
    for item in fields:
        key, sep, value = item.partition("=")
        key = key.lower()
        if not sep:
            _mount_flag(draft, key, item)
            continue
        if key == "from" and expand is None and re.search(r"\$.", value):
            raise MountSyntaxError("'from' doesn't support variable expansion, define alias stage instead")
        if expand is not None:
            value = expand(value)
        elif "$" in value:
            continue
        _mount_value(draft, _KEY_ALIASES.get(key, key), value, item)
    return _finish_mount(draft)


def _mount_flag(draft: _MountDraft, key: str, item: str) -> None:
    mount_type = draft.values["type"]
    if key in ("readonly", "ro", "readwrite", "rw"):
        draft.values["readonly"] = key in ("readonly", "ro")
        draft.ro_auto = False
    elif key == "required" and mount_type in ("secret", "ssh"):
        draft.values["required"] = True
    elif key == "required":
        raise MountSyntaxError(f"unexpected key '{key}' for mount type '{mount_type}'")
    else:
        raise MountSyntaxError(f"invalid field '{item}' must be a key=value pair")


def _go_bool(key: str, value: str) -> bool:
    if value not in _GO_BOOLS:
        raise MountSyntaxError(f"invalid value for {key}: {value}")
    return _GO_BOOLS[value]


def _go_uint(value: str, base: int, what: str) -> int:
    if not value or any(c not in "0123456789"[:base] for c in value):
        raise MountSyntaxError(f"invalid value {value} for {what}")
    number = int(value, base)
    if number >= 1 << 32:
        raise MountSyntaxError(f"invalid value {value} for {what}")
    return number


def ram_in_bytes(value: str) -> int:
    """Docker's units.RAMInBytes: "64m", "1.5g", "512" (binary multiples)."""
    match = _RAM.match(value)
    if not match:
        raise MountSyntaxError(f"invalid value for size: {value}")
    number = float(match.group(1)) if match.group(1).count(".") <= 1 else None
    if number is None:
        raise MountSyntaxError(f"invalid value for size: {value}")
    unit = (match.group(2) or "").lower()
    return int(number * 1024 ** "_kmgtp".index(unit)) if unit else int(number)


def _mount_value(draft: _MountDraft, key: str, value: str, item: str) -> None:
    values = draft.values
    mount_type = values["type"]
    if key == "type":
        if value.lower() not in _MOUNT_TYPES:
            raise MountSyntaxError(f"unsupported mount type {value!r}")
        values["type"] = value.lower()
    elif key in ("from", "source", "target", "id"):
        values["from_" if key == "from" else key] = value
    elif key in ("readonly", "readwrite"):
        flag = _go_bool(key, value)
        values["readonly"] = flag if key == "readonly" else not flag
        draft.ro_auto = False
    elif key == "required" and mount_type in ("secret", "ssh"):
        values["required"] = _go_bool(key, value)
    elif key == "size" and mount_type == "tmpfs":
        values["size"] = ram_in_bytes(value)
    elif key == "env" and mount_type == "secret":
        values["env"] = value
    elif key in ("required", "size", "env"):
        raise MountSyntaxError(f"unexpected key '{key}' for mount type '{mount_type}'")
    elif key == "sharing":
        if value.lower() not in _SHARING:
            raise MountSyntaxError(f"unsupported sharing value {value!r}")
        values["sharing"] = value.lower()
    elif key == "mode":
        values["mode"] = _go_uint(value, 8, "mode")
    elif key in ("uid", "gid"):
        values[key] = _go_uint(value, 10, key)
    else:
        raise MountSyntaxError(f"unexpected key '{key}' in '{item}'")


def _finish_mount(draft: _MountDraft) -> Mount:
    """BuildKit's validateMount: per-type rules and the read-only default."""
    values = draft.values
    mount_type = values["type"]
    if mount_type not in ("secret", "ssh", "cache"):
        for key in ("mode", "uid", "gid"):
            if values.get(key) is not None:
                raise MountSyntaxError(f"{key} not allowed for {mount_type!r} type mounts")
    if draft.ro_auto:
        values["readonly"] = mount_type not in ("cache", "tmpfs")
    if mount_type == "secret":
        if values.get("from_"):
            raise MountSyntaxError("secret mount should not have a from")
        if values.get("sharing"):
            raise MountSyntaxError("secret mount should not define sharing")
        if not any(values.get(k) for k in ("source", "target", "id", "env")):
            raise MountSyntaxError("invalid secret mount. one of source, target required")
        if values.get("source") and values.get("id"):
            raise MountSyntaxError("both source and id can't be set")
    if values.get("sharing") and mount_type != "cache":
        raise MountSyntaxError(f"invalid cache sharing set for {mount_type} mount")
    return Mount(**values)  # type: ignore[arg-type]


class PortError(ValueError):
    """An EXPOSE argument is not a valid port specification."""


def normalize_ports(specs: Sequence[str]) -> tuple[str, ...]:
    """EXPOSE arguments as docker stores them: "80/tcp", ranges spelled out, duplicates dropped.

    Accepts ``port``, ``port/proto``, ``start-end[/proto]`` and the ``[ip:][hostport:]port``
    forms docker tolerates (the host part is validated, then ignored).
    """
    seen: dict[str, None] = {}
    unseen: dict[str, _Unseen] = {}
    for spec in specs:
        proto, start, end = _port_spec(spec)
        free = unseen.get(proto) or unseen.setdefault(proto, _Unseen())
        port = free.first(start)
        while port <= end:  # only the ports this range adds: `EXPOSE 1-65535`, 100,000 times, took hours
            seen[f"{port}/{proto}"] = None
            free.take(port)
            port = free.first(port + 1)
    return tuple(seen)


class _Unseen:
    """The ports of one protocol not exposed yet: `first(p)` is the first at or after p.

    A "next free" pointer per port, with path compression (union-find), so
    walking a range costs what the range adds, not its length.
    """

    def __init__(self) -> None:
        self.next = list(range(65537))

    def first(self, port: int) -> int:
        root = port
        while self.next[root] != root:
            root = self.next[root]
        while self.next[port] != root:
            self.next[port], port = root, self.next[port]
        return root

    def take(self, port: int) -> None:
        self.next[port] = port + 1


def _port_spec(raw: str) -> tuple[str, int, int]:
    """(protocol, first port, last port) of one EXPOSE argument."""
    parts = raw.split(":")
    ip, host, container = "", "", parts[-1]
    if len(parts) == 2:
        host = parts[0]
    elif len(parts) >= 3:
        ip, host = ":".join(parts[:-2]), parts[-2]
    port, _, proto = container.partition("/")
    if not port:
        raise PortError(f"no port specified: {container}<empty>")
    proto = proto.lower() or "tcp"
    if proto not in ("tcp", "udp", "sctp"):
        raise PortError(f"invalid proto: {proto}")
    if ip:
        _check_ip(ip)
    try:
        start, end = _port_range(port)
    except PortError:
        raise PortError(f"invalid containerPort: {port}") from None
    if host:
        try:
            host_start, host_end = _port_range(host)
        except PortError:
            raise PortError(f"invalid hostPort: {host}") from None
        if end - start != host_end - host_start and end != start:
            raise PortError(f"invalid ranges specified for container and host Ports: {port} and {host}")
    return proto, start, end


def _check_ip(ip: str) -> None:
    if ip.startswith("["):
        ip = ip[1 : ip.find("]")] if "]" in ip else ip
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        raise PortError(f"invalid IP address: {ip}") from None


def _port_range(text: str) -> tuple[int, int]:
    if not text:
        raise PortError("empty string specified for ports")
    pieces = text.split("-")
    if len(pieces) > 2 or not all(p.isdigit() and p.isascii() and int(p) < 65536 for p in pieces):
        raise PortError(f"invalid port range format: {text}")
    start, end = int(pieces[0]), int(pieces[-1])
    if end < start:
        raise PortError(f"invalid range specified for port: {text}")
    return start, end
