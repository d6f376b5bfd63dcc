#!/usr/bin/env bash
# Installs everything Talker needs on a fresh Debian/Ubuntu machine (system packages and Python packages).
#   bash scripts/install.sh          the app
#   bash scripts/install.sh --test   the app plus what the tests need (browser, wheels with real models)
# TALKER_TORCH=cuda picks the CUDA build of torch; the default is CUDA when nvidia-smi answers, else CPU.
set -euo pipefail
cd "$(dirname "$0")/.."
want_tests=0
[ "${1:-}" = "--test" ] && want_tests=1

apt_pkgs="ffmpeg espeak-ng"
[ "$want_tests" = 1 ] && apt_pkgs="$apt_pkgs chromium chromium-driver"
missing=""
for p in $apt_pkgs; do dpkg -s "$p" >/dev/null 2>&1 || missing="$missing $p"; done
if [ -n "$missing" ] && command -v apt-get >/dev/null; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

PY=${PYTHON:-python3}
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
echo "install: done (torch: $torch_flavour)"
