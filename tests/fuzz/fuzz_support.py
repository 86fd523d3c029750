"""What the fuzz tests share: budgets, the hang guard, the error contract and an offline in-process build.

The contract every surface is held to (the README's): a success, or a
`WharfieError` whose message is one line naming the file and line (or the
reference) at fault; never another exception, never a hang, nothing left
behind in the work directory.

`OfflineBuild` runs `builder.engine.build.build_image` itself, in this process, with
three things replaced so that thousands of Dockerfiles can be built in seconds
without a registry or a network: base images come from a local one-layer image
(the reference is still parsed), a RUN step is not executed (its `RunSpec` is
still made and checked), and URL downloads fail as an unreachable host would.
Everything else (reading the Dockerfile, parsing, the stage plan, expansion,
.dockerignore, COPY/ADD into a real rootfs, layers, history, cache keys) is the
code a real build runs.
"""

from __future__ import annotations

import io
import logging
import os
import signal
import tarfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import httpx
from hypothesis import HealthCheck, currently_in_test_context, event, settings

from builder.cache.layer_cache import CacheOptions
from builder.engine.build import BuildResult, build_image
from builder.engine.options import BuildOptions, OutputOptions, SecretSource
from builder.execution.run_step import StepOutcome
from builder.image.state import ImageState
from oci import mediatypes as mt
from oci.blobstore import BlobStore
from oci.digest import Digest
from oci.errors import WharfieError
from oci.layer import StoredLayer
from oci.models import ContainerConfig, Descriptor, ImageConfig, Platform
from registry.client import RegistryClient
from registry.errors import InvalidReferenceError
from registry.options import RegistryOptions
from registry.reference import Reference, parse_reference

__all__ = ["CONTEXT_FILES", "HangError", "OfflineBuild", "assert_error_contract", "fuzz_settings", "is_long", "outcome",
           "time_limit"]

LONG_FACTOR = int(os.environ.get("WHARFIE_FUZZ_FACTOR", "100"))  # a long campaign runs this many times CI's budget


def is_long() -> bool:
    """True under ``--hypothesis-profile=long`` or ``WHARFIE_FUZZ=long``."""
    return settings.get_current_profile_name() == "long" or os.environ.get("WHARFIE_FUZZ") == "long"


def fuzz_settings(examples: int, **extra: Any) -> settings:
    """The per-test budget: `examples` with a fixed seed in CI, LONG_FACTOR times more (random) in a campaign."""
    long = is_long()
    return settings(
        max_examples=examples * LONG_FACTOR if long else examples,
        derandomize=not long,
        database=settings.default.database if long else None,
        deadline=None,  # time_limit() is the hang guard: a deadline only reports after the example returns
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much,
                               HealthCheck.function_scoped_fixture, HealthCheck.large_base_example],
        **extra,
    )


def outcome(label: str) -> None:
    """Count `label` in Hypothesis' statistics (pytest --hypothesis-show-statistics), inside a property test."""
    if currently_in_test_context():
        event(label)


class HangError(AssertionError):
    """An example ran longer than its time limit: a hang, or a blow-up that is one."""


