"""registry/'s curated surface: what `import registry` offers (as httpx pins its own exports)."""

import registry


def test_exported_names():
    assert sorted(registry.__all__) == sorted([
        "AuthError", "CleanupPlan", "CleanupPolicy", "Credentials", "InvalidReferenceError", "InvalidResponseError",
        "LimitExceededError", "NotFoundError", "Reference", "RegistryClient", "RegistryError", "RegistryOptions",
        "RegistryUnreachableError", "RemoteLayer", "ResolvedImage", "TagInfo", "parse_reference",
        "resolve_credentials",
    ])
    for name in registry.__all__:
        assert getattr(registry, name) is not None


def test_registry_never_imports_builder_or_layers():
    import pathlib
    import re

    root = pathlib.Path(registry.__file__).parent
    for source in root.glob("*.py"):
        assert not re.search(r"^\s*(from|import)\s+(builder|layers)\b", source.read_text(), re.MULTILINE), source.name
