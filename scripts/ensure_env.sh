#!/usr/bin/env bash
# Make (or update) the project's virtual environment. Idempotent: does nothing when the
# environment already matches requirements*.txt and this script.
#   scripts/ensure_env.sh          the app's environment
#   scripts/ensure_env.sh --dev    plus the test tools, Debian's Chromium for the browser test and
#                                  .venv-hub (olah, a local Hugging Face mirror for the download tests)
#   scripts/ensure_env.sh --openxlab  .venv-openxlab: the OpenXLab download client, kept apart because
#                                  it pins old requests/urllib3/tqdm and downgrades setuptools
#   scripts/ensure_env.sh --lmdeploy  .venv-lmdeploy: LMDeploy's api_server for GPU machines (it needs
#                                  CUDA and a newer transformers than XTuner's)
set -euo pipefail
cd "$(dirname "$0")/.."

# A separate environment for one pinned tool: make_side_venv DIR REQUIREMENT CHECK_FILE
make_side_venv() {
  local dir=$1 want=$2 check=$3
  if [ -x "$dir/$check" ] && [ "$(cat "$dir/.studio-stamp" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  local py
  py=$(pick_python)
  echo "== preparing $dir ($want)"
  rm -rf "$dir"
  "$py" -m venv "$dir"
  "$dir/bin/python" -m pip install -q --disable-pip-version-check "$want"
  echo "$want" > "$dir/.studio-stamp"
}

DEV=0
[ "${1:-}" = "--dev" ] && DEV=1
OPENXLAB=0
[ "${1:-}" = "--openxlab" ] && OPENXLAB=1
VENV=${XTUNER_STUDIO_VENV:-.venv}

pick_python() {
  for cand in "${PYTHON:-}" python3.11 python3.12 python3.10 python3; do
    [ -n "$cand" ] || continue
    command -v "$cand" >/dev/null 2>&1 || continue
    if "$cand" -c 'import sys; sys.exit(0 if (3, 10) <= sys.version_info[:2] <= (3, 12) else 1)'; then
      echo "$cand"; return 0
    fi
  done
  echo "XTuner 0.2.0 needs Python 3.10, 3.11 or 3.12; none was found (set PYTHON=/path/to/python3.11)." >&2
  return 1
}

stamp_of() {
  local files=(requirements.txt scripts/ensure_env.sh)
  [ "$DEV" = 1 ] && files+=(requirements-dev.txt)
  cat "${files[@]}" | sha256sum | cut -d' ' -f1
}

if [ "$OPENXLAB" = 1 ]; then
  make_side_venv "${XTUNER_STUDIO_OPENXLAB_VENV:-.venv-openxlab}" "openxlab==0.1.3" bin/python
  exit 0
fi
if [ "${1:-}" = "--lmdeploy" ]; then
  make_side_venv .venv-lmdeploy "lmdeploy==0.18.0" bin/lmdeploy
  exit 0
fi

want=$(stamp_of)
stamp_file="$VENV/.studio-stamp-$DEV"
if [ -x "$VENV/bin/python" ] && [ -f "$stamp_file" ] && [ "$(cat "$stamp_file")" = "$want" ]; then
  : # environment up to date
else
  start=$(date +%s)
  PY=$(pick_python)
  echo "== XTuner Studio: preparing $VENV with $($PY --version) (first time: a few minutes, ~7 GB)"
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  PIP=("$VENV/bin/python" -m pip --disable-pip-version-check)
  "${PIP[@]}" install -q --upgrade "pip>=25,<27"
  "${PIP[@]}" install -q -r requirements.txt
  # xtuner pins bitsandbytes==0.45.0, which imports the removed triton.ops under torch 2.14 and
  # breaks every LoRA run: install it without its pins (its other dependencies are listed in
  # requirements.txt).
  "${PIP[@]}" install -q --no-deps xtuner==0.2.0
  # DeepSpeed is a source package that needs torch at build time; its CUDA ops compile just in
  # time on the GPU machine, so nothing is compiled here.
  DS_BUILD_OPS=0 "${PIP[@]}" install -q --no-deps --no-build-isolation deepspeed==0.16.2
  if [ "$DEV" = 1 ]; then
    "${PIP[@]}" install -q -r requirements-dev.txt
  fi
  echo "$want" > "$stamp_file"
  echo "== environment ready in $(( $(date +%s) - start ))s"
fi

# llama.cpp (GGUF export, the OpenAI-compatible server): llama-cpp-python compiled from its sdist, and
# the converter + gguf-py from the same sdist in .llama.cpp/. Without cmake or a compiler, or if the
# build fails, the rest of the environment stands and GGUF export says how to add it.
llama_want=$(cat requirements-llamacpp.txt | sha256sum | cut -d' ' -f1)
if [ "$(cat "$VENV/.studio-stamp-llamacpp" 2>/dev/null)" != "$llama_want" ] || [ ! -f .llama.cpp/convert_hf_to_gguf.py ]; then
  llama_version=$(sed -n 's/^llama-cpp-python==//p' requirements-llamacpp.txt)
  if command -v cmake >/dev/null 2>&1 && command -v c++ >/dev/null 2>&1; then
    start=$(date +%s)
    echo "== llama.cpp: building llama-cpp-python $llama_version (first time ~5 min on 2 cores, then pip's wheel cache)"
    tmp=$(mktemp -d)
    if CMAKE_ARGS="-DGGML_NATIVE=OFF" "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
         -r requirements-llamacpp.txt && \
       "$VENV/bin/python" -m pip download -q --disable-pip-version-check --no-deps --no-binary :all: \
         "llama-cpp-python==$llama_version" -d "$tmp" && \
       mkdir "$tmp/x" && tar xzf "$tmp/llama_cpp_python-$llama_version.tar.gz" -C "$tmp/x" --strip-components=3 \
         "llama_cpp_python-$llama_version/vendor/llama.cpp/convert_hf_to_gguf.py" \
         "llama_cpp_python-$llama_version/vendor/llama.cpp/conversion" \
         "llama_cpp_python-$llama_version/vendor/llama.cpp/gguf-py"; then
      rm -rf .llama.cpp && mv "$tmp/x" .llama.cpp
      echo "$llama_want" > "$VENV/.studio-stamp-llamacpp"
      echo "== llama.cpp ready in $(( $(date +%s) - start ))s"
    else
      echo "!! llama.cpp could not be built or fetched: GGUF export and serving are off, the rest works" >&2
    fi
    rm -rf "$tmp"
  else
    echo "!! no cmake or C++ compiler: GGUF export and serving are off, the rest works." >&2
    echo "   Add them with: sudo apt-get install cmake build-essential && scripts/ensure_env.sh" >&2
  fi
fi

if [ "$DEV" = 1 ]; then
  # olah wants huggingface_hub >= 1.27; transformers 4.57 still needs < 1.0: olah keeps its own environment
  make_side_venv "${XTUNER_STUDIO_HUB_VENV:-.venv-hub}" "olah==0.5.4" bin/olah-cli
fi

# Debian's Chromium for the browser test, and a CJK font so the Chinese UI is legible in its screenshots
if [ "$DEV" = 1 ] && { ! command -v chromium >/dev/null 2>&1 || ! fc-list 2>/dev/null | grep -qi wenquanyi; }; then
  echo "== installing Debian's chromium and fonts-wqy-microhei for the browser test"
  if [ "$(id -u)" = 0 ]; then SUDO=(); elif command -v sudo >/dev/null 2>&1; then SUDO=(sudo); else SUDO=(); fi
  if ! { "${SUDO[@]}" apt-get install -y -q chromium fonts-wqy-microhei >/dev/null 2>&1 || \
         { "${SUDO[@]}" apt-get update -q >/dev/null 2>&1 && \
           "${SUDO[@]}" apt-get install -y -q chromium fonts-wqy-microhei >/dev/null; }; }; then
    echo "!! could not install chromium / fonts-wqy-microhei (apt-get as root): the browser test will fail" >&2
  fi
fi
