"""A Dockerfile as a build plan: stages, the stage graph, ARG scopes and expansion.

Why: before any step runs, docker (BuildKit) knows which stages the target
needs, what each FROM names, and rejects missing or circular stage references;
that is `parse_dockerfile`. What a step sees when expanded depends on the base
image's ENV, known only when the executor has the image config, so expansion
is offered as functions the executor calls with a `Scope` (the variables in
force at that step) instead of being done here.

Semantics followed (BuildKit's dockerfile2llb):
- ARGs before the first FROM are global; only FROM (image and --platform)
  sees them, with the predefined platform ARGs. A stage sees a global ARG
  only after re-declaring it (``ARG NAME``).
- --build-arg overrides a declared ARG's default; an ARG used before it is
  declared is simply empty.
- A stage's variables are its base image's ENV plus its own ARG and ENV
  values, the later definition winning; a stage built FROM another stage
  inherits that stage's ARGs and ENV.
- COPY --from and RUN --mount from= name a stage (by name, or COPY by index)
  or else an image; a stage may only use stages defined before it.
"""

from __future__ import annotations

import platform as _host
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TypeVar

from builder.frontend import dockerfile
from builder.frontend import instructions as ins
from builder.frontend.expansion import expand_instruction
from builder.frontend.limits import MAX_STAGES, MAX_VARIABLES_SIZE
from builder.frontend.secret_names import secret_name_warnings
from builder.frontend.shell import ExpansionError, Lexer
from oci.errors import DockerfileError

__all__ = [
    "DEFAULT_PATH",
    "PROXY_ARGS",
    "BuildPlan",
    "Scope",
    "Stage",
    "expand_instruction",
    "parse_dockerfile",
    "platform_args",
]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PROXY_ARGS = frozenset(
    name for scheme in ("http", "https", "ftp", "no", "all") for name in (f"{scheme.upper()}_PROXY", f"{scheme}_proxy")
)  # build args docker accepts undeclared and passes to RUN, but keeps out of the cache key and history
_NON_ENV_ARGS = frozenset({"BUILDKIT_SBOM_SCAN_CONTEXT", "BUILDKIT_SBOM_SCAN_STAGE"})
_ARCH_ALIASES = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm", "armel": "arm",
                 "i386": "386", "i686": "386"}  # fmt: skip


def _normalize_platform(spec: str) -> tuple[str, str, str]:
    parts = spec.strip().lower().split("/")
    os_name = parts[0] or "linux"
    arch = _ARCH_ALIASES.get(parts[1], parts[1]) if len(parts) > 1 else "amd64"
    variant = parts[2] if len(parts) > 2 else ""
    if arch == "armv7l":
        arch, variant = "arm", variant or "v7"
    if arch == "arm64" and variant == "v8":
        variant = ""
    if arch == "arm" and not variant:
        variant = "v7"
    return os_name, arch, variant


def platform_args(target: str | None = None, build: str | None = None) -> dict[str, str]:
    """The predefined ARGs (TARGETPLATFORM, BUILDARCH, ...) for "os/arch[/variant]" strings.

    `build` defaults to this machine, `target` to `build`.
    """
    build = build or f"linux/{_host.machine()}"
    values: dict[str, str] = {}
    for prefix, spec in (("BUILD", build), ("TARGET", target or build)):
        os_name, arch, variant = _normalize_platform(spec)
        values[prefix + "PLATFORM"] = "/".join(p for p in (os_name, arch, variant) if p)
        values[prefix + "OS"] = os_name
        values[prefix + "ARCH"] = arch
        values[prefix + "VARIANT"] = variant
    return values


