"""Expansion as docker's shell lexer does it (cases modelled on BuildKit's envVarTest, wordsTest, lex_test)."""

from __future__ import annotations

import pytest

from builder.frontend import instructions as ins
from builder.frontend.dockerfile import parse
from builder.frontend.expansion import expand_instruction
from builder.frontend.shell import ExpansionError, Lexer, expand_word, expand_words
from oci.errors import DockerfileError

ENV = {"PWD": "/home", "SHELL": "bash", "KOREAN": "한국어", "NULL": ""}
ERROR = object()

# (source, expected) with expected ERROR when docker refuses the word.
WORD_CASES = [
    ("hello", "hello"),
    ("he'll'o", "hello"),
    ("he'llo", ERROR),
    ("he\\'llo", "he'llo"),
    ("he\\\\'llo", ERROR),
    ("abc\\tdef", "abctdef"),
    ('"abc\\tdef"', "abc\\tdef"),
    ('"abc\\\\tdef"', "abc\\tdef"),
    ("'abc\\tdef'", "abc\\tdef"),
    ("hello\\", "hello"),
    ("hello\\\\", "hello\\"),
    ('"hello', ERROR),
    ('"hello\\"', ERROR),
    ('"hel\'lo"', "hel'lo"),
    ("'hello", ERROR),
    ("'hello\\'", "hello\\"),
    ("'hello\\there'", "hello\\there"),
    ("'hello\\\\there'", "hello\\\\there"),
    ("\"''\"", "''"),
    ("$.", "$."),
    ("he$1x", "hex"),
    ("he$.x", "he$.x"),
    ("he$pwd.", "he."),
    ("he$PWD", "he/home"),
    ("he\\$PWD", "he$PWD"),
    ("he\\\\$PWD", "he\\/home"),
    ('"he\\$PWD"', "he$PWD"),
    ('"he\\\\$PWD"', "he\\/home"),
    ("\\${}", "${}"),
    ("\\${}aaa", "${}aaa"),
    ("he\\${}", "he${}"),
    ("he\\${}xx", "he${}xx"),
    ("${}", ERROR),
    ("${}aaa", ERROR),
    ("he${}", ERROR),
    ("he${}xx", ERROR),
    ("he${hi}", "he"),
    ("he${hi}xx", "hexx"),
    ("he${PWD}", "he/home"),
    ("he${.}", ERROR),
    ("he${XXX:-000}xx", "he000xx"),
    ("he${PWD:-000}xx", "he/homexx"),
    ("he${XXX:-$PWD}xx", "he/homexx"),
    ("he${XXX:-${PWD:-yyy}}xx", "he/homexx"),
    ("he${XXX:-${YYY:-yyy}}xx", "heyyyxx"),
    ("he${XXX:YYY}", ERROR),
    ("he${XXX?}", ERROR),
    ("he${XXX:?}", ERROR),
    ("he${PWD?}", "he/home"),
    ("he${PWD:?}", "he/home"),
    ("he${NULL?}", "he"),
    ("he${NULL:?}", ERROR),
    ("he${XXX:+${PWD}}xx", "hexx"),
    ("he${PWD:+${XXX}}xx", "hexx"),
    ("he${PWD:+${SHELL}}xx", "hebashxx"),
    ("he${XXX:+000}xx", "hexx"),
    ("he${PWD:+000}xx", "he000xx"),
    ("he${NULL-x}y", "hey"),
    ("he${NULL:-x}y", "hexy"),
    ("he${NULL+x}y", "hexy"),
    ("he${NULL:+x}y", "hey"),
    ("'he${XX}'", "he${XX}"),
    ('"he${PWD}"', "he/home"),
    ("\"he'$PWD'\"", "he'/home'"),
    ('"$PWD"', "/home"),
    ("'$PWD'", "$PWD"),
    ("'\\$PWD'", "\\$PWD"),
    ("'\"hello\"'", '"hello"'),
    ("he${PWD", ERROR),
    ("he${PWD:=000}xx", ERROR),
    ("he${PWD:+${PWD}:}xx", "he/home:xx"),
    ("he${XXX:-\\$PWD:}xx", "he$PWD:xx"),
    ("he${XXX:-\\${PWD}z}xx", "he${PWDz}xx"),
    ("안녕하세요", "안녕하세요"),
    ("안'녕'하세요", "안녕하세요"),
    ("안'녕하세요", ERROR),
    ("안녕\\'하세요", "안녕'하세요"),
    ("$KOREAN", "한국어"),
    ("안녕$KOREAN", "안녕한국어"),
    ("${{aaa}", ERROR),
    ("${aaa}}", "}"),
    ("${aaa:-bbb}}}", "bbb}}"),
    ("${aaa:-${bbb:-ccc}}}", "ccc}"),
    ("${aaa:-${bbb:-${ccc:-${ddd:-eee}}}}", "eee"),
    ("${aaa:-${bbb:-${ccc:-${ddd:-eee}}}}}}}", "eee}}}"),
    ("$$", ""),  # docker quirk: $$ is a (never set) special parameter, not the pid
    ("a$", "a$"),
]


