"""Build plans: global ARGs, stages and their graph, --target pruning, scopes and per-step expansion."""

from __future__ import annotations

import pytest

from builder.frontend import instructions as ins
from builder.frontend.plan import DEFAULT_PATH, BuildPlan, Scope, Stage, parse_dockerfile, platform_args
from oci.errors import DockerfileError


def plan_of(text: str, **kwargs: object) -> BuildPlan:
    return parse_dockerfile(text, **kwargs)  # type: ignore[arg-type]


def error_of(text: str, **kwargs: object) -> DockerfileError:
    with pytest.raises(DockerfileError) as info:
        plan_of(text, **kwargs)
    return info.value


def walk(plan: BuildPlan, stage: Stage, image_env: list[str], parent: Scope | None = None) -> list[ins.Instruction]:
    """Expand every instruction of `stage` the way the executor will."""
    scope = plan.initial_scope(stage, image_env, parent)
    out = []
    for instr in stage.instructions:
        out.append(plan.expand(instr, scope))
        scope = plan.advance(scope, instr)
    return out


def final_scope(plan: BuildPlan, stage: Stage, image_env: list[str], parent: Scope | None = None) -> Scope:
    scope = plan.initial_scope(stage, image_env, parent)
    for instr in stage.instructions:
        scope = plan.advance(scope, instr)
    return scope


# --- global ARGs and FROM -----------------------------------------------------------------


def test_global_args_expand_from_and_build_args_override() -> None:
    text = "ARG REG=docker.io\nARG IMG=${REG}/library/alpine\nARG TAG=3.19\nFROM ${IMG}:${TAG}\n"
    plan = plan_of(text)
    assert plan.stages[0].base == "docker.io/library/alpine:3.19"
    plan = plan_of(text, build_args={"TAG": "3.20", "REG": "ghcr.io"})
    assert plan.stages[0].base == "ghcr.io/library/alpine:3.20"
    assert plan.global_args == (("REG", "ghcr.io"), ("IMG", "ghcr.io/library/alpine"), ("TAG", "3.20"))


def test_global_arg_without_value_is_unset() -> None:
    plan = plan_of("ARG V\nFROM alpine${V:+:}${V}\nFROM busybox${V-:unset}\n")
    assert [s.base for s in plan.stages] == ["alpine", "busybox:unset"]
    assert plan.global_args == (("V", None),)


def test_predefined_platform_args_in_from() -> None:
    text = "FROM --platform=$BUILDPLATFORM golang AS b\nFROM img:${TARGETOS}-${TARGETARCH}${TARGETVARIANT}\n"
    plan = plan_of(text, target_platform="linux/arm/v7", build_platform="linux/amd64")
    assert plan.stages[0].platform == "linux/amd64"
    assert plan.stages[1].base == "img:linux-armv7"


def test_platform_args() -> None:
    args = platform_args("linux/aarch64", "linux/x86_64")
    assert args["TARGETPLATFORM"] == "linux/arm64" and args["BUILDARCH"] == "amd64" and args["TARGETVARIANT"] == ""
    assert platform_args("linux/arm")["TARGETPLATFORM"] == "linux/arm/v7"


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("RUN x\nFROM a\n", 1, "no build stage in current context"),
        ("ARG A=1\nENV B=2\nFROM a\n", 2, "no build stage in current context"),
        ("ARG A=1\n", 1, "dockerfile contains no stages to build"),
        ("ARG A\nFROM ${A}\n", 2, "base name (${A}) should not be blank"),
        ("FROM --platform=$NOPE a\n", 1, "empty platform value from expression $NOPE"),
        ("ARG A=${B\nFROM a\n", 1, "missing '}'"),
        ("FROM a AS x\nCOPY --from=x/../y a b\nFROM b\nCOPY --from=5 a b\n", 4, "invalid stage index 5"),
        ("FROM a\nCOPY --from=-1 a b\n", 2, "invalid stage index -1"),
    ],
)
def test_plan_errors(text: str, line: int, message: str) -> None:
    err = error_of(text)
    assert err.line == line and message in err.reason, err


# --- stage graph and --target ------------------------------------------------------------

GRAPH = """\
FROM alpine AS base
RUN echo base
FROM base AS build
RUN make
FROM golang AS tools
RUN go build
FROM scratch AS docs
COPY --from=tools /t /t
FROM busybox AS final
COPY --from=build /out /out
COPY --from=1 /out /again
RUN --mount=from=tools,target=/t run
"""