@dataclass(frozen=True)
class Scope:
    """The variables in force at one step of a stage.

    `env` is what expansion sees and RUN gets (base image ENV, ENV and ARG
    values, later wins); `args` are the declared build args with their values
    (None: declared without a value), which belong in the cache key and in
    history, unlike the image ENV.
    """

    env: tuple[tuple[str, str], ...] = ()
    args: tuple[tuple[str, str | None], ...] = ()

    def env_dict(self) -> dict[str, str]:
        return dict(self.env)

    def arg_values(self) -> dict[str, str]:
        """Declared args that have a value: the ``|N K=V`` of docker's RUN history."""
        return {key: value for key, value in self.args if value is not None}

    def with_env(self, key: str, value: str) -> Scope:
        return self.with_envs(((key, value),))

    def with_arg(self, key: str, value: str | None) -> Scope:
        return self.with_args(((key, value),))

    def with_envs(self, pairs: Iterable[tuple[str, str]]) -> Scope:
        """`with_env` for each pair in turn, in one pass (an ENV of 50,000 pairs was quadratic)."""
        return replace(self, env=_set_in_order(self.env, pairs))

    def with_args(self, pairs: Iterable[tuple[str, str | None]]) -> Scope:
        """`with_arg` for each pair in turn, in one pass."""
        pairs = tuple(pairs)
        scope = replace(self, args=_set_in_order(self.args, pairs))
        return scope.with_envs((k, v) for k, v in pairs if v is not None and k not in _NON_ENV_ARGS)

    def size(self) -> int:
        """Characters in the variables in force, as a RUN's environment would hold them ("K=V")."""
        return sum(len(k) + len(v) + 1 for k, v in self.env)


_V = TypeVar("_V")


def _set_in_order(items: tuple[tuple[str, _V], ...], pairs: Iterable[tuple[str, _V]]) -> tuple[tuple[str, _V], ...]:
    """`items` with each pair set in turn: a key set again moves to the end, as docker orders Env."""
    updated: dict[str, _V] = {}
    for key, value in pairs:
        updated.pop(key, None)
        updated[key] = value
    return tuple((k, v) for k, v in items if k not in updated) + tuple(updated.items())


@dataclass(frozen=True, kw_only=True)
class Stage:
    """One FROM and the instructions up to the next FROM."""

    index: int
    name: str | None  # lower-cased "AS" name
    base: str  # FROM's argument expanded with the global ARGs: an image, a stage name or "scratch"
    base_stage: int | None  # the stage `base` names, if any
    platform: str | None  # FROM --platform, expanded
    from_instr: ins.FROM
    instructions: tuple[ins.Instruction, ...]
    deps: tuple[int, ...] = ()  # stages this one needs: its base, COPY --from, RUN --mount from=

    @property
    def is_scratch(self) -> bool:
        return self.base == "scratch" and self.base_stage is None

    @property
    def display_name(self) -> str:
        return self.name or f"stage-{self.index}"


