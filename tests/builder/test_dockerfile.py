"""Dockerfile parsing: lines, directives, heredocs, flags, forms and per-instruction checks."""

from __future__ import annotations

import io
from typing import TypeVar

import pytest
from dockerfile_parse import DockerfileParser  # type: ignore[import-untyped]

from builder.frontend import heredoc as hd
from builder.frontend import instructions as ins
from builder.frontend.dockerfile import parse, parse_go_duration, parse_trigger
from oci.errors import DockerfileError

T = TypeVar("T", bound=ins.Instruction)


def one(text: str) -> ins.Instruction:
    """The instruction after a leading FROM line."""
    return parse("FROM x\n" + text).instructions[1]


def one_as(cls: type[T], text: str) -> T:
    instr = one(text)
    assert isinstance(instr, cls)
    return instr


def error_of(text: str) -> DockerfileError:
    with pytest.raises(DockerfileError) as info:
        parse(text)
    return info.value


# --- lines, comments, continuations, directives ---------------------------------------


def test_continuations_and_comments_keep_line_numbers() -> None:
    text = "# comment\n\nFROM a\nRUN echo a \\\n  # inner comment\n  && echo b\n\nCOPY x \\\n\n y\nUSER u\n"
    parsed = parse(text)
    spans = [(i.keyword, i.line, i.end_line) for i in parsed.instructions]
    assert spans == [("FROM", 3, 3), ("RUN", 4, 6), ("COPY", 8, 10), ("USER", 11, 11)]
    run = parsed.instructions[1]
    assert isinstance(run, ins.RUN) and run.command == "echo a   && echo b"
    assert any("empty continuation" in w for w in parsed.warnings)


def test_escape_directive_backtick() -> None:
    parsed = parse("# escape=`\nFROM a\nRUN dir c:\\ `\n  && echo ok\n")
    assert parsed.escape == "`"
    run = parsed.instructions[1]
    assert isinstance(run, ins.RUN) and run.command == "dir c:\\   && echo ok" and run.end_line == 4


def test_escaped_escape_is_not_a_continuation() -> None:
    parsed = parse("FROM a\nRUN echo \\\\\nUSER u\n")
    assert [i.keyword for i in parsed.instructions] == ["FROM", "RUN", "USER"]


def test_syntax_directive_is_recorded_and_ignored() -> None:
    parsed = parse("# syntax=docker/dockerfile:1.7\n# escape=\\\nFROM a\n")
    assert parsed.syntax == "docker/dockerfile:1.7" and parsed.escape == "\\"


def test_directive_after_comment_is_a_comment() -> None:
    assert parse("# hello\n# escape=`\nFROM a\n").escape == "\\"
    assert parse("FROM a\n# escape=`\nRUN x\n").escape == "\\"


def test_directive_errors() -> None:
    assert error_of("# escape=x\nFROM a\n").line == 1
    err = error_of("# escape=`\n# escape=`\nFROM a\n")
    assert err.line == 2 and "only one escape parser directive" in err.reason


def test_bom_crlf_and_case() -> None:
    parsed = parse("\ufefffrom a\r\nrun echo hi\r\nCopy . /\r\n")
    assert [type(i).__name__ for i in parsed.instructions] == ["FROM", "RUN", "COPY"]
    assert parsed.instructions[1].original == "run echo hi"


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "   \n# x\n"])
def test_empty_file(text: str) -> None:
    assert "file with no instructions" in str(error_of(text))


def test_unknown_instruction() -> None:
    err = error_of("FROM a\nFROBNICATE x\n")
    assert str(err) == "Dockerfile:2: unknown instruction: FROBNICATE"


def test_filename_in_errors() -> None:
    with pytest.raises(DockerfileError, match=r"^build/app.Dockerfile:1: "):
        parse("NOPE\n", filename="build/app.Dockerfile")


def test_agrees_with_dockerfile_parse_on_plain_files() -> None:
    text = (
        "FROM alpine:3 AS base\n# c\nENV A=1 \\\n    B=2\nRUN set -e; \\\n    echo $A\n\nLABEL x=y\n"
        'COPY a b /dst/\nFROM base\nCMD ["sh"]\n'
    )
    theirs = DockerfileParser(fileobj=io.BytesIO(text.encode())).structure
    expected = [
        (s["instruction"], s["startline"] + 1, s["endline"] + 1) for s in theirs if s["instruction"] != "COMMENT"
    ]
    ours = [(i.keyword, i.line, i.end_line) for i in parse(text).instructions]
    assert ours == expected


