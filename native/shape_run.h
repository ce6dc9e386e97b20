// The shape runner (shape_run.cc).
#pragma once

#include "common.h"

namespace tg {

// inferValues: builds `data` (a graph returning one tuple) and runs it on `inputs` off the JS
// thread; resolves to {values: description[], fallbacks}. See shape_run.cc.
Napi::Value InferValues(Napi::Env env, const torch::jit::Module& module, Napi::Object data, Napi::Array inputs,
                        bool nodeByNode, bool metaParameters);

}  // namespace tg