@dataclass(frozen=True, kw_only=True)
class BuildPlan:
    """A parsed, validated Dockerfile with the stages the target needs."""

    filename: str
    escape: str
    syntax: str | None
    global_args: tuple[tuple[str, str | None], ...]  # ARGs before the first FROM, after --build-arg
    global_env: Mapping[str, str]  # what FROM expands with: predefined ARGs + global ARGs with values
    build_args: Mapping[str, str]
    stages: tuple[Stage, ...]
    target: int
    order: tuple[int, ...]  # the needed stages, in build order (the target last)
    unused_build_args: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    _names: Mapping[str, int] = field(default_factory=dict, repr=False)

    @property
    def needed(self) -> list[Stage]:
        return [self.stages[i] for i in self.order]

    def resolve_from(self, value: str, *, allow_index: bool = True) -> int | None:
        """The stage a COPY --from / --mount from= value names, or None for an image."""
        if allow_index and _is_go_int(value):
            index = int(value)
            return index if 0 <= index < len(self.stages) else None
        return self._names.get(value.lower())

    def expand_from(self, value: str, line: int) -> str:
        """A --from value expanded with the global ARGs (the stage graph is known before any step runs)."""
        return _expand(Lexer(self.escape), value, self.global_env, self.filename, line)

    def initial_scope(self, stage: Stage, image_env: Iterable[str], parent: Scope | None = None) -> Scope:
        """The scope right after FROM: `parent` is the base stage's final scope, when it is a stage.

        `image_env` is the base image config's Env ("K=V" strings); PATH is
        added when missing, as docker adds it to the image config too.
        """
        scope = parent if parent is not None and stage.base_stage is not None else Scope()
        has_path = False
        for entry in image_env:
            key, _, value = entry.partition("=")
            has_path = has_path or key == "PATH"
            scope = scope.with_env(key, value)
        return scope if has_path else scope.with_env("PATH", DEFAULT_PATH)

    def advance(self, scope: Scope, instr: ins.Instruction) -> Scope:
        """The scope after `instr`, which must be the raw instruction (it is expanded here).

        ARG and ENV change the scope; other instructions leave it as it is.
        """
        if isinstance(instr, ins.ARG):
            scope = scope.with_args(self._resolve_arg(scope, instr))
        elif isinstance(instr, ins.ENV):
            expanded = expand_instruction(instr, scope.env_dict(), escape=self.escape, filename=self.filename)
            assert isinstance(expanded, ins.ENV)
            scope = scope.with_envs(expanded.pairs)
        else:
            return scope
        if scope.size() > MAX_VARIABLES_SIZE.value:  # every later step would hash and pass them all
            raise DockerfileError(MAX_VARIABLES_SIZE.exceeded(f"the variables in force ({scope.size()} characters)"),
                                  file=self.filename, line=instr.line)
        return scope

    def expand(self, instr: ins.Instruction, scope: Scope, *, undefined: set[str] | None = None) -> ins.Instruction:
        """The raw `instr` expanded as docker would at this step, `scope` being the scope before it.

        ARG pairs get their resolved values (--build-arg, else the expanded
        default, else the global value); COPY --from is expanded with the
        global ARGs, so that it names the stage the plan's graph found.
        Variables used but neither set nor declared by an ARG are added to
        `undefined` (BuildKit's UndefinedVar check: they expand to nothing).
        """
        if isinstance(instr, ins.ARG):
            return replace(instr, pairs=tuple(self._resolve_arg(scope, instr)))
        unmatched: set[str] = set()
        expanded = expand_instruction(instr, scope.env_dict(), escape=self.escape, filename=self.filename,
                                      unmatched=unmatched)
        if undefined is not None:
            undefined |= unmatched - {key for key, _ in scope.args}
        if isinstance(expanded, ins.COPY) and isinstance(instr, ins.COPY) and instr.from_ is not None:
            expanded = replace(expanded, from_=self.expand_from(instr.from_, instr.line))
        return expanded

    def run_env(self, scope: Scope) -> dict[str, str]:
        """The environment of a RUN: the scope's, plus proxy build args (never in the cache key)."""
        env = scope.env_dict()
        for key in sorted(PROXY_ARGS & self.build_args.keys()):
            env.setdefault(key, self.build_args[key])
        return env

    def args_in_scope(self, stage: Stage, step: int) -> tuple[str, ...]:
        """Names of the build args declared before ``stage.instructions[step]`` (inherited ones first)."""
        names: dict[str, None] = {}
        if stage.base_stage is not None:
            parent = self.stages[stage.base_stage]
            names.update(dict.fromkeys(self.args_in_scope(parent, len(parent.instructions))))
        for instr in stage.instructions[:step]:
            if isinstance(instr, ins.ARG):
                for key, _ in instr.pairs:
                    names.pop(key, None)
                    names[key] = None
        return tuple(names)

    def _resolve_arg(self, scope: Scope, instr: ins.ARG) -> list[tuple[str, str | None]]:
        resolved: list[tuple[str, str | None]] = []
        env = scope.env_dict()  # each default sees the pairs before it
        for key, default in instr.pairs:
            if key in self.build_args:
                value: str | None = self.build_args[key]
            elif default is not None:
                value = _expand(Lexer(self.escape), default, env, self.filename, instr.line)
            else:
                value = self.global_env.get(key)
            resolved.append((key, value))
            if value is not None and key not in _NON_ENV_ARGS:
                env[key] = value
        return resolved


def _is_go_int(value: str) -> bool:
    digits = value[1:] if value[:1] in ("+", "-") else value
    return digits.isdigit() and digits.isascii()


def _expand(lexer: Lexer, word: str, env: Mapping[str, str], filename: str, line: int) -> str:
    try:
        return lexer.process_word(word, env)
    except ExpansionError as exc:
        raise DockerfileError(str(exc), file=filename, line=line) from None


