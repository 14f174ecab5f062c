#!/usr/bin/env bash
# Byte-compile the project with the oldest and newest Pythons we support (3.10; 3.12, which current
# Slicer embeds), where this machine has them. Catches syntax that the test Python (3.11) accepts
# but another supported one does not. Torch is not needed for this check.
set -euo pipefail
for v in 3.10 3.12; do
  py=""
  for cand in "python$v" "$HOME"/.pyenv/versions/$v*/bin/python$v; do
    if [ -x "$(command -v "$cand" 2>/dev/null || echo "$cand")" ] && "$cand" -c "" 2>/dev/null; then py="$cand"; break; fi
  done
  if [ -z "$py" ]; then echo "Python $v not found: compile check skipped"; continue; fi
  out=$(mktemp -d)
  PYTHONPYCACHEPREFIX="$out" "$py" -m compileall -q ACELib ACESegmentation Testing benchmarks >/dev/null
  rm -rf "$out"
  echo "compiles on Python $v ($py)"
done