def test_default_target_is_last_and_only_needed_stages() -> None:
    plan = plan_of(GRAPH)
    assert plan.target == 4 and plan.order == (0, 1, 2, 4)
    assert [s.display_name for s in plan.needed] == ["base", "build", "tools", "final"]
    assert plan.stages[4].deps == (1, 2)
    assert plan.stages[1].base_stage == 0 and plan.stages[1].deps == (0,)
    assert plan.stages[3].is_scratch and not plan.stages[0].is_scratch


@pytest.mark.parametrize(
    ("target", "order"), [("base", (0,)), ("BUILD", (0, 1)), ("docs", (2, 3)), ("final", (0, 1, 2, 4))]
)
def test_target_pruning(target: str, order: tuple[int, ...]) -> None:
    assert plan_of(GRAPH, target=target).order == order


def test_unknown_target() -> None:
    err = error_of(GRAPH, target="nope")
    assert "target stage 'nope' could not be found" in err.reason


def test_copy_from_image_is_not_a_stage() -> None:
    plan = plan_of("FROM a\nCOPY --from=nginx:latest /etc/nginx /n\nCOPY --from=buildr x y\n")
    assert plan.stages[0].deps == () and plan.resolve_from("nginx:latest") is None
    assert plan.warnings == ("line 3: 'buildr' names no stage; it will be used as an image",)


def test_stage_names_are_case_insensitive_for_from_flags() -> None:
    plan = plan_of("FROM a AS Build\nFROM b\nCOPY --from=BUILD x y\n", target="build")
    assert plan.stages[1].deps == (0,) and plan.order == (0,)


def test_copy_from_expands_global_args() -> None:
    text = "ARG SRC=build\nFROM a AS build\nFROM b\nCOPY --from=${SRC} /x /y\n"
    plan = plan_of(text)
    assert plan.stages[1].deps == (0,)
    assert plan_of(text, build_args={"SRC": "alpine"}).stages[1].deps == ()
    copy = walk(plan, plan.stages[1], [])[0]
    assert isinstance(copy, ins.COPY) and copy.from_ == "build"


def test_forward_reference_is_an_error() -> None:
    err = error_of("FROM a AS one\nCOPY --from=two x y\nFROM b AS two\n", target="one")
    assert (
        err.line == 2
        and "cannot copy from stage 'two', it needs to be defined before current stage 'one'" in err.reason
    )
    err = error_of("FROM a AS one\nRUN --mount=from=two,target=/x y\nFROM b AS two\n", target="one")
    assert err.line == 2 and "cannot mount from stage 'two'" in err.reason


def test_forward_reference_in_unneeded_stage_is_ignored() -> None:
    plan = plan_of("FROM a AS one\nCOPY --from=two x y\nFROM b AS two\nFROM c AS three\n", target="three")
    assert plan.order == (2,)


@pytest.mark.parametrize(
    "text",
    [
        "FROM a AS one\nCOPY --from=one x y\n",
        "FROM a AS one\nCOPY --from=two x y\nFROM b AS two\nCOPY --from=one x y\n",
        "FROM a AS one\nCOPY --from=0 x y\n",
    ],
)
def test_cycles_are_errors(text: str) -> None:
    err = error_of(text)
    assert "circular dependency detected on stage" in err.reason and err.line in (2, 4)


def test_from_only_names_earlier_stages() -> None:
    plan = plan_of("FROM later AS first\nFROM alpine AS later\n")
    assert plan.stages[0].base_stage is None and plan.stages[0].base == "later"


def test_duplicate_stage_names_warn_and_last_wins_for_copy() -> None:
    plan = plan_of("FROM a AS x\nFROM b AS x\nFROM c\nCOPY --from=x a b\n")
    assert plan.stages[2].deps == (1,) and any("duplicate stage name" in w for w in plan.warnings)


def test_onbuild_of_parent_stage_adds_dependencies() -> None:
    text = "FROM a AS assets\nFROM b AS base\nONBUILD COPY --from=assets /a /a\nFROM c AS other\nFROM base\n"
    plan = plan_of(text)
    assert plan.stages[3].deps == (0, 1) and plan.order == (0, 1, 3)


# --- scopes: ARG and ENV at each step ------------------------------------------------------


def test_arg_scoping_like_docker() -> None:
    text = """\
ARG VERSION=1.0
ARG ONLY_GLOBAL=g
FROM alpine
RUN echo before=$VERSION
ARG VERSION
ARG LOCAL=l-${VERSION}
WORKDIR /v/$VERSION/$LOCAL/$ONLY_GLOBAL/$UNDECLARED
"""
    plan = plan_of(text, build_args={"UNDECLARED": "x"})
    stage = plan.stages[0]
    scope = plan.initial_scope(stage, ["PATH=/bin"])
    for instr in stage.instructions[:-1]:
        scope = plan.advance(scope, instr)
    assert scope.arg_values() == {"VERSION": "1.0", "LOCAL": "l-1.0"}
    workdir = plan.expand(stage.instructions[-1], scope)
    assert isinstance(workdir, ins.WORKDIR) and workdir.path == "/v/1.0/l-1.0//"
    assert plan.unused_build_args == ("UNDECLARED",)