def parse_dockerfile(
    text: str,
    *,
    filename: str = "Dockerfile",
    build_args: Mapping[str, str] | None = None,
    target: str | None = None,
    target_platform: str | None = None,
    build_platform: str | None = None,
) -> BuildPlan:
    """Parse and validate a Dockerfile; find the stages `target` (default: the last) needs.

    Raises DockerfileError (with file and line) for parse errors, instructions
    before the first FROM, bad stage references, cycles and an unknown target.
    """
    build_args = dict(build_args or {})
    parsed = dockerfile.parse(text, filename=filename)
    meta, groups = _split_stages(parsed.instructions, filename)
    global_env = platform_args(target_platform, build_platform)
    global_env.update({k: v for k, v in build_args.items() if k in global_env})
    global_args = _resolve_meta_args(meta, global_env, build_args, Lexer(parsed.escape), filename)
    warnings = list(parsed.warnings)
    stages, names = _make_stages(groups, global_env, Lexer(parsed.escape), filename, warnings)
    plan = BuildPlan(
        filename=filename, escape=parsed.escape, syntax=parsed.syntax, global_args=tuple(global_args),
        global_env=global_env, build_args=build_args, stages=tuple(stages), target=len(stages) - 1,
        order=(), _names=names,
    )  # fmt: skip
    stages = [replace(stage, deps=_stage_deps(plan, stage)) for stage in stages]
    plan = replace(plan, stages=tuple(stages))
    _check_cycles(plan)
    target_index = _find_target(plan, target)
    order = _needed(plan, target_index)
    _check_forward_refs(plan, order)
    warnings.extend(_image_source_warnings(plan, order))
    warnings.extend(secret_name_warnings(filename, (i for index in order for i in plan.stages[index].instructions)))
    unused = _unused_build_args(plan, meta, order)
    if unused:
        warnings.append(f"one or more build-args were not consumed: {', '.join(unused)}")
    return replace(plan, target=target_index, order=order, unused_build_args=unused, warnings=tuple(warnings))


def _split_stages(
    instrs: Sequence[ins.Instruction], filename: str
) -> tuple[list[ins.ARG], list[tuple[ins.FROM, list[ins.Instruction]]]]:
    meta: list[ins.ARG] = []
    groups: list[tuple[ins.FROM, list[ins.Instruction]]] = []
    for instr in instrs:
        if isinstance(instr, ins.FROM):
            if len(groups) == MAX_STAGES.value:  # the stage graph is walked recursively
                raise DockerfileError(MAX_STAGES.exceeded("the Dockerfile's stages"), file=filename, line=instr.line)
            groups.append((instr, []))
        elif groups:
            groups[-1][1].append(instr)
        elif isinstance(instr, ins.ARG):
            meta.append(instr)
        else:
            raise DockerfileError(
                f"{instr.keyword} before the first FROM: no build stage in current context", file=filename,
                line=instr.line,
            )  # fmt: skip
    if not groups:
        line = instrs[-1].end_line if instrs else None
        raise DockerfileError("dockerfile contains no stages to build", file=filename, line=line)
    return meta, groups


def _resolve_meta_args(
    meta: Sequence[ins.ARG], env: dict[str, str], build_args: Mapping[str, str], lexer: Lexer, filename: str
) -> list[tuple[str, str | None]]:
    """Global ARGs in order: a --build-arg wins, else the default expanded with the ARGs before it."""
    resolved: list[tuple[str, str | None]] = []
    for arg in meta:
        for key, default in arg.pairs:
            value = build_args.get(key)
            if value is None and default is not None:
                value = _expand(lexer, default, env, filename, arg.line)
            if value is not None:
                env[key] = value
            resolved.append((key, value))
    return resolved


def _make_stages(
    groups: Sequence[tuple[ins.FROM, list[ins.Instruction]]],
    env: Mapping[str, str],
    lexer: Lexer,
    filename: str,
    warnings: list[str],
) -> tuple[list[Stage], dict[str, int]]:
    stages: list[Stage] = []
    names: dict[str, int] = {}
    for index, (from_instr, body) in enumerate(groups):
        base = _expand(lexer, from_instr.image, env, filename, from_instr.line)
        if not base:
            raise DockerfileError(f"base name ({from_instr.image}) should not be blank", file=filename,
                                  line=from_instr.line)  # fmt: skip
        platform = None
        if from_instr.platform is not None:
            platform = _expand(lexer, from_instr.platform, env, filename, from_instr.line)
            if not platform:
                raise DockerfileError(f"empty platform value from expression {from_instr.platform}",
                                      file=filename, line=from_instr.line)  # fmt: skip
        stage = Stage(index=index, name=from_instr.stage_name, base=base, base_stage=names.get(base),
                      platform=platform, from_instr=from_instr, instructions=tuple(body))  # fmt: skip
        if stage.name is not None:
            if stage.name in names:
                warnings.append(f"line {from_instr.line}: duplicate stage name {stage.name!r}")
            names[stage.name] = index
        stages.append(stage)
    return stages, names


