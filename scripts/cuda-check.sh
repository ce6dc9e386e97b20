#!/usr/bin/env bash
# Build torchgraph against the CUDA PyTorch of a GPU machine and run the CUDA checks.
# Needs: cmake, g++ and a Python whose torch has CUDA (TORCHGRAPH_PYTHON, default python3);
# no CUDA toolkit (the addon compiles against torch's headers alone). Node >= 20 and the
# repo's node_modules come from the machine, or from .device/ (made by scripts/pack-device.sh)
# on a machine with neither. Nothing is downloaded: models are exported by that torch.
# Writes its log and the CUDA bench JSON to $OUT when set. Takes a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-/tmp/torchgraph-cuda-check}"
mkdir -p "$out"
exec > >(tee "$out/cuda-check.log") 2>&1

# Preflight: every missing assumption, one line each, before anything slow (device time is scarce).
missing=()
command -v g++ >/dev/null || missing+=("g++ not found (the addon is compiled here)")
command -v cmake >/dev/null || missing+=("cmake not found (cmake-js builds the addon)")
{ command -v node >/dev/null && [ "$(node -p 'process.versions.node.split(".")[0]')" -ge 20 ]; } || [ -f .device/node.tar.xz ] \
  || missing+=("no node >= 20 here and no .device/node.tar.xz (run scripts/pack-device.sh and carry .device)")
[ -d node_modules ] || [ -f .device/node_modules.tar.xz ] || missing+=("node_modules missing: npm ci, or carry .device from scripts/pack-device.sh")
py="${TORCHGRAPH_PYTHON:-python3}"
if ! command -v "$py" >/dev/null; then
  missing+=("python $py not found (set TORCHGRAPH_PYTHON to a Python whose torch has CUDA)")
else
  torch_state=$("$py" -c 'import torch; print("nocuda" if torch.version.cuda is None else ("nogpu" if not torch.cuda.is_available() else "ok"))' 2>/dev/null || echo notorch)
  case "$torch_state" in
    notorch) missing+=("$py has no torch (set TORCHGRAPH_PYTHON to a Python whose torch has CUDA)") ;;
    nocuda) missing+=("$py's torch is a CPU build (torch.version.cuda is None)") ;;
    nogpu) missing+=("no visible GPU: torch.cuda.is_available() is False (driver, CUDA_VISIBLE_DEVICES)") ;;
  esac
fi
if [ ${#missing[@]} -gt 0 ]; then
  printf 'cuda-check: missing: %s\n' "${missing[@]}"
  exit 2
fi

if ! command -v node >/dev/null || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  [ -f .device/node.tar.xz ] || { echo "no node >= 20 here and no .device/node.tar.xz (run scripts/pack-device.sh and carry .device)"; exit 2; }
  mkdir -p /tmp/torchgraph-node && tar -C /tmp/torchgraph-node -xJf .device/node.tar.xz
  export PATH="/tmp/torchgraph-node:$PATH"
fi
if [ ! -d node_modules ]; then
  [ -f .device/node_modules.tar.xz ] || { echo "node_modules missing: npm ci, or carry .device from scripts/pack-device.sh"; exit 2; }
  tar -xJf .device/node_modules.tar.xz
fi
echo "node $(node --version)"

export TORCHGRAPH_PYTHON="${TORCHGRAPH_PYTHON:-python3}"
"$TORCHGRAPH_PYTHON" -c 'import torch; assert torch.cuda.is_available(), "this torch has no CUDA device"; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))'
rm -rf build
node scripts/setup.js
node -e "const b=require('./build/Release/torchgraph.node'); if(!b.libtorchHasCuda||!b.cudaAvailable()){console.error('libtorch without CUDA, or no device');process.exit(1)}; console.log('addon: torch', b.torchVersion, 'cuda devices', b.cudaDeviceCount())"
npx mocha --no-config --require tsx/cjs --extension ts --timeout 600000 test/cuda/cuda.test.ts
# The CPU suite too: the same binary must behave on CPU next to a CUDA libtorch.
npx mocha 'test/integration/{addon,graph,runtime}.test.ts'
TORCHGRAPH_DEVICE=cuda npx tsx scripts/bench.ts --json mha_demo vit_b_16 attention_core_2048 attention_2048 separate_projections > "$out/bench-cuda.json" || true
npx tsx -e "const { formatBenchTable } = require('./lib/pipeline/bench'); process.stdout.write(formatBenchTable(JSON.parse(require('fs').readFileSync('$out/bench-cuda.json', 'utf8'))))"
