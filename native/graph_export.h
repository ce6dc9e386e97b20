// Graph export (graph_export.cc): a torch::jit::Graph as plain JS data.
#pragma once

#include "common.h"

namespace tg {

// The graph's top block as GraphData (lib/core/ir/serialized.ts). Must run on the JS thread.
Napi::Object ExportGraph(Napi::Env env, const torch::jit::Graph& g);

}  // namespace tg
