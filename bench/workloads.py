"""The builds every peer runs in `bench.compare`: W1 on busybox and three Debian builds, with their contexts.

Each Dockerfile starts ``ARG BASE`` / ``FROM $BASE`` so the same file builds on
whatever registry a run starts.  W1 (issue 7) is the cold/cached pair the cache
was designed against.  The Debian builds are what CI jobs do: install a
package with apt, add a user and hand it the app's files, set up a Python venv.
The venv app installs its dependencies from wheels in its context, because
HTTPS to PyPI from inside a build image does not verify here (the egress proxy
signs with a CA only the host trusts); the wheels are downloaded once per
machine by the host's pip into the bench state dir.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEBIAN_BUILDS", "W1", "W1_DOCKERFILE", "Workload", "fetch_wheels", "make_contexts"]

W1_DOCKERFILE = """\
ARG BASE
FROM $BASE
RUN for i in $(seq 1 5000); do echo "$i" > /tmp/small-$i; done
COPY data/ /data/
ENV APP=w1
WORKDIR /srv
CMD ["sh"]
"""

APT_JQ_DOCKERFILE = """\
ARG BASE
FROM $BASE
RUN apt-get update && apt-get install -y --no-install-recommends jq && rm -rf /var/lib/apt/lists/*
CMD ["jq", "--version"]
"""

USER_CHOWN_DOCKERFILE = """\
ARG BASE
FROM $BASE
COPY app/ /app/
RUN useradd --create-home --uid 1001 --user-group --shell /bin/bash app && chown -R app:app /app
USER app
WORKDIR /app
CMD ["bash"]
"""

VENV_DOCKERFILE = """\
ARG BASE
FROM $BASE
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv \\
    && rm -rf /var/lib/apt/lists/*
COPY requirements.txt /app/
COPY wheels/ /app/wheels/
RUN python3 -m venv /app/venv \\
    && /app/venv/bin/pip install --disable-pip-version-check --no-index --find-links /app/wheels \\
       -r /app/requirements.txt
COPY app.py /app/
ENV PATH=/app/venv/bin:$PATH
CMD ["python", "/app/app.py"]
"""

# A small Flask app, pinned; all pure-Python wheels but MarkupSafe (cp311 manylinux, as bookworm's python3 is 3.11).
REQUIREMENTS = ("flask==3.0.3", "werkzeug==3.0.3", "jinja2==3.1.4", "markupsafe==2.1.5", "itsdangerous==2.2.0",
                "click==8.1.7", "blinker==1.8.2")
APP_PY = """\
from flask import Flask

app = Flask(__name__)


@app.get("/")
def hello() -> str:
    return "hello from the venv app\\n"


if __name__ == "__main__":
    app.run(host="0.0.0.0", port=8000)
"""


def fetch_wheels(state: Path) -> Path:
    """``STATE/wheels``: the venv app's pinned wheels, downloaded once by the host's pip."""
    wheels = state / "wheels"
    if (wheels / ".complete").exists():
        return wheels
    partial = state / "wheels.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    result = subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                             "--no-deps", "--only-binary=:all:", "--python-version", "3.11",
                             "--platform", "manylinux2014_x86_64", "--implementation", "cp", "--abi", "cp311",
                             "--dest", str(partial), *REQUIREMENTS],
                            capture_output=True, text=True, check=False,
                            env={k: v for k, v in os.environ.items() if k != "PIP_FIND_LINKS"})
    if result.returncode != 0:
        raise SystemExit(f"pip download of the venv app's wheels failed: {result.stderr.strip()[-800:]}")
    (partial / ".complete").write_text("\n".join(REQUIREMENTS) + "\n")
    partial.rename(wheels)
    return wheels


def _w1_context(context: Path, wheels: Path | None) -> None:
    data = context / "data"
    data.mkdir()
    for i in range(2000):
        (data / f"blob-{i:04d}").write_bytes(os.urandom(100 * 1024))


def _user_chown_context(context: Path, wheels: Path | None) -> None:
    """An app of 1000 small files and 20 of 256 KiB (about 9 MB), which the RUN hands to the new user."""
    for package in range(20):
        directory = context / "app" / f"pkg{package:02d}"
        directory.mkdir(parents=True)
        for module in range(50):
            (directory / f"mod{module:02d}.py").write_text(f"VALUE = {package * 50 + module}\n" * 40)
        (directory / "data.bin").write_bytes(os.urandom(256 * 1024))


def _venv_context(context: Path, wheels: Path | None) -> None:
    if wheels is None:
        raise ValueError("the venv app needs its wheels (fetch_wheels)")
    (context / "requirements.txt").write_text("\n".join(REQUIREMENTS) + "\n")
    shutil.copytree(wheels, context / "wheels", ignore=shutil.ignore_patterns(".complete"))
    (context / "app.py").write_text(APP_PY)


def _no_files(context: Path, wheels: Path | None) -> None:
    """The Dockerfile is the whole context."""


@dataclass(frozen=True)
class Workload:
    """One build: a name for the table, its Dockerfile, whether it builds on the Debian base, its context files."""

    name: str
    dockerfile: str
    debian: bool
    fill: Callable[[Path, Path | None], None] = _no_files
    """Writes the context's files (the Dockerfile aside); the second argument is the wheels dir."""


W1 = Workload("W1", W1_DOCKERFILE, debian=False, fill=_w1_context)
DEBIAN_BUILDS = (
    Workload("apt-jq", APT_JQ_DOCKERFILE, debian=True),
    Workload("user-chown", USER_CHOWN_DOCKERFILE, debian=True, fill=_user_chown_context),
    Workload("venv-app", VENV_DOCKERFILE, debian=True, fill=_venv_context),
)


def make_contexts(root: Path, workloads: tuple[Workload, ...], wheels: Path | None) -> dict[str, Path]:
    """Write each workload's context under ``root``; W1's 200 MB of random data is new on every call."""
    contexts = {}
    for workload in workloads:
        context = root / workload.name
        context.mkdir(parents=True)
        (context / "Dockerfile").write_text(workload.dockerfile)
        workload.fill(context, wheels)
        contexts[workload.name] = context
    return contexts
