"""The lazily imported subcommands: the table says what the commands say, and a build or `--help` imports none."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys

import click
import pytest
from click.utils import make_default_short_help

from builder.cli.app import cli
from builder.cli.lazy_commands import LAZY_COMMANDS


@pytest.mark.parametrize("name", sorted(LAZY_COMMANDS))
def test_table_matches_the_command(name: str) -> None:
    module, attribute, first_paragraph = LAZY_COMMANDS[name]
    command = getattr(importlib.import_module(module), attribute)
    assert isinstance(command, click.Command) and command.name == name
    assert inspect.cleandoc(command.help or "").split("\n\n")[0].replace("\n", " ") == first_paragraph
    for limit in (30, 45, 80, 200):
        assert make_default_short_help(first_paragraph, limit) == command.get_short_help_str(limit)


def test_every_command_resolves() -> None:
    context = click.Context(cli)
    for name in cli.list_commands(context):
        assert cli.get_command(context, name) is not None, name


def _modules_after(*argv: str) -> set[str]:
    code = ("import sys, runpy; sys.argv = ['wharfie', *sys.argv[1:]]\n"
            "try:\n    runpy.run_module('builder', run_name='__main__')\nexcept SystemExit:\n    pass\n"
            "print('\\n'.join(sys.modules), file=sys.stderr)")
    done = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, check=True)
    return set(done.stderr.split())


def test_help_imports_no_command_module_and_no_http_client() -> None:
    loaded = _modules_after("--help")
    assert not {module for module, _attr, _help in LAZY_COMMANDS.values()} & loaded
    assert "httpx" not in loaded and "builder.engine.build" not in loaded


def test_a_registry_command_loads_its_module_only_when_asked() -> None:
    loaded = _modules_after("tags", "--help")
    assert "builder.cli.registry_commands" in loaded
    assert "builder.cli.attest_commands" not in loaded