@pytest.mark.parametrize(("source", "expected"), WORD_CASES, ids=[c[0] for c in WORD_CASES])
def test_process_word(source: str, expected: object) -> None:
    if expected is ERROR:
        with pytest.raises(ExpansionError):
            expand_word(source, ENV)
    else:
        assert expand_word(source, ENV) == expected


MODIFIER_CASES = [
    ("${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}", {"FOO": "xxx", "BAR": ""}, "xxx  ccc"),
    ("${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}", {"FOO": "xxx", "BAR": ""}, "xxx bbb ccc"),
    ("${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}", {"FOO": "xxx", "BAR": ""}, "aaa bbb "),
    ("${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}", {"FOO": "xxx", "BAR": ""}, "aaa  "),
    ("${FOO?aaa}", {"FOO": "xxx"}, "xxx"),
    ("${BAR?bbb}", {"BAR": ""}, ""),
    ("${FOO#()[]{\\}^$.\\*\\?|\\\\}", {"FOO": "()[]{}^$.*?|\\x"}, "x"),
    ("${FOO%%\\**}", {"FOO": "xx**"}, "xx"),
    ("${FOO#*x*y}", {"FOO": "xxyy"}, "y"),
    ("${FOO#*}", {"FOO": "xxyy"}, "xxyy"),
    ("${FOO#$BAR}", {"FOO": "xxyy", "BAR": "x"}, "xyy"),
    ("${FOO#}", {"FOO": "xxyy"}, "xxyy"),
    ("${FOO##*x}", {"FOO": "xxyy"}, "yy"),
    ("${FOO#?\\?}", {"FOO": "???y"}, "?y"),
    ("${ABC:-.}${FOO%x}${ABC:-.}", {"FOO": "xxyy"}, ".xxyy."),
    ("${FOO%%\\**\\*}", {"FOO": "a***yy*"}, "a"),
    ("${FOO%y}", {"FOO": "xxyy"}, "xxy"),
    ("${FOO%%y*}", {"FOO": "xxyy"}, "xx"),
    ("${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}", {"FOO": "/foo*/*/*.txt", "NEEDLE": "\\*/"}, "/foo.*/*.txt - /foo..*.txt"),
    ("${FOO/$NEEDLE/} - ${FOO//$NEEDLE/}", {"FOO": "/tmp/tmp/bar.txt", "NEEDLE": "/tmp"}, "/tmp/bar.txt - /bar.txt"),
    ("${FOO/$N/$R} - ${FOO//$N/$R}", {"FOO": "/a/foo/b/c.txt", "N": "/?/", "R": "/"}, "/foo/b/c.txt - /foo/c.txt"),
    ("${FOO//\\//\\/}", {"FOO": "/tmp/foo.txt"}, "\\/tmp\\/foo.txt"),
    ("${FOO/$BAR/ww}", {"FOO": "xxyy", "BAR": ""}, "wwxxyy"),
    ("${FOO///}", {"FOO": "xxyy"}, "xxyy"),
    ("${FOO///}", {}, ""),
    (
        "something-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz",
        {"VERSION": "v1.2.3", "TARGETOS": "linux", "TARGETARCH": "arm", "TARGETVARIANT": "v7"},
        "something-v1.2.3.linux-arm-v7.tar.gz",
    ),
]


