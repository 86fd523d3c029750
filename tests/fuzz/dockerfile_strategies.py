"""Hypothesis strategies for Dockerfiles: grammar-aware generation, mutation of real cases, raw bytes.

The grammar follows docker's Dockerfile reference: parser directives, ARGs
before FROM, stages, every instruction with its flags, shell and JSON forms,
quotes, the escape token, line continuations, heredocs and every form of
variable substitution; words are drawn from a vocabulary with sharp edges
(NUL, BOM, control characters, unbalanced quotes and braces, URLs that do not
parse, huge numbers) as well as ordinary ones.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path

from hypothesis import strategies as st

__all__ = ["CASES_DIR", "SHARP_TOKENS", "conformance_mutants", "dockerfiles", "hostile_bytes", "words"]

CASES_DIR = Path(__file__).resolve().parents[1] / "conformance" / "cases"

VARS = ("A", "B", "BASE", "HOME", "PATH", "TARGETARCH", "x", "_1")
SHARP_TOKENS = (
    "\x00", "\\", "`", "\t", "\r", "\ufeff", "\x1b", "\u2028", "\u00e9", "$", "${", "}", "{", '"', "'",
    "[", "]", "[]", '["a", "b"]', '["a", 1]', "[[[[", "<<EOF", "<<-EOF", "<<'EOF'", '<<"EOF"', "3<<EOF", "<<",
    "#", "# escape=`", "--", "--mount=type=bind,target=/m", "--mount=type=cache,target=/c,sharing=locked",
    "--mount=type=secret,id=tok", "--mount=type=tmpfs,target=/t,size=1k", "--network=none", "--chmod=0755",
    "--chmod=8", "--chown=app:app", "--chown=$A", "--from=0", "--from=9999999999999999999", "--platform=$A",
    "--exclude=*.txt", "--exclude=[", "--link", "--parents", "--checksum=sha256:00", "--interval=1s",
    "--retries=99999999999999999999", "http://[::1", "http://host:99999/", "https://x/..", "http://u:p@h/f",
    "a.txt", "dir", "dir/", "*.txt", "d*r/**", "/", ".", "..", "../..", "/etc/passwd", "80/tcp", "1-65535",
    "::1:80", "SIGKILL", "0:0", "app", "-1", "9" * 30, "1e309", "NaN", "AS", "as", "\\\n", "`\n",
)
_NAME = st.sampled_from(VARS)
_ASCII = st.text(st.sampled_from("abcxyz019_-./:=,@+%~"), min_size=1, max_size=8)
_UNICODE = st.text(st.characters(exclude_characters="\n", exclude_categories=("Cs",)), min_size=1, max_size=6)
_VOCAB = st.sampled_from([
    "a.txt", "b.txt", "dir", "dir/", "dir/c.txt", "*.txt", "d*/**", "archive.tar", "empty", "'weird name.txt'",
    "/dst", "/dst/", "dst", "/", ".", "/tmp/x", "echo", "hi", "true", "sh", "-c", "&&", ">", "/out", "1000",
    "app", "root:root", "0755", "80", "443/udp", "8000-8002", "SIGTERM", "value", "k=v", "x=1", "busybox",
])


def rarely(draw: st.DrawFn, one_in: int) -> bool:
    """True about once in `one_in` draws; shrinks towards False."""
    return draw(st.integers(1, one_in)) == one_in


@st.composite
def variable(draw: st.DrawFn, depth: int = 0) -> str:
    """`$A`, `${A}`, `${A:-word}` and friends, nested a little."""
    name = draw(_NAME)
    form = draw(st.integers(0, 11))
    if form == 0:
        return f"${name}"
    if form == 1:
        return "${" + name + "}"
    operator = draw(st.sampled_from([":-", "-", ":+", "+", ":?", "?", "#", "##", "%", "%%", "/", "//"]))
    word = draw(variable(depth + 1)) if depth < 3 and draw(st.booleans()) else draw(st.sampled_from(
        ["", "w", "*", "?", "a*b", "*a*a*b", "\\*", "\\", "}", "x/y", "[a]"]))
    if operator in ("/", "//"):
        word += "/" + draw(st.sampled_from(["", "r", "$A"]))
    return "${" + name + operator + word + "}"


@st.composite
def words(draw: st.DrawFn) -> str:
    """One argument word: mostly ordinary, now and then a variable, a quoted string, odd text or a sharp token."""
    parts = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.integers(0, 19))
        if kind < 9:
            parts.append(draw(_VOCAB))
        elif kind < 13:
            parts.append(draw(variable()))
        elif kind < 15:
            quote = draw(st.sampled_from(["'", '"']))
            parts.append(quote + draw(st.one_of(_ASCII, variable())) + quote)
        elif kind < 17:
            parts.append(draw(_ASCII))
        elif kind < 18:
            parts.append(draw(_UNICODE))
        else:
            parts.append(draw(st.sampled_from(SHARP_TOKENS)))
    return "".join(parts)


def _json_array(draw: st.DrawFn) -> str:
    items: list[object] = draw(st.lists(words(), min_size=1, max_size=4))
    if rarely(draw, 8):
        items = draw(st.lists(st.one_of(words(), st.integers(), st.none(), st.just([])), max_size=3))
    return json.dumps(items, ensure_ascii=draw(st.booleans()))


def _args(draw: st.DrawFn, low: int = 1, high: int = 4) -> str:
    return " ".join(draw(st.lists(words(), min_size=low, max_size=high)))


def _pairs(draw: st.DrawFn) -> str:
    pairs = draw(st.lists(st.tuples(st.one_of(_NAME, words()), words()), min_size=1, max_size=3))
    if rarely(draw, 5):
        return " ".join(f"{k} {v}" for k, v in pairs[:1])
    return " ".join(f"{k}={v}" for k, v in pairs)


_FLAG_VALUES = {
    "network": st.sampled_from(["none", "host", "default"]),
    "security": st.sampled_from(["sandbox", "insecure"]),
    "chmod": st.sampled_from(["0755", "644", "4755", "0"]),
    "chown": st.sampled_from(["app", "0:0", "root:app", "1000", "$A"]),
    "exclude": st.sampled_from(["*.txt", "dir/*", "**/c.txt"]),
    "link": st.sampled_from(["", "=true", "=false"]),
    "parents": st.sampled_from(["", "=true"]),
    "keep-git-dir": st.sampled_from(["", "=false"]),
    "checksum": st.just("sha256:" + "0" * 64),
    "interval": st.sampled_from(["30s", "1m30s", "5ms"]),
    "timeout": st.sampled_from(["3s", "1h"]),
    "start-period": st.just("0s"),
    "retries": st.sampled_from(["3", "0"]),
    "platform": st.sampled_from(["linux/amd64", "$BUILDPLATFORM"]),
    "from": st.sampled_from(["0", "s0", "busybox"]),
}
_BOOL_FLAGS = ("link", "parents", "keep-git-dir")


def _flags(draw: st.DrawFn, names: tuple[str, ...]) -> str:
    flags = []
    for name in draw(st.lists(st.sampled_from(names), max_size=2, unique=True)):
        value = draw(_FLAG_VALUES[name])
        if rarely(draw, 8):
            value = "=" + draw(words())
        flags.append(f"--{name}{value}" if name in _BOOL_FLAGS else f"--{name}={value.removeprefix('=')}")
    if rarely(draw, 10):
        flags.append(draw(st.sampled_from([t for t in SHARP_TOKENS if t.startswith("--")])))
    return "".join(f + " " for f in flags)


_MOUNTS = st.sampled_from([
    "type=bind,target=/m", "type=bind,source=dir,target=/m,rw", "type=cache,target=/c,id=$A,sharing=private",
    "type=secret,id=tok,target=/s,required", "type=secret,id=missing,required=true", "type=tmpfs,target=/t,size=64m",
    "type=bind,from=0,target=/f", "type=ssh", "type=bind,target=/m,mode=0700", "type=cache,target=/c,uid=1,gid=x",
    "type=bind,target=\"a,b\"", "type=cache,target=${A:-/c}", "target", "type=bogus", "type=tmpfs,size=1.2.3g",
])


@st.composite
def instruction(draw: st.DrawFn, stages: tuple[str, ...] = ()) -> str:
    """One instruction line (heredoc bodies follow on their own lines)."""
    keyword = draw(st.sampled_from([
        "RUN", "COPY", "ENV", "RUN", "COPY", "ARG", "LABEL", "CMD", "ENTRYPOINT", "ADD", "EXPOSE", "VOLUME",
        "USER", "WORKDIR", "SHELL", "STOPSIGNAL", "HEALTHCHECK", "ONBUILD", "MAINTAINER"]))
    if rarely(draw, 30):
        keyword = draw(st.sampled_from(["BOGUS", "FROM"]))
    if rarely(draw, 6):
        keyword = keyword.lower()
    if keyword.upper() == "RUN":
        mounts = draw(st.lists(_MOUNTS, max_size=2))
        flags = "".join(f"--mount={m} " for m in mounts) + _flags(draw, ("network", "security"))
        body = _json_array(draw) if rarely(draw, 4) else _args(draw)
        return f"{keyword} {flags}{body}"
    if keyword in ("CMD", "ENTRYPOINT", "SHELL"):
        return f"{keyword} {_json_array(draw) if draw(st.booleans()) else _args(draw, 0)}"
    if keyword in ("ENV", "LABEL"):
        return f"{keyword} {_pairs(draw)}"
    if keyword == "ARG":
        return f"ARG {draw(_NAME)}" + (f"={draw(words())}" if draw(st.booleans()) else "")
    if keyword.upper() in ("COPY", "ADD"):
        names = ("chown", "chmod", "exclude", "link", "parents") + (("from",) if keyword.upper() == "COPY" else
                                                                    ("checksum", "keep-git-dir"))
        flags = _flags(draw, names)
        if stages and keyword.upper() == "COPY" and rarely(draw, 3):
            flags += f"--from={draw(st.sampled_from(stages))} "
        if rarely(draw, 5):
            return f"{keyword} {flags}{_json_array(draw)}"
        return f"{keyword} {flags}{_args(draw, 1, 4)}"
    if keyword == "HEALTHCHECK":
        kind = draw(st.sampled_from(["CMD", "NONE", "cmd", "BOGUS", ""])) if rarely(draw, 3) else "CMD"
        return f"HEALTHCHECK {_flags(draw, ('interval', 'timeout', 'start-period', 'retries'))}{kind} {_args(draw, 0)}"
    if keyword == "ONBUILD":
        return f"ONBUILD {draw(instruction(stages))}"
    return f"{keyword} {_args(draw, 1, 2)}"


_HEREDOC_WORD = re.compile(r"(\d*)<<(-?)(['\"]?)([A-Za-z_]\w*)\3")


def _with_heredoc_bodies(draw: st.DrawFn, line: str) -> list[str]:
    """The line, followed by a body and terminator for each heredoc it opens (sometimes not)."""
    out = [line]
    for match in _HEREDOC_WORD.finditer(line):
        name = match.group(4)
        body = draw(st.lists(st.one_of(_ASCII, words(), st.just("#!/bin/sh")), max_size=3))
        tabs = "\t" if match.group(2) else ""
        out.extend(tabs + b for b in body)
        if not rarely(draw, 10):  # now and then the terminator is missing
            out.append(tabs + name)
    return out


@st.composite
def dockerfiles(draw: st.DrawFn) -> bytes:
    """A whole Dockerfile from the grammar, encoded as UTF-8 (or, sometimes, not)."""
    escape = "`" if rarely(draw, 4) else "\\"
    lines: list[str] = []
    if escape == "`" or rarely(draw, 4):
        lines.append(f"# escape={escape}")
    if rarely(draw, 4):
        lines.append(draw(st.sampled_from(["# syntax=docker/dockerfile:1", "# check=skip=all", "#syntax=a"])))
    if rarely(draw, 15):
        lines.insert(0, draw(st.sampled_from(["# escape=x", f"# escape={escape}", "# not a directive"])))
    for _ in range(draw(st.integers(0, 2))):
        lines.append(f"ARG {draw(_NAME)}" + (f"={draw(words())}" if draw(st.booleans()) else ""))
    stages: list[str] = []
    for index in range(draw(st.integers(1, 3))):
        base = draw(st.one_of(st.sampled_from(["busybox", "scratch", "${BASE:-busybox}", "$BASE", "busybox:1.36",
                                               "localhost:5000/a/b@sha256:" + "a" * 64]),
                              st.sampled_from(stages or ["scratch"])))
        if rarely(draw, 10):
            base = draw(words())
        name = f"s{index}" if draw(st.booleans()) else None
        platform = draw(st.sampled_from(["--platform=linux/amd64 ", "--platform=$BUILDPLATFORM ",
                                         "--platform= "])) if rarely(draw, 5) else ""
        lines.append(f"FROM {platform}{base}" + (f" AS {name}" if name else ""))
        for line in draw(st.lists(instruction(tuple(stages) + (str(index),)), max_size=6)):
            if rarely(draw, 7):  # split the line with a continuation
                cut = draw(st.integers(0, len(line)))
                line = line[:cut] + escape + "\n" + draw(st.sampled_from(["", "# comment\n", "  ", "\n"])) + line[cut:]
            lines.extend(_with_heredoc_bodies(draw, line))
            if rarely(draw, 8):
                lines.append(draw(st.sampled_from(["", "   ", "# a comment", "\t"])))
        if name:
            stages.append(name)
    newline = "\r\n" if rarely(draw, 5) else "\n"
    text = newline.join(lines) + ("\n" if not rarely(draw, 5) else draw(st.sampled_from(["", escape])))
    data = text.encode("utf-8", "surrogatepass")
    if rarely(draw, 20):
        data += b"\xff\xfe"  # invalid UTF-8
    return data


@cache
def _case_texts() -> tuple[str, ...]:
    return tuple(sorted(p.read_text() for p in CASES_DIR.glob("*/Dockerfile")))


_TOKEN = re.compile(r"\s+|[^\s]+")


@st.composite
def conformance_mutants(draw: st.DrawFn) -> bytes:
    """A conformance case's Dockerfile with tokens inserted, repeated, cut or swapped (BASE is busybox)."""
    texts = _case_texts()
    text = draw(st.sampled_from(texts)).replace("$BASE", "busybox").replace("${BASE}", "busybox")
    tokens = _TOKEN.findall(text)
    donors = [t for other in texts for t in _TOKEN.findall(other) if not t.isspace()]
    for _ in range(draw(st.integers(1, 4))):
        if not tokens:
            tokens = ["FROM", " ", "busybox"]
        at = draw(st.integers(0, len(tokens) - 1))
        kind = draw(st.sampled_from(["insert", "insert-sharp", "repeat", "cut", "cut-tail", "swap", "newline"]))
        if kind == "insert":
            tokens.insert(at, draw(st.sampled_from(donors)))
        elif kind == "insert-sharp":
            tokens.insert(at, draw(st.sampled_from(SHARP_TOKENS)))
        elif kind == "repeat":
            tokens[at:at] = [tokens[at]] * draw(st.integers(1, 50))
        elif kind == "cut":
            del tokens[at:at + draw(st.integers(1, 3))]
        elif kind == "cut-tail":
            del tokens[at:]
        elif kind == "swap":
            other = draw(st.integers(0, len(tokens) - 1))
            tokens[at], tokens[other] = tokens[other], tokens[at]
        else:
            tokens.insert(at, "\n")
    return "".join(tokens).encode("utf-8", "surrogatepass")


def hostile_bytes() -> st.SearchStrategy[bytes]:
    """Arbitrary bytes, alone or after a valid beginning: NUL, invalid UTF-8, BOMs, lone CRs."""
    raw = st.binary(max_size=300)
    noisy = st.lists(st.sampled_from([b"\x00", b"\xff", b"\xc3(", b"\xef\xbb\xbf", b"\r", b"\n", b"\\", b"`",
                                      b"RUN ", b"FROM ", b"COPY ", b"<<EOF", b"EOF", b"${", b"a"]), max_size=40)
    return st.one_of(raw, noisy.map(b"".join),
                     st.tuples(st.sampled_from([b"FROM busybox\n", b"FROM scratch\nCOPY ", b"FROM busybox\nRUN "]),
                               st.one_of(raw, noisy.map(b"".join))).map(b"".join))
