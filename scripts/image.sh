#!/usr/bin/env bash
# Builds wharfie's own image from this checkout's Dockerfile WITH WHARFIE ITSELF (the checkout's code,
# `python3 -m builder build`), and pushes it to DEST.
#
#   bash scripts/image.sh DEST [wharfie build flags...]
#   bash scripts/image.sh registry.example.com/tools/wharfie:1.0 --build-arg BASE=registry.example.com/debian:bookworm
#
# The build context is made here, in a temporary directory removed on exit: wharfie's wheel, the
# wheels of the packages it depends on and pip's (downloaded by this machine's pip, so the build's
# RUN steps need no network), and image/'s scripts. The base (--build-arg BASE=..., default docker.io/library/debian:bookworm-slim)
# must be Debian-like, with glibc 2.33 or later and Python $WHARFIE_IMAGE_PYTHON (default 3.11, bookworm's).
# What the image holds and why: image/README.md.
set -euo pipefail
if [ $# -lt 1 ] || [ "${1#-}" != "$1" ]; then
  echo "usage: bash scripts/image.sh DEST [wharfie build flags...]" >&2
  exit 2
fi
dest=$1
shift
repo=$(cd "$(dirname "$0")/.." && pwd)
python=${PYTHON:-python3}
target_python=${WHARFIE_IMAGE_PYTHON:-3.11}
arch=$(uname -m)

ctx=$(mktemp -d "${TMPDIR:-/tmp}/wharfie-image-XXXXXX")
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/src" "$ctx/wheels" "$ctx/image"
# Built from a copy, so setuptools' build/ and egg-info never land in the checkout.
cp -r "$repo/pyproject.toml" "$repo/README.md" "$repo/oci" "$repo/layers" "$repo/registry" "$repo/builder" "$ctx/src/"
find "$ctx/src" -name __pycache__ -prune -exec rm -rf {} +
"$python" -m pip wheel --quiet --disable-pip-version-check --no-deps --wheel-dir "$ctx/wheels" "$ctx/src"
# The dependencies as the image's Python needs them, whatever this machine's Python is: wheels for
# CPython $target_python on any glibc up to bookworm's 2.36 (pip takes the platform tags literally).
platforms=()
for minor in $(seq 36 -1 17); do platforms+=(--platform "manylinux_2_${minor}_$arch"); done
platforms+=(--platform "manylinux2014_$arch" --platform "manylinux2010_$arch" --platform "manylinux1_$arch")
"$python" -m pip download --quiet --disable-pip-version-check --only-binary=:all: --implementation cp \
  --python-version "$target_python" "${platforms[@]}" --dest "$ctx/wheels" "$ctx"/wheels/wharfie-*.whl pip
rm -rf "$ctx/src"
cp "$repo/image/assemble.py" "$repo/image/selfcheck.py" "$repo/image/sitecustomize.py" "$ctx/image/"

cd "$repo"
export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
"$python" -m builder build --context "$ctx" --dockerfile "$repo/Dockerfile" --destination "$dest" "$@"
