#!/usr/bin/env bash
# Start XTuner Studio (making its environment first if needed). Extra arguments go to streamlit,
# e.g. ./run.sh --server.port 8600
set -euo pipefail
cd "$(dirname "$0")"
scripts/ensure_env.sh
exec .venv/bin/python -m streamlit run serve.py "$@"  # Home.py behind the password gate (ui/auth.py)