def test_build_arg_overrides_stage_default_and_skips_its_expansion() -> None:
    plan = plan_of("FROM a\nARG X=${bad\nRUN x\n", build_args={"X": "given"})
    scope = final_scope(plan, plan.stages[0], [])
    assert scope.arg_values() == {"X": "given"}
    arg = walk(plan, plan.stages[0], [])[0]
    assert isinstance(arg, ins.ARG) and arg.pairs == (("X", "given"),)


def test_arg_default_sees_base_image_env_and_earlier_args() -> None:
    plan = plan_of("FROM a\nARG P=$PATH:/extra A=1 B=$A\n")
    scope = final_scope(plan, plan.stages[0], ["PATH=/usr/bin"])
    assert scope.arg_values() == {"P": "/usr/bin:/extra", "A": "1", "B": "1"}


def test_env_overrides_arg_and_instruction_uses_one_snapshot() -> None:
    plan = plan_of("FROM a\nARG V=arg\nENV V=env W=$V\nUSER $V:$W\n")
    user = walk(plan, plan.stages[0], [])[-1]
    assert isinstance(user, ins.USER) and user.user == "env:arg"


def test_predefined_args_need_declaring_in_stage() -> None:
    plan = plan_of("FROM a\nUSER x$TARGETARCH\nARG TARGETARCH\nUSER y$TARGETARCH\n", target_platform="linux/arm64")
    users = [i for i in walk(plan, plan.stages[0], []) if isinstance(i, ins.USER)]
    assert [u.user for u in users] == ["x", "yarm64"]


def test_base_image_env_is_visible_and_path_defaults() -> None:
    plan = plan_of("FROM a\nWORKDIR $HOME\n")
    assert walk(plan, plan.stages[0], ["HOME=/root"])[0] == ins.WORKDIR(path="/root", line=2, end_line=2,
                                                                          original="WORKDIR $HOME")  # fmt: skip
    assert plan.initial_scope(plan.stages[0], []).env_dict() == {"PATH": DEFAULT_PATH}


def test_child_stage_inherits_parent_args_and_env() -> None:
    plan = plan_of("FROM a AS p\nARG V=1\nENV E=2\nFROM p\nRUN x\n")
    parent = final_scope(plan, plan.stages[0], ["PATH=/bin"])
    child = plan.initial_scope(plan.stages[1], ["PATH=/bin", "E=2"], parent)
    assert child.arg_values() == {"V": "1"} and child.env_dict()["E"] == "2"
    assert plan.args_in_scope(plan.stages[1], 1) == ("V",)
    unrelated = plan.initial_scope(plan.stages[0], [], parent)
    assert unrelated.arg_values() == {}


def test_args_in_scope_names() -> None:
    plan = plan_of("FROM a\nRUN x\nARG A B=1\nRUN y\nARG A\n")
    stage = plan.stages[0]
    assert [plan.args_in_scope(stage, i) for i in range(4)] == [(), (), ("A", "B"), ("A", "B")]


def test_run_env_adds_proxy_build_args_without_declaring() -> None:
    plan = plan_of("FROM a\nRUN x\n", build_args={"HTTP_PROXY": "http://p:3128", "no_proxy": "x"})
    scope = plan.initial_scope(plan.stages[0], ["PATH=/bin"])
    assert plan.run_env(scope) == {"PATH": "/bin", "HTTP_PROXY": "http://p:3128", "no_proxy": "x"}
    assert scope.arg_values() == {} and plan.unused_build_args == ()


def test_unused_build_args_only_counts_needed_stages() -> None:
    plan = plan_of("FROM a AS one\nARG USED_ELSEWHERE\nFROM b AS two\nARG MINE\n", target="two",
                   build_args={"MINE": "1", "USED_ELSEWHERE": "2", "BUILDKIT_INLINE_CACHE": "1"})  # fmt: skip
    assert plan.unused_build_args == ("USED_ELSEWHERE",) and plan.warnings


def test_escape_directive_applies_to_expansion() -> None:
    plan = plan_of("# escape=`\nFROM a\nENV A=`$B C=\\$B\n")
    env = walk(plan, plan.stages[0], ["B=b"])[0]
    assert isinstance(env, ins.ENV) and env.pairs == (("A", "$B"), ("C", "\\b"))
