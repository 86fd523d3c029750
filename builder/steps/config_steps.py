"""Instructions that change only the image config, each a small pure function.

`apply_config_step(config, instruction, stage)` returns the new config and
the history text; no filesystem is touched, so none of these ever needs the
base image's layers. Semantics follow docker's builder (BuildKit's
dispatch* functions) where the Dockerfile reference is silent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from builder.frontend import instructions as ins
from builder.steps.history import go_quoted_list
from oci.errors import DockerfileError
from oci.models import ImageConfig

__all__ = ["CONFIG_INSTRUCTIONS", "StageFlags", "apply_config_step", "command_argv"]

DEFAULT_SHELL = ("/bin/sh", "-c")


@dataclass
class StageFlags:
    """What docker remembers within one stage beyond the config itself."""

    cmd_set: bool = False


def command_argv(command: ins.Command, is_exec: bool, shell: tuple[str, ...] | None) -> tuple[str, ...]:
    """Exec form as written; shell form wrapped in SHELL (default /bin/sh -c)."""
    if is_exec:
        return tuple(command)
    return (*(shell or DEFAULT_SHELL), str(command))


def _env(config: ImageConfig, instr: ins.ENV, flags: StageFlags) -> tuple[ImageConfig, str]:
    env = config.config.env_dict()
    order = [e.partition("=")[0] for e in config.config.env or ()]
    for key, value in instr.pairs:
        if key not in env:
            order.append(key)
        env[key] = value
    text = "ENV " + " ".join(f"{k}={v}" for k, v in instr.pairs)
    return config.with_container(env=tuple(f"{k}={env[k]}" for k in order)), text


def _label(config: ImageConfig, instr: ins.LABEL, flags: StageFlags) -> tuple[ImageConfig, str]:
    labels = dict(config.config.labels or {})
    labels.update(dict(instr.pairs))
    text = "LABEL " + " ".join(f"{k}={v}" for k, v in instr.pairs)
    return config.with_container(labels=labels), text


def _cmd(config: ImageConfig, instr: ins.CMD, flags: StageFlags) -> tuple[ImageConfig, str]:
    argv = command_argv(instr.command, instr.is_exec, config.config.shell)
    flags.cmd_set = True
    return config.with_container(cmd=argv), f"CMD {go_quoted_list(argv)}"


def _entrypoint(config: ImageConfig, instr: ins.ENTRYPOINT, flags: StageFlags) -> tuple[ImageConfig, str]:
    argv = command_argv(instr.command, instr.is_exec, config.config.shell)
    changes: dict[str, Any] = {"entrypoint": argv or None}
    if not flags.cmd_set:
        changes["cmd"] = None  # docker: a new ENTRYPOINT drops a CMD inherited from the base
    return config.with_container(**changes), f"ENTRYPOINT {go_quoted_list(argv)}"


def _expose(config: ImageConfig, instr: ins.EXPOSE, flags: StageFlags) -> tuple[ImageConfig, str]:
    ports = dict(config.config.exposed_ports or {})
    for port in instr.ports:
        ports[port] = {}
    # BuildKit prints Go's rendering of its port map: "EXPOSE map[80/tcp:{}]".
    text = "EXPOSE map[" + " ".join(f"{p}:{{}}" for p in sorted(instr.ports)) + "]"
    return config.with_container(exposed_ports=ports), text


def _volume(config: ImageConfig, instr: ins.VOLUME, flags: StageFlags) -> tuple[ImageConfig, str]:
    volumes = dict(config.config.volumes or {})
    for path in instr.paths:
        if not path:
            raise DockerfileError("VOLUME specified can not be an empty string", line=instr.line)
        volumes[path] = {}
    return config.with_container(volumes=volumes), f"VOLUME {go_quoted_list(instr.paths)}"


def _user(config: ImageConfig, instr: ins.USER, flags: StageFlags) -> tuple[ImageConfig, str]:
    return config.with_container(user=instr.user), f"USER {instr.user}"


def _shell(config: ImageConfig, instr: ins.SHELL, flags: StageFlags) -> tuple[ImageConfig, str]:
    return config.with_container(shell=tuple(instr.shell)), f"SHELL {go_quoted_list(instr.shell)}"


def _stopsignal(config: ImageConfig, instr: ins.STOPSIGNAL, flags: StageFlags) -> tuple[ImageConfig, str]:
    return config.with_container(stop_signal=instr.signal), f"STOPSIGNAL {instr.signal}"


def _healthcheck(config: ImageConfig, instr: ins.HEALTHCHECK, flags: StageFlags) -> tuple[ImageConfig, str]:
    check: dict[str, Any] = {"Test": list(instr.test)}
    for key, value in (("Interval", instr.interval), ("Timeout", instr.timeout),
                       ("StartPeriod", instr.start_period), ("StartInterval", instr.start_interval),
                       ("Retries", instr.retries)):
        if value:
            check[key] = value
    text = "HEALTHCHECK &{" + go_quoted_list(instr.test) + "}"
    return config.with_container(healthcheck=check), text


def _onbuild(config: ImageConfig, instr: ins.ONBUILD, flags: StageFlags) -> tuple[ImageConfig, str]:
    triggers = (*(config.config.on_build or ()), instr.expression)
    return config.with_container(on_build=triggers), f"ONBUILD {instr.expression}"


def _maintainer(config: ImageConfig, instr: ins.MAINTAINER, flags: StageFlags) -> tuple[ImageConfig, str]:
    return replace(config, author=instr.maintainer), f"MAINTAINER {instr.maintainer}"


def _arg(config: ImageConfig, instr: ins.ARG, flags: StageFlags) -> tuple[ImageConfig, str]:
    parts = [k if v is None else f"{k}={v}" for k, v in instr.pairs]
    return config, "ARG " + " ".join(parts)


_Handler = Callable[[ImageConfig, Any, StageFlags], tuple[ImageConfig, str]]

CONFIG_INSTRUCTIONS: dict[type, _Handler] = {
    ins.ENV: _env, ins.LABEL: _label, ins.CMD: _cmd, ins.ENTRYPOINT: _entrypoint, ins.EXPOSE: _expose,
    ins.VOLUME: _volume, ins.USER: _user, ins.SHELL: _shell, ins.STOPSIGNAL: _stopsignal,
    ins.HEALTHCHECK: _healthcheck, ins.ONBUILD: _onbuild, ins.MAINTAINER: _maintainer, ins.ARG: _arg,
}


def apply_config_step(config: ImageConfig, instr: ins.Instruction, flags: StageFlags) -> tuple[ImageConfig, str]:
    """Apply a config-only instruction; returns the new config and its history `created_by`."""
    handler = CONFIG_INSTRUCTIONS[type(instr)]
    return handler(config, instr, flags)


