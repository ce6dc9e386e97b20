// Graph build (graph_build.cc): a torch::jit::Graph from plain JS data.
#pragma once

#include "common.h"

#include <memory>

namespace tg {

// GraphData (lib/core/ir/serialized.ts) as a well-formed graph whose class types are those of
// `module` (and functions and enums of its compilation unit). Throws ERR_GRAPH naming the node
// that cannot be built. Must run on the JS thread.
std::shared_ptr<torch::jit::Graph> BuildGraph(Napi::Env env, Napi::Object data,
                                               const torch::jit::Module& module);

}  // namespace tg
