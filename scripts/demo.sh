#!/usr/bin/env bash
# The main job: build examples/hello and push it to a throwaway local registry this command starts.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec "${PYTHON:-python3}" -m fixtures.demo "$@"
