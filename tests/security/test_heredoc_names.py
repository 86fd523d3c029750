"""COPY/ADD heredoc names are file names in a scratch directory, never host paths.

The attack: `COPY <<../../../../tmp/x /dest` (or an absolute `<</tmp/x`) made
wharfie write the heredoc's body to that host path while preparing the copy.
BuildKit writes each heredoc with Mkfile into an empty scratch filesystem: a
name that cleans to one component (`../x` is `x`) works, a name with a
directory part fails. wharfie refuses those while parsing, naming the line.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from builder.frontend.dockerfile import parse
from builder.frontend.heredoc import Heredoc
from builder.steps.copy import write_heredocs
from fixtures.readback import run_wharfie
from oci.errors import DockerfileError


def _escaping_names(target: Path) -> list[str]:
    relative = "../" * 16 + str(target).lstrip("/")
    return [relative, str(target)]


@pytest.mark.parametrize("keyword", ["COPY", "ADD"])
@pytest.mark.parametrize("absolute", [False, True], ids=["relative", "absolute"])
def test_a_heredoc_name_writes_no_host_file(tmp_path: Path, keyword: str, absolute: bool) -> None:
    planted = tmp_path / "host" / "planted"
    planted.parent.mkdir()
    name = _escaping_names(planted)[1 if absolute else 0]
    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text(f"FROM scratch\n{keyword} <<{name} /dest\nowned by the Dockerfile\n{name}\n")
    result = run_wharfie("build", str(context), "--no-push", "--cache-dir", str(tmp_path / "cache"))
    assert not planted.exists(), f"{keyword} heredoc {name!r} wrote a host file"
    assert list(planted.parent.iterdir()) == []
    assert result.returncode != 0
    last = result.stderr.strip().splitlines()[-1]
    assert "Dockerfile:2" in last and "is not a file name" in last, result.stderr
    assert "Traceback" not in result.stderr


def test_a_name_that_cleans_to_one_component_is_that_file(tmp_path: Path) -> None:
    """BuildKit cleans the name inside its scratch root: `../../x` is the file `x`, as `<<x` would be."""
    parsed = parse("FROM scratch\nCOPY <<../../x /dest/\nbody\n../../x\n")
    copy = parsed.instructions[1]
    assert [doc.name for doc in copy.heredocs] == ["x"]


@pytest.mark.parametrize("name", ["a/b", "/", "..", ".", "/tmp/x", "../../etc/passwd"])
def test_names_with_a_directory_part_are_refused_with_their_line(name: str) -> None:
    with pytest.raises(DockerfileError) as caught:
        parse(f"FROM scratch\n\nCOPY <<{name} /dest/\nbody\n{name}\n")
    assert caught.value.line == 3 and "is not a file name" in str(caught.value)


def test_write_heredocs_never_leaves_its_directory(tmp_path: Path) -> None:
    """The writer refuses what the parser would refuse, and never follows a link planted in its directory."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    outside = tmp_path / "outside"
    for bad in ("../outside", str(outside), "a/b"):
        with pytest.raises(DockerfileError):
            write_heredocs((Heredoc(name=bad, content="x\n"),), scratch)
    assert not outside.exists() and list(scratch.iterdir()) == []
    (scratch / "planted").symlink_to(outside)
    with pytest.raises(FileExistsError):  # O_EXCL|O_NOFOLLOW: a link in its place is never followed
        write_heredocs((Heredoc(name="planted", content="x\n"),), scratch)
    assert not outside.exists()
    (scratch / "planted").unlink()
    names = write_heredocs((Heredoc(name="f", content="one\n"), Heredoc(name="g", content="two\n"),
                            Heredoc(name="f", content="last wins\n")), scratch)
    assert names == ["f", "g"]
    assert (scratch / "f").read_text() == "last wins\n" and (scratch / "f").stat().st_mode & 0o777 == 0o644


def test_heredoc_files_land_where_buildkit_puts_them(registry_open, tmp_path: Path) -> None:
    from fixtures.readback import read_back, tree_of

    context = tmp_path / "ctx"
    context.mkdir()
    (context / "Dockerfile").write_text("FROM scratch\nCOPY <<../../note <<EOF /dest/\ncleaned\n../../note\n"
                                        "plain\nEOF\n")
    dest = f"{registry_open.host}/security/heredoc-names:1"
    result = run_wharfie("build", str(context), "-d", dest, "--insecure-registry", registry_open.host,
                         "--cache-dir", str(tmp_path / "cache"))
    assert result.returncode == 0, result.stderr
    tree = tree_of(read_back(dest, tmp_path / "rb", ["--src-tls-verify=false"]).rootfs)
    assert tree["dest/note"][4] == "cleaned\n" and tree["dest/EOF"][4] == "plain\n"
    assert tree["dest/note"][1] == 0o644