def _references(plan: BuildPlan, stage: Stage) -> list[tuple[int, ins.Instruction, str]]:
    """(stage index, instruction, kind) for every stage that `stage` refers to."""
    refs: list[tuple[int, ins.Instruction, str]] = []
    if stage.base_stage is not None:
        refs.append((stage.base_stage, stage.from_instr, "base"))
    body = list(stage.instructions)
    if stage.base_stage is not None:
        body += _onbuild_triggers(plan, plan.stages[stage.base_stage], stage.from_instr.line)
    for instr in body:
        if isinstance(instr, ins.COPY) and instr.from_ is not None:
            value = plan.expand_from(instr.from_, instr.line)
            index = plan.resolve_from(value)
            if index is None and _is_go_int(value):
                raise DockerfileError(f"invalid stage index {value}", file=plan.filename, line=instr.line)
            if index is not None:
                refs.append((index, instr, "copy"))
        elif isinstance(instr, ins.RUN):
            for mount in instr.mounts:
                index = plan.resolve_from(mount.from_, allow_index=False) if mount.from_ else None
                if index is not None:
                    refs.append((index, instr, "mount"))
    return refs


def _onbuild_triggers(plan: BuildPlan, parent: Stage, line: int) -> list[ins.Instruction]:
    """The parent stage's ONBUILD instructions, which run in this stage right after FROM."""
    triggers = []
    for instr in parent.instructions:
        if isinstance(instr, ins.ONBUILD):
            try:
                triggers.append(dockerfile.parse_trigger(instr.expression, line=line, filename=plan.filename))
            except DockerfileError:
                continue  # reported when the trigger runs, as docker does
    return triggers


def _stage_deps(plan: BuildPlan, stage: Stage) -> tuple[int, ...]:
    return tuple(sorted({index for index, _, _ in _references(plan, stage)}))


def _check_cycles(plan: BuildPlan) -> None:
    state: dict[int, str] = {}

    def visit(index: int) -> None:
        state[index] = "active"
        for dep, instr, _ in _references(plan, plan.stages[index]):
            if state.get(dep) == "active":
                name = plan.stages[dep].display_name
                raise DockerfileError(f"circular dependency detected on stage: {name}", file=plan.filename,
                                      line=instr.line)  # fmt: skip
            if dep not in state:
                visit(dep)
        state[index] = "done"

    for stage in plan.stages:
        if stage.index not in state:
            visit(stage.index)


def _find_target(plan: BuildPlan, target: str | None) -> int:
    if target is None:
        return len(plan.stages) - 1
    index = plan._names.get(target.lower())
    if index is None:
        raise DockerfileError(f"target stage {target!r} could not be found", file=plan.filename)
    return index


def _needed(plan: BuildPlan, target: int) -> tuple[int, ...]:
    seen = {target}
    todo = [target]
    while todo:
        for dep in plan.stages[todo.pop()].deps:
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return tuple(sorted(seen))


def _check_forward_refs(plan: BuildPlan, order: Sequence[int]) -> None:
    for index in order:
        stage = plan.stages[index]
        for dep, instr, kind in _references(plan, stage):
            if dep < index:
                continue
            other = plan.stages[dep].display_name
            if kind == "copy":
                message = f"cannot copy from stage {other!r}, it needs to be defined before current stage"
            else:
                message = f"cannot mount from stage {other!r}, stage needs to be defined before current command"
            raise DockerfileError(f"{message} {stage.display_name!r}", file=plan.filename, line=instr.line)


def _image_source_warnings(plan: BuildPlan, order: Sequence[int]) -> list[str]:
    """Flag --from values that name no stage yet look like one: docker will try to pull them."""
    warnings = []
    for index in order:
        for instr in plan.stages[index].instructions:
            values: list[str] = []
            if isinstance(instr, ins.COPY) and instr.from_ is not None:
                values.append(plan.expand_from(instr.from_, instr.line))
            elif isinstance(instr, ins.RUN):
                values.extend(m.from_ for m in instr.mounts if m.from_)
            for value in values:
                if plan.resolve_from(value) is None and not any(c in value for c in ":/@."):
                    warnings.append(f"line {instr.line}: {value!r} names no stage; it will be used as an image")
    return warnings


def _unused_build_args(plan: BuildPlan, meta: Sequence[ins.ARG], order: Sequence[int]) -> tuple[str, ...]:
    declared = {key for arg in meta for key, _ in arg.pairs}
    for index in order:
        for instr in plan.stages[index].instructions:
            if isinstance(instr, ins.ARG):
                declared.update(key for key, _ in instr.pairs)
    allowed = declared | PROXY_ARGS | platform_args().keys()
    return tuple(sorted(k for k in plan.build_args if k not in allowed and not k.startswith("BUILDKIT_")))