@pytest.mark.parametrize(("source", "env", "expected"), MODIFIER_CASES)
def test_modifiers(source: str, env: dict[str, str], expected: str) -> None:
    assert expand_word(source, env) == expected


@pytest.mark.parametrize(
    "source",
    ["${BAZ?ccc}", "${BAR:?bbb}", "${BAZ:?}", "${FOO=aaa}", "${FOO=:aaa}", "${FOO//ww}", "${FOO//}", "${FOO#\\x}"],
)
def test_modifier_errors(source: str) -> None:
    with pytest.raises(ExpansionError):
        expand_word(source, {"FOO": "xxx", "BAR": ""})


def test_error_message_names_the_variable() -> None:
    with pytest.raises(ExpansionError, match="message herex"):
        expand_word("${VAR:?message here$ARG}", {"VAR": "", "ARG": "x"})


def test_matches_and_unmatched_are_reported() -> None:
    result = Lexer().process("${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}", {"FOO": "xxx", "BAR": ""})
    assert result.matched == {"FOO", "BAR"}
    assert result.unmatched == {"BAZ"}


WORDS_ENV = {"hi": "hi", "space": "abc  def", "leading": "  ab c", "trailing": "ab c   "}
WORDS_CASES = [
    ("hello", ["hello"]),
    ("hello${hi}bye", ["hellohibye"]),
    ("hello${space}bye", ["helloabc", "defbye"]),
    ('hello"${space}"bye', ["helloabc  defbye"]),
    ('hello "${space}"bye', ["hello", "abc  defbye"]),
    ("hello${leading}def", ["hello", "ab", "cdef"]),
    ('hello"${leading}" def', ["hello  ab c", "def"]),
    ("hello${leading}", ["hello", "ab", "c"]),
    ("hello${trailing}", ["helloab", "c"]),
    ("hello${trailing}d", ["helloab", "c", "d"]),
    ('hello"${trailing}"d', ["helloab c   d"]),
    ('hello" there  "', ["hello there  "]),
    ("hello there     ", ["hello", "there"]),
    ("hello\\ there", ["hello there"]),
    ('hello\\" there', ['hello"', "there"]),
    ('hello"\\\\there"', ["hello\\there"]),
    ("hello'$there'", ["hello$there"]),
    ('""', []),  # an empty quoted word is dropped, as in docker
]


@pytest.mark.parametrize(("source", "expected"), WORDS_CASES)
def test_process_words(source: str, expected: list[str]) -> None:
    assert expand_words(source, WORDS_ENV) == expected


def test_words_unterminated_quote() -> None:
    with pytest.raises(ExpansionError):
        expand_words('hello" there', {})


def test_backtick_escape() -> None:
    assert expand_word("a`$b c", {"b": "x"}, escape="`") == "a$b c"
    assert expand_word("a\\b", {}, escape="`") == "a\\b"
    assert expand_word('"a`"b"', {}, escape="`") == 'a"b'


def test_lexer_options() -> None:
    assert Lexer(raw_quotes=True).process_word("'a' \"b\"", {}) == "'a' \"b\""
    assert Lexer(skip_unset=True).process_word("$X ${Y} ${Z:-d} $W", {"W": "w"}) == "$X ${Y} ${Z:-d} w"
    assert Lexer(skip_process_quotes=True).process_word("'$W' \"x\"", {"W": "w"}) == "'w' \"x\""


def _one(text: str) -> ins.Instruction:
    return parse("FROM x\n" + text).instructions[1]


def test_expand_env_and_label() -> None:
    instr = expand_instruction(_one("ENV A=$X B=\"two $X\" C='$X' $X=k"), {"X": "1"})
    assert isinstance(instr, ins.ENV)
    assert instr.pairs == (("A", "1"), ("B", "two 1"), ("C", "$X"), ("1", "k"))
    label = expand_instruction(_one('LABEL "com.example.vendor"="ACME $X"'), {"X": "Inc"})
    assert isinstance(label, ins.LABEL) and label.pairs == (("com.example.vendor", "ACME Inc"),)


