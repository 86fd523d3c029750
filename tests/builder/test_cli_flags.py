"""The CLI is a thin layer over `builder.build`: each build flag declared once and mapped to one keyword of
the API; the registry flags the same on every command; HOST=PATH parsed once; no command lost silently."""

from __future__ import annotations

import datetime as dt
import inspect
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from builder.cli.app import cli
from builder.cli.build_command import BUILD_FLAGS
from builder.engine import api
from builder.execution.run_mounts import SecretSource
from registry.options import RegistryOptions

REGISTRY_FLAGS = {"--insecure-registry", "--skip-tls-verify", "--registry-certificate", "--registry-mirror",
                  "--push-retry", "--push-concurrency"}
SET_OTHERWISE = {"registry", "step_output", "quiet", "adjust", "around"}  # shared flags; stderr; -q; kaniko flags, live view
API_ONLY = {"work_dir"}  # where a program wants the build's temporary files (the CLI: $TMPDIR)


def _commands(group: click.Group = cli, prefix: str = "") -> dict[str, click.Command]:
    found: dict[str, click.Command] = {}
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            found.update(_commands(command, f"{prefix}{name} "))
        else:
            found[prefix + name] = command
    return found


def test_each_build_flag_sets_one_keyword_of_the_api() -> None:
    parameters = set(inspect.signature(api.build).parameters)
    keywords = [flag.keyword for flag in BUILD_FLAGS if flag.keyword is not None]
    assert len(keywords) == len(set(keywords)), "a keyword set by two flags"
    assert set(keywords) <= parameters
    assert parameters - set(keywords) == SET_OTHERWISE | API_ONLY


def test_registry_flags_are_the_same_on_every_command_that_talks_to_a_registry() -> None:
    for name, command in _commands().items():
        if name == "logout":  # edits docker's config.json only
            continue
        options = {opt for param in command.params for opt in param.opts}
        assert REGISTRY_FLAGS <= options, f"wharfie {name} lacks {REGISTRY_FLAGS - options}"


@pytest.fixture
def captured(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """What `wharfie build` hands the API (the build itself is tests/builder/test_api.py's)."""
    calls: dict[str, Any] = {}

    class Result:
        def summary(self) -> str:
            return "built"

    def fake_build(**kw: Any) -> Result:
        calls.update(kw)
        return Result()

    monkeypatch.setattr(api, "build", fake_build)
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    return calls


def test_a_command_line_becomes_api_keywords(captured: dict[str, Any], tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FROM_ENV", "env-value")
    monkeypatch.setenv("CI_REGISTRY_IMAGE", "reg.example/group/project")
    secret = tmp_path / "token"
    result = CliRunner().invoke(cli, [
        "build", f"dir://{tmp_path}", "-d", "reg.example/a:1", "--build-arg", "A=1", "--build-arg", "FROM_ENV",
        "--build-arg", "UNSET_ANYWHERE", "--label", "l=v", "--no-push", "--cache=true", "--cache-ttl", "2h",
        "--no-push-cache", "--cache-run-layers=false", "--reproducible", "--allow", "network.host",
        "--secret", f"id=token,src={secret}", "--isolation", "in-place", "--force", "--registry-certificate",
        "reg.example=/ca.pem", "--insecure-registry", "reg.example", "--push-retry", "5", "-q"])
    assert result.exit_code == 0, result.output
    assert captured["context"] == str(tmp_path)
    assert captured["destinations"] == ("reg.example/a:1",)
    assert captured["build_args"] == {"A": "1", "FROM_ENV": "env-value"}
    assert captured["labels"] == {"l": "v"}
    assert (captured["push"], captured["cache"], captured["push_cache"]) == (False, True, False)
    assert captured["cache_ttl"] == dt.timedelta(hours=2)
    assert (captured["cache_run_layers"], captured["cache_copy_layers"]) == (False, True)
    assert captured["cache_repo"] == "reg.example/group/project/cache", "GitLab's default, from the CLI"
    assert captured["source_date_epoch"] == 0 and captured["allow_host_network"] is True
    assert captured["secrets"] == (SecretSource("token", path=secret),)
    assert (captured["isolation"], captured["force"], captured["quiet"]) == ("in-place", True, True)
    assert captured["registry"] == RegistryOptions(insecure_registries=frozenset({"reg.example"}),
                                                   ca_files={"reg.example": "/ca.pem"}, retries=5,
                                                   push_registries=frozenset({"reg.example"}))
    assert not {"skip_unused_stages", "verbosity", "context_argument"} & set(captured)


def test_flag_values_win_over_environment_defaults(captured: dict[str, Any], tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI_REGISTRY_IMAGE", "reg.example/group/project")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    result = CliRunner().invoke(cli, ["build", "--context", str(tmp_path), "--no-push", "--cache-repo",
                                      "reg.example/mine", "--isolation", "in-place"])
    assert result.exit_code == 0, result.output
    assert captured["cache_repo"] == "reg.example/mine"
    assert captured["source_date_epoch"] == 1700000000


@pytest.mark.parametrize("command", [["build", "--no-push"], ["tags", "ls", "reg.example/a"],
                                     ["manifest", "inspect", "reg.example/a:1"]])
def test_a_bad_certificate_flag_is_a_usage_error_before_anything_runs(captured: dict[str, Any],
                                                                     command: list[str]) -> None:
    result = CliRunner().invoke(cli, [*command, "--registry-certificate", "no-equals-sign"])
    assert result.exit_code == 2
    assert "--registry-certificate" in result.output and "expected HOST=PATH" in result.output
    assert not captured


def test_missing_destination_is_a_usage_error(captured: dict[str, Any], tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["build", str(tmp_path), "--isolation", "in-place"])
    assert result.exit_code == 2 and "no --destination given" in result.output
    assert not captured


def test_a_broken_import_is_not_swallowed() -> None:
    # Before: one failing import silently removed login, pull and every other registry command. The registry
    # commands are imported when asked for (builder/cli/lazy_commands.py): asking for one shows the failure.
    code = ("import sys; sys.modules['registry.pull'] = None; sys.argv = ['wharfie', 'pull', '--help']; "
            "from builder.cli.app import main; main()")
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2],
                          capture_output=True, text=True, check=False)
    assert done.returncode != 0 and "import of registry.pull halted" in done.stderr


def test_the_cli_starts_without_the_engine() -> None:
    # `wharfie --help`, `wharfie tags ls` ... need click and registry/, not the build machinery.
    code = ("import sys, builder.cli.app; print(sorted({m.split('.')[1] for m in sys.modules "
            "if m.startswith('builder.') and m.count('.') >= 1}))")
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2],
                          capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "['cli']"
