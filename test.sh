#!/usr/bin/env bash
# Run the whole test suite (making the environment first if needed). Extra arguments go to pytest,
# e.g. ./test.sh -m "not slow" for the quick part only.
set -euo pipefail
cd "$(dirname "$0")"
scripts/ensure_env.sh --dev
exec .venv/bin/python -m pytest "$@"