# --- heredocs ------------------------------------------------------------------------------

HEREDOC_FILE = """
FROM alpine:3.6

RUN <<EMPTY
EMPTY

RUN 3<<EMPTY2
EMPTY2

RUN "<<NOHEREDOC"

RUN <<INDENT
\tfoo
\tbar
INDENT

RUN <<-UNINDENT
\tbaz
\tquux
\tUNINDENT

RUN <<-'NOEXPAND'
\tdon't expand $NAME
NOEXPAND

RUN <<COMMENT
# internal comment
echo foo bar # trailing comment
COMMENT

RUN --mount=type=cache,target=/foo <<MOUNT
echo hello
MOUNT

COPY <<FILE1 <<FILE2 /dest
content 1
FILE1
content 2
FILE2

COPY <<X <<Y /dest
Y
X
X
Y

RUN <<COMPLEX python3
print('hello world')
COMPLEX

RUN <<eo'f'
echo foo
eof

RUN <<eo\\'f
echo foo
eo'f

RUN <<'one two'
echo bar
one two

RUN <<$EOF
$EOF

RUN <<  EOF  > foo
EOF
USER after
"""

# (keyword, line, end_line, [(name, content, expand, chomp, fd, body line)])
HEREDOC_EXPECTED = [
    ("FROM", 2, 2, []),
    ("RUN", 4, 5, [("EMPTY", "", True, False, 0, 5)]),
    ("RUN", 7, 8, [("EMPTY2", "", True, False, 3, 8)]),
    ("RUN", 10, 10, []),
    ("RUN", 12, 15, [("INDENT", "\tfoo\n\tbar\n", True, False, 0, 13)]),
    ("RUN", 17, 20, [("UNINDENT", "\tbaz\n\tquux\n", True, True, 0, 18)]),
    ("RUN", 22, 24, [("NOEXPAND", "\tdon't expand $NAME\n", False, True, 0, 23)]),
    ("RUN", 26, 29, [("COMMENT", "# internal comment\necho foo bar # trailing comment\n", True, False, 0, 27)]),
    ("RUN", 31, 33, [("MOUNT", "echo hello\n", True, False, 0, 32)]),
    ("COPY", 35, 39, [("FILE1", "content 1\n", True, False, 0, 36), ("FILE2", "content 2\n", True, False, 0, 38)]),
    ("COPY", 41, 45, [("X", "Y\n", True, False, 0, 42), ("Y", "X\n", True, False, 0, 44)]),
    ("RUN", 47, 49, [("COMPLEX", "print('hello world')\n", True, False, 0, 48)]),
    ("RUN", 51, 53, [("eof", "echo foo\n", False, False, 0, 52)]),
    ("RUN", 55, 57, [("eo'f", "echo foo\n", True, False, 0, 56)]),
    ("RUN", 59, 61, [("one two", "echo bar\n", False, False, 0, 60)]),
    ("RUN", 63, 64, [("$EOF", "", True, False, 0, 64)]),
    ("RUN", 66, 67, [("EOF", "", True, False, 0, 67)]),
    ("USER", 68, 68, []),
]


def test_heredocs_bodies_and_line_numbers() -> None:
    got = []
    for instr in parse(HEREDOC_FILE).instructions:
        docs = [(d.name, d.content, d.expand, d.chomp, d.fd, d.line) for d in getattr(instr, "heredocs", ())]
        got.append((instr.keyword, instr.line, instr.end_line, docs))
    assert got == HEREDOC_EXPECTED


def test_heredoc_text_chomps_tabs() -> None:
    run = parse(HEREDOC_FILE).instructions[5]
    assert isinstance(run, ins.RUN) and run.heredocs[0].text == "baz\nquux\n"


def test_json_form_has_no_heredocs() -> None:
    parsed = parse('FROM a\nRUN ["<<EOF"]\nRUN ["whoami"]\n')
    assert all(getattr(i, "heredocs", ()) == () for i in parsed.instructions)
    assert [i.end_line for i in parsed.instructions] == [1, 2, 3]


def test_heredoc_only_for_run_copy_add() -> None:
    err = error_of("FROM a\nUSER <<INVALID\nINVALID\n")
    assert err.line == 3 and err.reason == "unknown instruction: INVALID"
    assert parse("FROM a\nLABEL a=<<X\nCMD x\n").instructions[2].keyword == "CMD"


