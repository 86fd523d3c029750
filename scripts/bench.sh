#!/usr/bin/env bash
# Issue 14's benchmark: wharfie, buildah and kaniko on W1 and three Debian builds (bench/compare.py).
# Run as root from anywhere; installs what the bench needs first, safe to re-run. Arguments go to
# `python3 -m bench.compare` (e.g. --runs 1, --peers wharfie,buildah, --skip-kept).
#
# kaniko is compared only when KANIKO_SRC names a kaniko source tree (v1.23.2 was measured); its code is
# never part of this repository. Go 1.23 comes from Debian's bookworm-backports, added here if missing.
# State kept between runs (the debootstrapped base, wheels, the built executor, results):
# WHARFIE_BENCH_STATE, default /var/cache/wharfie-bench.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {  # another process may hold the dpkg lock for a while: wait for it
  for attempt in 1 2 3 4 5 6 7 8 9 10; do
    if DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null; then return 0; fi
    echo "bench: apt-get install $* failed (attempt $attempt), retrying in 15 s" >&2
    sleep 15
  done
  return 1
}

missing=()
for pkg in debootstrap bubblewrap time buildah skopeo docker-registry; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "bench: installing ${missing[*]}"
  apt-get update -qq
  apt_install "${missing[@]}"
  systemctl disable --now docker-registry >/dev/null 2>&1 || true  # the bench starts its own
fi

if [ -n "${KANIKO_SRC:-}" ] && [ ! -x /usr/lib/go-1.23/bin/go ]; then
  . /etc/os-release
  if [ "${VERSION_CODENAME:-}" = bookworm ]; then
    if ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
      echo "bench: adding Debian's bookworm-backports suite (for golang-1.23-go)"
      printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
        > /etc/apt/sources.list.d/bookworm-backports.sources
    fi
    apt-get update -qq
    apt_install -t bookworm-backports golang-1.23-go
  else
    echo "bench: not Debian bookworm; install Go >= 1.22 yourself to compare kaniko" >&2
  fi
fi

PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import builder.cli, httpx' >/dev/null 2>&1; then
  bash scripts/setup.sh  # wharfie's own dependencies
fi
exec "$PYTHON" -m bench.compare "$@"
