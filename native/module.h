// The Module object (module.cc): a TorchScript module wrapped for JS.
#pragma once

#include "common.h"

namespace tg {

// A module built in memory (program.cc), wrapped like a loaded one.
Napi::Value NewModuleObject(Napi::Env env, torch::jit::Module module, at::Device device);

}  // namespace tg