def test_heredoc_with_crlf_and_no_final_newline() -> None:
    parsed = parse("FROM a\r\nCOPY <<EOF /x\r\nline\r\nEOF\r\nRUN <<A\nlast\nA")
    copy, run = parsed.instructions[1], parsed.instructions[2]
    assert isinstance(copy, ins.COPY) and copy.heredocs[0].content == "line\r\n" and copy.end_line == 4
    assert isinstance(run, ins.RUN) and run.heredocs[0].content == "last\n" and run.end_line == 7


def test_unterminated_heredoc() -> None:
    err = error_of("FROM a\nRUN <<EOF\necho hi\nEOF \n")
    assert err.line == 2 and err.reason == "unterminated heredoc"


def test_onbuild_heredoc() -> None:
    parsed = parse("FROM a\nONBUILD RUN <<EOF\necho hi\nEOF\nUSER u\n")
    onbuild = parsed.instructions[1]
    assert isinstance(onbuild, ins.ONBUILD)
    assert onbuild.expression == "RUN <<EOF\necho hi\nEOF" and onbuild.end_line == 4
    trigger = parse_trigger(onbuild.expression, line=7)
    assert isinstance(trigger, ins.RUN) and trigger.heredocs[0].content == "echo hi\n" and trigger.line == 7


@pytest.mark.parametrize("word", ["<<EOF", "<<'EOF'", '<<"EOF"', "<<-EOF", "<<-'EOF'", '<<-"EOF"', '<<EO"F"',
                                  "<< EOF", "<<- EOF"])  # fmt: skip
def test_parse_heredoc_valid(word: str) -> None:
    doc = hd.parse_heredoc(word)
    assert doc is not None and doc.name == "EOF"


@pytest.mark.parametrize("word", ["", "EOF", "<<", "<<-", "<EOF", "<<<EOF", "<<EOF sh"])
def test_parse_heredoc_not_heredoc(word: str) -> None:
    assert hd.parse_heredoc(word) is None


@pytest.mark.parametrize("word", ["<<'EOF", '<<"EOF', "<<EOF'", '<<EOF"'])
def test_parse_heredoc_invalid(word: str) -> None:
    with pytest.raises(hd.HeredocError):
        hd.parse_heredoc(word)


@pytest.mark.parametrize(
    ("line", "names"),
    [
        ("RUN <<EOF", ["EOF"]),
        ("RUN <<-EOF", ["EOF"]),
        ("RUN <<- EOF", []),  # BuildKit's lexer splits "<<-" from "EOF": not a heredoc there either
        ("RUN << -EOF", ["-EOF"]),
        ("RUN <<'EOF'", ["EOF"]),
        ("RUN 4<<EOF", ["EOF"]),
        ("RUN <<EOF <<EOF2", ["EOF", "EOF2"]),
        ("RUN '<<EOF'", []),
        ('RUN "<<EOF"', []),
        ("RUN python3<<EOF", []),
    ],
)
def test_heredocs_in_line(line: str, names: list[str]) -> None:
    assert [d.name for d in hd.heredocs_in_line(line)] == names


def test_heredoc_run_forms() -> None:
    simple = hd.heredoc_run("<<EOF", [hd.Heredoc(name="EOF", content="\techo hi\n", chomp=True)])
    assert simple == hd.HeredocRun(script="echo hi\n")
    shebang_doc = hd.Heredoc(name="EOF", content="#!/usr/bin/env python3\nprint(1)\n")
    assert hd.heredoc_run("<<EOF", [shebang_doc]).executable == shebang_doc
    complex_run = hd.heredoc_run("cat <<A > /x", [hd.Heredoc(name="A", content="a\n")])
    assert complex_run.script == "cat <<A > /x\na\nA"


# --- forms and flags -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "command", "is_exec"),
    [
        ('RUN ["echo", "hi"]', ("echo", "hi"), True),
        ("RUN echo hi", "echo hi", False),
        ('RUN [ "echo", "a b" ]  ', ("echo", "a b"), True),
        ("RUN [echo, hi]", "[echo, hi]", False),  # not JSON: shell form, as docker
        ("RUN ['echo']", "['echo']", False),
        ('RUN ["echo"] trailing', '["echo"] trailing', False),
        ("RUN [NaN]", "[NaN]", False),
        ("CMD []", (), True),
        ("CMD", "", False),
        ("ENTRYPOINT []", (), True),
    ],
)
def test_exec_and_shell_forms(text: str, command: ins.Command, is_exec: bool) -> None:
    instr = one(text)
    assert isinstance(instr, ins.RUN | ins.CMD | ins.ENTRYPOINT)
    assert (instr.command, instr.is_exec) == (command, is_exec)


