"""builder/'s layout: subpackages by job, each importing only the layers below it, and no import cycle at all.

Every import counts, the ones under `if TYPE_CHECKING:` and inside functions
included: a cycle hidden behind TYPE_CHECKING is still a knot in the design.
The rules here are the ones each subpackage's docstring states.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import builder

BUILDER = Path(builder.__file__).parent
REPO = BUILDER.parent

# What each subpackage may import from the rest of builder/ (besides itself) and from wharfie's other packages.
ALLOWED_SUBPACKAGES: dict[str, set[str]] = {
    "frontend": set(),
    "context": {"frontend"},
    "steps": {"frontend"},
    "execution": {"frontend", "context", "steps"},
    "image": set(),
    "cache": {"frontend", "image"},
    "attest": {"frontend", "steps", "image"},
    "engine": {"frontend", "context", "steps", "execution", "image", "cache", "attest"},
    "cli": {"frontend", "context", "steps", "execution", "image", "cache", "attest", "engine"},
}
ALLOWED_PACKAGES: dict[str, set[str]] = {
    "frontend": {"oci"},
    "context": {"oci"},
    "steps": {"oci", "layers"},
    "execution": {"oci", "layers"},
    "image": {"oci", "layers", "registry"},
    "cache": {"oci", "layers", "registry"},
    "attest": {"oci", "layers", "registry"},
    "engine": {"oci", "layers", "registry"},
    "cli": {"oci", "registry"},
}
OURS = ("builder", "oci", "layers", "registry")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_module(name: str) -> bool:
    path = REPO.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def _imports(path: Path) -> set[str]:
    """The modules of wharfie that `path` imports, anywhere in the file (TYPE_CHECKING and functions included)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:  # `from builder.frontend import instructions` imports the module
                found.add(f"{base}.{alias.name}" if _is_module(f"{base}.{alias.name}") else base)
    return {name for name in found if name.split(".")[0] in OURS}


GRAPH = {_module_name(path): _imports(path) for path in sorted(BUILDER.rglob("*.py"))}


def _subpackage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and _is_package(module)) else None


def _is_package(module: str) -> bool:
    return (REPO.joinpath(*module.split(".")) / "__init__.py").is_file()


def test_every_module_lives_in_a_subpackage() -> None:
    loose = [m for m in GRAPH if _subpackage(m) is None and m not in ("builder", "builder.__main__")]
    assert not loose, f"modules outside a subpackage: {loose}"
    assert set(filter(None, map(_subpackage, GRAPH))) == set(ALLOWED_SUBPACKAGES)


def test_every_subpackage_says_what_it_owns_and_may_import() -> None:
    for name in ALLOWED_SUBPACKAGES:
        doc = ast.get_docstring(ast.parse((BUILDER / name / "__init__.py").read_text()))
        assert doc and "May import" in doc, f"builder/{name}/__init__.py lacks its docstring"


def test_no_import_cycles() -> None:
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            cycle = path[path.index(module):] + [module]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if module in done:
            return
        for target in sorted(GRAPH.get(module, ())):
            if target in GRAPH:
                visit(target, [*path, module])
        done.add(module)

    for module in GRAPH:
        visit(module, [])


@pytest.mark.parametrize("subpackage", sorted(ALLOWED_SUBPACKAGES))
def test_subpackage_imports_only_what_its_docstring_allows(subpackage: str) -> None:
    for module, targets in GRAPH.items():
        if _subpackage(module) != subpackage:
            continue
        for target in targets:
            top = target.split(".")[0]
            if top != "builder":
                assert top in ALLOWED_PACKAGES[subpackage], f"{module} imports {target}"
                continue
            other = _subpackage(target)
            if target == "builder" or other == subpackage:
                continue  # the bare package (a docstring) and its own modules
            assert other in ALLOWED_SUBPACKAGES[subpackage], f"{module} imports {target}"


def test_frontend_touches_no_files_registry_or_layers() -> None:
    for module, targets in GRAPH.items():
        if _subpackage(module) == "frontend":
            assert all(t.startswith(("builder.frontend", "oci.errors")) for t in targets), (module, targets)


def test_the_graph_sees_type_checking_and_function_imports() -> None:
    # the check above would prove nothing if the parser missed these forms
    assert "builder.frontend.heredoc" in GRAPH["builder.frontend.instructions"]  # under TYPE_CHECKING
    assert "builder.engine.build" in GRAPH["builder.cli.app"]  # inside a function
    assert "builder.frontend.instructions" in GRAPH["builder.frontend.expansion"]  # `from pkg import module`


def test_cycle_detection_fails_on_a_cycle() -> None:
    GRAPH["builder.frontend.shell"].add("builder.frontend.plan")
    try:
        with pytest.raises(pytest.fail.Exception, match="import cycle"):
            test_no_import_cycles()
    finally:
        GRAPH["builder.frontend.shell"].discard("builder.frontend.plan")