@contextmanager
def time_limit(seconds: float, what: str = "example") -> Iterator[None]:
    """Fail the example with HangError after `seconds` (SIGALRM: also interrupts a runaway regular expression)."""

    def expire(signum: int, frame: object) -> None:
        raise HangError(f"{what} took longer than {seconds}s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def assert_error_contract(exc: BaseException, *, filename: str | None = None) -> None:
    """`exc` is a WharfieError with a one-line message naming `filename` (and a line) or the reference."""
    assert isinstance(exc, WharfieError), f"not a WharfieError: {type(exc).__name__}: {exc!r}"
    message = str(exc)
    assert message.strip(), f"empty message: {type(exc).__name__}"
    assert len(message.splitlines()) == 1, f"message is not one line: {message!r}"
    assert "Traceback" not in message, f"message holds a traceback: {message!r}"
    assert "\x00" not in message, f"message holds a NUL byte: {message!r}"
    if filename is None or isinstance(exc, InvalidReferenceError):
        return  # a reference error names the reference (its message quotes it)
    assert message.startswith(f"{filename}:"), f"message does not name {filename}: {message!r}"


# -- the offline build ----------------------------------------------------------

CONTEXT_FILES: Mapping[str, bytes] = {
    "a.txt": b"alpha\n",
    "b.txt": b"beta\n",
    "dir/c.txt": b"gamma\n",
    "dir/sub/d.sh": b"#!/bin/sh\necho delta\n",
    "empty/.keep": b"",
    "weird name.txt": b"spaces\n",
}
_PASSWD = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"
_GROUP = "root:x:0:\napp:x:1000:\n"


def _base_layer_tar() -> bytes:
    """A tiny root filesystem: users for USER/--chown, the usual directories."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name in ("bin", "etc", "home", "home/app", "root", "tmp", "usr", "usr/bin", "var"):
            info = tarfile.TarInfo(name)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o1777 if name == "tmp" else 0o755, 946684800
            tar.addfile(info)
        for name, text in (("etc/passwd", _PASSWD), ("etc/group", _GROUP)):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 946684800
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


@dataclass
class OfflineBuild:
    """A scratch directory with a build context, a blob store and a work dir, reused by every example."""

    root: Path
    platform: Platform = field(default_factory=lambda: Platform("linux", "amd64"))
    base_env: tuple[str, ...] = ("PATH=/usr/bin:/bin",)  # the base image config's Env
    base_on_build: tuple[str, ...] | None = None  # and its OnBuild triggers

    def __post_init__(self) -> None:
        self.context = self.root / "context"
        self.work = self.root / "work"
        self.cache = self.root / "cache"
        for directory in (self.context, self.work, self.cache):
            directory.mkdir(parents=True, exist_ok=True)
        for rel, data in CONTEXT_FILES.items():
            path = self.context / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        with tarfile.open(self.context / "archive.tar", "w") as tar:
            info = tarfile.TarInfo("from-archive.txt")
            info.size = 3
            tar.addfile(info, io.BytesIO(b"tar"))
        self.secret = self.root / "secret.txt"
        self.secret.write_text("s3cr3t")
        self.store = BlobStore(self.cache / "blobs")
        tar = _base_layer_tar()
        digest = self.store.put_bytes(tar)
        self.base_layer = StoredLayer(Descriptor(mt.OCI_LAYER, digest, len(tar)), digest, self.store)
        self.dockerfile = self.context / "Dockerfile"
        self.ignore_file = self.context / ".dockerignore"

    def base_state(self) -> ImageState:
        config = ImageConfig(architecture=self.platform.architecture, os=self.platform.os,
                             config=ContainerConfig(env=self.base_env, on_build=self.base_on_build),
                             diff_ids=(self.base_layer.diff_id,))
        return ImageState(config=config, layers=(self.base_layer,))

    @contextmanager
    def offline(self) -> Iterator[None]:
        """Base images, RUN execution and downloads replaced (see the module docstring)."""

        def pull_base(name: str, **_: object) -> tuple[ImageState, Reference, Digest]:
            ref = parse_reference(name)  # a bad FROM still fails as it would
            return self.base_state(), ref, Digest.of_bytes(name.encode())

        @contextmanager
        def run_step(spec: Any, **_: object) -> Iterator[StepOutcome]:
            yield StepOutcome(changes=[], source_root=spec.root)

        def no_network(*args: object, **kwargs: object) -> Any:
            raise httpx.ConnectError("the network is off in fuzz tests")

        quiet = logging.getLogger("wharfie")
        level = quiet.level
        quiet.setLevel(logging.CRITICAL)
        try:
            with mock.patch("builder.engine.session.pull_base", pull_base), \
                    mock.patch("builder.engine.stage.run_step", run_step), mock.patch("httpx.stream", no_network):
                yield
        finally:
            quiet.setLevel(level)

    def build(self, dockerfile: bytes, *, ignore: bytes | None = None, build_args: Mapping[str, str] | None = None,
              target: str | None = None, filename: str = "Dockerfile") -> BuildResult:
        """Build `dockerfile` (the bytes of the file) in-process; must be called inside `offline()`."""
        self.dockerfile = self.context / filename
        self.dockerfile.write_bytes(dockerfile)
        if ignore is None:
            self.ignore_file.unlink(missing_ok=True)
        else:
            self.ignore_file.write_bytes(ignore)
        options = BuildOptions(
            context=self.context, dockerfile=self.dockerfile, output=OutputOptions(no_push=True),
            build_args=dict(build_args or {}), target=target, platform=self.platform, cache_dir=self.cache,
            cache=CacheOptions(enabled=False), work_dir=self.work, quiet=True, source_date_epoch=0,
            secrets=(SecretSource("tok", path=self.secret),),
        )
        try:
            with RegistryClient(RegistryOptions()) as client:  # offline(): no registry is ever asked
                return build_image(options, client=client)
        finally:
            left = sorted(p.name for p in self.work.iterdir())
            assert not left, f"the build left {left} in its work dir"