def test_json_array_of_non_strings_is_an_error() -> None:
    assert "arrays must be comprised of strings only" in error_of('FROM a\nCMD ["a", 1]\n').reason


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("COPY --foo=bar a b", "Unknown flag: foo"),
        ("COPY --from a b", "Missing a value on flag: from"),
        ("COPY --from=a --from=b x y", "Duplicate flag specified: from"),
        ("COPY --link=maybe a b", "Expecting boolean value for flag link, not: maybe"),
        ("COPY --link= a b", "Missing a value on flag: link"),
        ("ADD --from=x a b", "Unknown flag: from"),
        ("RUN --network=bridge x", "unsupported network mode 'bridge'"),
        ("RUN --security=x y", "unsupported security mode 'x'"),
        ("USER --x=1 bob", "Unknown flag: x"),
        ("HEALTHCHECK --interval=1us CMD x", 'Interval "interval" cannot be less than 1ms'),
        ("HEALTHCHECK --retries=-1 CMD x", "--retries cannot be negative (-1)"),
        ("HEALTHCHECK --bogus=1 CMD x", "Unknown flag: bogus"),
    ],
)
def test_flag_errors(text: str, message: str) -> None:
    err = error_of("FROM a\n" + text + "\n")
    assert err.line == 2 and err.reason == message


def test_copy_flags() -> None:
    text = 'COPY --from=build --chown="1 2" --chmod=755 --link --exclude=*.md --exclude=x --parents a b /d/'
    instr = one(text)
    assert isinstance(instr, ins.COPY)
    assert (instr.from_, instr.chown, instr.chmod, instr.link, instr.parents) == ("build", "1 2", "755", True, True)
    assert instr.exclude == ("*.md", "x") and instr.sources == ("a", "b") and instr.dest == "/d/"


def test_add_flags() -> None:
    instr = one("ADD --checksum=sha256:abc --keep-git-dir=true --link=false https://x/y.tar /z")
    assert isinstance(instr, ins.ADD)
    assert (instr.checksum, instr.keep_git_dir, instr.link) == ("sha256:abc", True, False)


def test_double_dash_ends_flags() -> None:
    instr = one("COPY --link -- --weird /dst")
    assert isinstance(instr, ins.COPY) and instr.link and instr.sources == ("--weird",)


def test_copy_whitespace_form_keeps_quotes_for_expansion() -> None:
    instr = one('COPY "a b" /c')
    assert isinstance(instr, ins.COPY) and instr.sources == ('"a', 'b"')


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("COPY onlyone", "COPY requires at least two arguments"),
        ("ADD onlyone", "ADD requires at least two arguments"),
        ("COPY a <<EOF\nx\nEOF", "COPY cannot accept a heredoc as a destination"),
        ("ENV", "ENV requires at least one argument"),
        ("ENV A", "ENV must have two arguments"),
        ("ENV A=1 B", "Syntax error - can't find = in 'B'"),
        ("ENV =1", "ENV names can not be blank"),
        ("LABEL", "LABEL requires at least one argument"),
        ("ARG", "ARG requires at least one argument"),
        ("ARG =x", "ARG names can not be blank"),
        ("EXPOSE", "EXPOSE requires at least one argument"),
        ("VOLUME", "VOLUME requires at least one argument"),
        ('VOLUME ["/a", " "]', "VOLUME specified can not be an empty string"),
        ("USER", "USER requires exactly one argument"),
        ("WORKDIR", "WORKDIR requires exactly one argument"),
        ("STOPSIGNAL", "STOPSIGNAL requires exactly one argument"),
        ("MAINTAINER", "MAINTAINER requires exactly one argument"),
        ("SHELL /bin/bash -c", "SHELL requires the arguments to be in JSON form"),
        ("SHELL []", "SHELL requires at least one argument"),
        ("HEALTHCHECK", "HEALTHCHECK requires at least one argument"),
        ("HEALTHCHECK NONE x", "HEALTHCHECK NONE takes no arguments"),
        ("HEALTHCHECK CMD", "Missing command after HEALTHCHECK CMD"),
        ("HEALTHCHECK FOO x", 'Unknown type "FOO" in HEALTHCHECK (try CMD)'),
        ("ONBUILD", "ONBUILD requires at least one argument"),
        ("ONBUILD ONBUILD RUN x", "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"),
        ("ONBUILD FROM x", "FROM isn't allowed as an ONBUILD trigger"),
        ("ONBUILD maintainer me", "MAINTAINER isn't allowed as an ONBUILD trigger"),
        ("FROM", "FROM requires either one or three arguments"),
        ("FROM a b", "FROM requires either one or three arguments"),
        ("FROM a AS 1st", "invalid name for build stage"),
        ("RUN --mount=type=nope x", "unsupported mount type 'nope'"),
    ],
)
def test_instruction_errors(text: str, message: str) -> None:
    err = error_of("FROM a\n" + text + "\n")
    assert err.line == 2 and err.reason.startswith(message), err.reason


