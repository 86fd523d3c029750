#!/usr/bin/env bash
# Installs what wharfie and its tests need on a fresh Debian/Ubuntu machine (as root). Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(docker-registry skopeo umoci busybox-static apache2-utils uidmap buildah pigz util-linux iproute2 tar gcc libc6-dev slirp4netns
          libseccomp2 podman runc debootstrap)  # podman, runc: tests/image run wharfie's image as a CI job; debootstrap: its base
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's docker-registry package starts a system registry on :5000; wharfie's
# tests and demo run their own, so the system one is not needed.
systemctl disable --now docker-registry >/dev/null 2>&1 || true

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import builder.cli, pytest, jwt, cryptography, dockerfile_parse, hypothesis, isal, zstandard, httpx, packageurl, spdx_tools, pyseccomp, rich, yaml, mypy' >/dev/null 2>&1 \
   || [ "$("$PYTHON" -c 'import builder, os; print(os.path.dirname(os.path.dirname(os.path.abspath(builder.__file__))))' 2>/dev/null)" != "$PWD" ]; then
  echo "setup: installing wharfie (editable) and its test dependencies"
  "$PYTHON" -m pip install -q --disable-pip-version-check -e '.[test]'
fi
