#!/usr/bin/env bash
# Build torchgraph against the CUDA PyTorch of a GPU machine and run the CUDA checks.
# Needs: node >= 20 with this repo's node_modules (npm ci, or carried over), cmake, g++,
# and a Python whose torch has CUDA (TORCHGRAPH_PYTHON, default python3). Nothing is
# downloaded: models are exported by that torch. Takes a few minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
export TORCHGRAPH_PYTHON="${TORCHGRAPH_PYTHON:-python3}"
"$TORCHGRAPH_PYTHON" -c 'import torch; assert torch.cuda.is_available(), "this torch has no CUDA device"; print("torch", torch.__version__, "cuda", torch.version.cuda, torch.cuda.get_device_name(0))'
[ -d node_modules ] || { echo "node_modules missing: run npm ci first (or carry it over)"; exit 2; }
rm -rf build
node scripts/setup.js
node -e "const b=require('./build/Release/torchgraph.node'); if(!b.builtWithCuda||!b.cudaAvailable()){console.error('addon built without CUDA or no device');process.exit(1)}; console.log('addon: torch', b.torchVersion, 'cuda devices', b.cudaDeviceCount())"
npx mocha --no-config --require tsx/cjs --extension ts --timeout 600000 test/cuda/cuda.test.ts
TORCHGRAPH_DEVICE=cuda npx tsx scripts/bench.ts mha_demo vit_b_16 attention_core_2048