# --- instruction values --------------------------------------------------------------------


def test_from() -> None:
    instr = one("FROM --platform=$BUILDPLATFORM golang:1.22 AS Build")
    assert isinstance(instr, ins.FROM)
    assert (instr.image, instr.platform, instr.stage_name) == ("golang:1.22", "$BUILDPLATFORM", "build")


def test_env_label_arg_pairs_are_raw() -> None:
    env = one('ENV A=1 B="x y" C=\\$D')
    assert isinstance(env, ins.ENV) and env.pairs == (("A", "1"), ("B", '"x y"'), ("C", "\\$D"))
    assert one_as(ins.ENV, "ENV A b c").pairs == (("A", "b c"),)
    arg = one("ARG A B=2 C=")
    assert isinstance(arg, ins.ARG) and arg.pairs == (("A", None), ("B", "2"), ("C", ""))
    label = one("LABEL \"a b\"=c d='e f'")
    assert isinstance(label, ins.LABEL) and label.pairs == (('"a b"', "c"), ("d", "'e f'"))


def test_simple_instructions() -> None:
    assert one("USER 1000:1000") == ins.USER(user="1000:1000", line=2, end_line=2, original="USER 1000:1000")
    assert one_as(ins.WORKDIR, "WORKDIR /a b").path == "/a b"
    assert one_as(ins.STOPSIGNAL, "STOPSIGNAL SIGKILL").signal == "SIGKILL"
    assert one_as(ins.MAINTAINER, "MAINTAINER Jane <j@x>").maintainer == "Jane <j@x>"
    assert one_as(ins.SHELL, 'SHELL ["bash", "-c"]').shell == ("bash", "-c")
    assert one_as(ins.VOLUME, 'VOLUME ["/a", "/b"]').paths == ("/a", "/b")
    assert one_as(ins.VOLUME, "VOLUME /a /b").paths == ("/a", "/b")
    assert one_as(ins.EXPOSE, "EXPOSE 8080 443/tcp 80").ports == ("443/tcp", "80", "8080")


def test_healthcheck() -> None:
    instr = one("HEALTHCHECK --interval=1m30s --timeout=5s --start-period=1.5s --retries=3 CMD curl -f x")
    assert isinstance(instr, ins.HEALTHCHECK)
    assert instr.test == ("CMD-SHELL", "curl -f x")
    assert (instr.interval, instr.timeout, instr.start_period, instr.retries) == (90 * 10**9, 5 * 10**9,
                                                                                   1_500_000_000, 3)  # fmt: skip
    assert one_as(ins.HEALTHCHECK, 'HEALTHCHECK CMD ["curl", "x"]').test == ("CMD", "curl", "x")
    assert one_as(ins.HEALTHCHECK, "HEALTHCHECK --interval=bogus NONE").test == ("NONE",)


@pytest.mark.parametrize(
    ("text", "nanos"),
    [("0", 0), ("1ns", 1), ("1.5h", 5400 * 10**9), ("2m3s", 123 * 10**9), ("300ms", 3 * 10**8),
     ("1µs", 1000), (".5s", 5 * 10**8), ("-1s", -(10**9))],
)  # fmt: skip
def test_go_duration(text: str, nanos: int) -> None:
    assert parse_go_duration(text) == nanos


@pytest.mark.parametrize("text", ["", "1", "s", "1x", "1..s", "."])
def test_go_duration_errors(text: str) -> None:
    with pytest.raises(Exception, match="duration"):
        parse_go_duration(text)


