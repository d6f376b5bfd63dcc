#!/usr/bin/env bash
# Installs everything Talker needs on a fresh Debian/Ubuntu machine (Python 3.10-3.12): system packages
# with apt, then the Python packages into .venv (Debian 12 and Ubuntu 24.04 refuse pip on the system
# Python, PEP 668), then the default models.
#   bash scripts/install.sh               the app, then the default models (see `--no-models`)
#   bash scripts/install.sh --test        the app plus what the tests need (browser, wheels with real models)
#   bash scripts/install.sh --no-models   skip fetching models (the app still runs: offline fallbacks)
# TALKER_TORCH=cuda picks the CUDA build of torch; the default is CUDA when nvidia-smi answers, else CPU.
# PYTHON=python3.12 chooses the interpreter the virtual environment is made from.
set -euo pipefail
cd "$(dirname "$0")/.."
want_tests=0
want_models=1
for arg in "$@"; do
  case "$arg" in
    --test) want_tests=1; want_models=0 ;;
    --no-models) want_models=0 ;;
    *) echo "install: unknown option '$arg' (valid: --test, --no-models)" >&2; exit 2 ;;
  esac
done

BASE_PY=${PYTHON:-python3}
command -v "$BASE_PY" >/dev/null || { echo "install: $BASE_PY not found; install Python 3.10-3.12" >&2; exit 1; }
"$BASE_PY" -c 'import sys; sys.exit(not (3, 10) <= sys.version_info[:2] <= (3, 12))' || {
  echo "install: Talker needs Python 3.10-3.12, $BASE_PY is $("$BASE_PY" -V 2>&1); set PYTHON=python3.11" >&2; exit 1; }

apt_pkgs="ffmpeg espeak-ng"
[ "$want_tests" = 1 ] && apt_pkgs="$apt_pkgs chromium chromium-driver"
# venv needs ensurepip, which Debian ships separately
"$BASE_PY" -c "import ensurepip" >/dev/null 2>&1 || apt_pkgs="$apt_pkgs python3-venv"
missing=""
for p in $apt_pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ]; then
  command -v apt-get >/dev/null || {
    echo "install: these system packages are missing and apt-get is not here:$missing; install them, then rerun" >&2
    exit 1; }
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq || { echo "install: apt-get update failed; check the network or your apt sources" >&2; exit 1; }
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null || {
    echo "install: apt-get could not install:$missing" >&2; exit 1; }
fi

[ -x .venv/bin/python ] || "$BASE_PY" -m venv .venv
PY=.venv/bin/python
torch_flavour=${TALKER_TORCH:-auto}
if [ "$torch_flavour" = auto ]; then
  if command -v nvidia-smi >/dev/null && nvidia-smi >/dev/null 2>&1; then torch_flavour=cuda; else torch_flavour=cpu; fi
fi
# The filter drops a local mirror's noise; the pip exit status is kept.
pipq() {
  "$PY" -m pip install -q --disable-pip-version-check "$@" 2>&1 | { grep -v "is ignored: it is neither" || true; }
  return "${PIPESTATUS[0]}"
}
if ! "$PY" -c "import torch" >/dev/null 2>&1; then
  if [ "$torch_flavour" = cuda ]; then
    pipq torch --index-url https://download.pytorch.org/whl/cu124
  else
    pipq torch==2.13.0
  fi
fi
pipq -r requirements_app.txt
pipq --no-deps -r requirements_nodeps.txt
[ "$want_tests" = 1 ] && pipq -r requirements_test.txt
"$PY" -c "import torch, cv2, gradio, mediapipe" || { echo "install: a core package failed to import" >&2; exit 1; }
echo "install: done (torch: $torch_flavour) in $(pwd)/.venv"
if [ "$want_models" = 1 ]; then
  # Offline this prints one line per model it could not fetch; the app still starts on its fallbacks.
  "$PY" -m app_modules.cli download --defaults || true
fi
