#!/usr/bin/env bash
# Run the browser tests N times in a row (default 10) from a fresh clone of this repository's committed
# HEAD, as a newcomer would get it, reusing this checkout's environments instead of building new ones
# (XTUNER_STUDIO_VENV / XTUNER_STUDIO_HUB_VENV point elsewhere). Extra arguments go to pytest.
# The last line is "passed K of N".
set -uo pipefail
n=${1:-10}
shift || true
here="$(cd "$(dirname "$0")/.." && pwd)"
venv="$(readlink -f "${XTUNER_STUDIO_VENV:-$here/.venv}")"
hub_venv="$(readlink -f "${XTUNER_STUDIO_HUB_VENV:-$here/.venv-hub}")"
[ -x "$venv/bin/python" ] || { echo "no environment at $venv: run scripts/ensure_env.sh --dev first" >&2; exit 2; }
tmp="$(mktemp -d "${TMPDIR:-/tmp}/xtuner-studio-soak-XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
git clone --quiet "$here" "$tmp/repo"
ln -s "$venv" "$tmp/repo/.venv"
[ -d "$hub_venv" ] && ln -s "$hub_venv" "$tmp/repo/.venv-hub"
cd "$tmp/repo"
passed=0
for i in $(seq 1 "$n"); do
  echo "== soak run $i of $n ($(date -u +%H:%M:%S))"
  if .venv/bin/python -m pytest -m browser -q -p no:cacheprovider "$@"; then
    passed=$((passed + 1))
  fi
done
echo "passed $passed of $n"