def test_copy_heredoc_sources() -> None:
    instr = one("COPY <<-A b <<C /d/\n\tx\nA\ny\nC\n")
    assert isinstance(instr, ins.COPY)
    assert instr.sources == ("b",) and [(d.name, d.text) for d in instr.heredocs] == [("A", "x\n"), ("C", "y\n")]


def test_onbuild_expression() -> None:
    instr = one("ONBUILD  COPY --from=x a b")
    assert isinstance(instr, ins.ONBUILD) and instr.expression == "COPY --from=x a b"


def test_arg_and_stopsignal_ignore_flags_like_docker() -> None:
    assert one_as(ins.ARG, "ARG --x A").pairs == (("A", None),)
    assert one_as(ins.STOPSIGNAL, "STOPSIGNAL --x 9").signal == "9"


# --- RUN --mount ---------------------------------------------------------------------------

MOUNT_CASES = [
    ("type=cache,target=/root/.cache", ins.Mount(type="cache", target="/root/.cache", readonly=False)),
    ("target=/src", ins.Mount(type="bind", target="/src", readonly=True)),
    ("type=bind,source=.,target=/src,rw", ins.Mount(type="bind", source=".", target="/src", readonly=False)),
    ("type=bind,from=build,src=/out,dst=/in,ro=false",
     ins.Mount(type="bind", from_="build", source="/out", target="/in", readonly=False)),
    ("type=cache,id=npm,sharing=locked,mode=0755,uid=1000,gid=1000,target=/n",
     ins.Mount(type="cache", id="npm", sharing="locked", mode=0o755, uid=1000, gid=1000, target="/n",
               readonly=False)),
    ("type=secret,id=tok,required", ins.Mount(type="secret", id="tok", required=True, readonly=True)),
    ("type=secret,id=tok,env=TOKEN", ins.Mount(type="secret", id="tok", env="TOKEN", readonly=True)),
    ("type=tmpfs,target=/t,size=64m", ins.Mount(type="tmpfs", target="/t", size=64 << 20, readonly=False)),
    ("type=ssh", ins.Mount(type="ssh", readonly=True)),
    ('type=bind,"target=/a b",readonly', ins.Mount(type="bind", target="/a b", readonly=True)),
]  # fmt: skip


@pytest.mark.parametrize(("spec", "mount"), MOUNT_CASES)
def test_parse_mount(spec: str, mount: ins.Mount) -> None:
    assert ins.parse_mount(spec, lambda v: v) == mount


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("type=bind,mode=0700", "mode not allowed for 'bind' type mounts"),
        ("type=tmpfs,uid=1", "uid not allowed for 'tmpfs' type mounts"),
        ("type=bind,sharing=shared", "invalid cache sharing set for bind mount"),
        ("type=cache,sharing=nope", "unsupported sharing value 'nope'"),
        ("type=secret,from=x,id=a", "secret mount should not have a from"),
        ("type=secret", "invalid secret mount. one of source, target required"),
        ("type=secret,source=a,id=b", "both source and id can't be set"),
        ("type=bind,required", "unexpected key 'required' for mount type 'bind'"),
        ("type=cache,size=1m", "unexpected key 'size' for mount type 'cache'"),
        ("type=cache,mode=9", "invalid value 9 for mode"),
        ("type=cache,uid=x", "invalid value x for uid"),
        ("foo", "invalid field 'foo' must be a key=value pair"),
        ("bogus=1", "unexpected key 'bogus' in 'bogus=1'"),
        ("type=bind,ro=maybe", "invalid value for readonly: maybe"),
    ],
)
def test_parse_mount_errors(spec: str, message: str) -> None:
    with pytest.raises(ins.MountSyntaxError, match=message.replace("(", r"\(").replace(".", r"\.")):
        ins.parse_mount(spec, lambda v: v)


def test_mount_from_refuses_variables() -> None:
    assert "doesn't support variable expansion" in error_of("FROM a\nRUN --mount=from=$X,target=/x y\n").reason


def test_mount_values_with_variables_are_checked_when_expanded() -> None:
    run = one("RUN --mount=type=cache,target=/c,uid=$UID x")
    assert isinstance(run, ins.RUN)
    assert run.mounts == (ins.Mount(type="cache", target="/c", readonly=False),)
    assert run.mount_specs == ("type=cache,target=/c,uid=$UID",)