def test_expand_old_style_env_keeps_spaces() -> None:
    instr = expand_instruction(_one("ENV MSG hello   $WHO  there"), {"WHO": "you"})
    assert isinstance(instr, ins.ENV) and instr.pairs == (("MSG", "hello   you  there"),)


def test_expand_copy_fields() -> None:
    text = "COPY --chown=$U:$G --chmod=$M --exclude=*.$EXT $SRC/a ${SRC}/b $DST/"
    env = {"U": "1000", "G": "100", "M": "0644", "EXT": "md", "SRC": "src", "DST": "/app"}
    instr = expand_instruction(_one(text), env)
    assert isinstance(instr, ins.COPY)
    assert (instr.chown, instr.chmod, instr.exclude) == ("1000:100", "0644", ("*.md",))
    assert instr.sources == ("src/a", "src/b") and instr.dest == "/app/"


def test_expand_keeps_raw_instruction_unchanged() -> None:
    raw = _one("WORKDIR $HOME/app")
    expanded = expand_instruction(raw, {"HOME": "/root"})
    assert isinstance(raw, ins.WORKDIR) and raw.path == "$HOME/app"
    assert isinstance(expanded, ins.WORKDIR) and expanded.path == "/root/app"


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("EXPOSE 80", {}, ("80/tcp",)),
        ("EXPOSE 8000-8002", {}, ("8000/tcp", "8001/tcp", "8002/tcp")),
        ("EXPOSE 53/UDP 80/tcp", {}, ("53/udp", "80/tcp")),
        ("EXPOSE $PORTS", {"PORTS": "80 443"}, ("80/tcp", "443/tcp")),
        ("EXPOSE 80 80/tcp", {}, ("80/tcp",)),
        ("EXPOSE 0.0.0.0:8080:80", {}, ("80/tcp",)),
        ("EXPOSE 1234-1236:1234-1236/sctp", {}, ("1234/sctp", "1235/sctp", "1236/sctp")),
    ],
)
def test_expand_expose(text: str, env: dict[str, str], expected: tuple[str, ...]) -> None:
    instr = expand_instruction(_one(text), env)
    assert isinstance(instr, ins.EXPOSE) and instr.ports == expected


@pytest.mark.parametrize("text", ["EXPOSE 80/foo", "EXPOSE 99999", "EXPOSE 9-3", "EXPOSE localhost:1:1", "EXPOSE a"])
def test_expand_expose_errors(text: str) -> None:
    with pytest.raises(DockerfileError, match=r"Dockerfile:2: "):
        expand_instruction(_one(text), {})


def test_run_cmd_entrypoint_text_is_not_expanded() -> None:
    for text in ("RUN echo $X", "CMD echo $X", "ENTRYPOINT echo $X", 'CMD ["echo", "$X"]'):
        raw = _one(text)
        assert expand_instruction(raw, {"X": "1"}) == raw


def test_run_mount_values_are_expanded() -> None:
    instr = expand_instruction(_one("RUN --mount=type=cache,id=$ID,target=$T,uid=$UID make"),
                               {"ID": "c1", "T": "/c", "UID": "1000"})  # fmt: skip
    assert isinstance(instr, ins.RUN)
    assert instr.mounts[0].id == "c1" and instr.mounts[0].target == "/c" and instr.mounts[0].uid == 1000


def test_copy_heredoc_bodies() -> None:
    text = "COPY <<A <<'B' /dst/\nhello $WHO \\$X \"q\"\nA\nno $WHO\nB\n"
    instr = expand_instruction(_one(text), {"WHO": "you"})
    assert isinstance(instr, ins.COPY)
    assert [d.text for d in instr.heredocs] == ['hello you $X "q"\n', "no $WHO\n"]


def test_expansion_error_carries_line() -> None:
    with pytest.raises(DockerfileError) as info:
        expand_instruction(_one("USER ${oops"), {})
    assert info.value.line == 2 and "missing '}'" in str(info.value)
