// The Graph object (graph.cc): a built graph wrapped for JS.
#pragma once

#include "common.h"

#include <memory>

namespace tg {

// A new JS Graph running `g` (graph_build.h) with `module`'s tensors on `device`.
Napi::Value NewGraphObject(Napi::Env env, std::shared_ptr<torch::jit::Graph> g, torch::jit::Module module,
                           at::Device device);

}  // namespace tg
