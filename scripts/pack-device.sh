#!/usr/bin/env bash
# Pack what scripts/cuda-check.sh needs on a GPU machine that has PyTorch with CUDA but no
# Node and no network: this Node binary and the repo's node_modules (less the browser
# driver), compressed into .device/ (git-ignored), about 35 MB. Carry `.device` with the
# working tree and run `bash scripts/cuda-check.sh` there; it unpacks them when needed.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d node_modules ] || { echo "node_modules missing: run npm ci first"; exit 2; }
mkdir -p .device
node_bin="$(node -p process.execPath)"
tar -C "$(dirname "$node_bin")" -cf - "$(basename "$node_bin")" | xz -T0 -6 > .device/node.tar.xz.tmp
mv .device/node.tar.xz.tmp .device/node.tar.xz
# Native build outputs are made on the GPU machine; the browser driver is not used there.
tar -cf - --exclude=node_modules/playwright-core --exclude='node_modules/.cache' node_modules |
  xz -T0 -6 > .device/node_modules.tar.xz.tmp
mv .device/node_modules.tar.xz.tmp .device/node_modules.tar.xz
node -p "'node ' + process.version" > .device/README
ls -l .device
