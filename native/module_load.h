// Loading a TorchScript file and describing a module (module_load.cc), for the Module object (module.cc).
#pragma once

#include "common.h"

namespace tg {

// One line of a libtorch message: its first, without the zip reader's and c10's boilerplate.
std::string TorchMessageLine(const std::string& msg);

// ERR_LOAD ("<what>: no such file", "... it is a directory", "... the file is empty", ...) unless
// path names a regular, non-empty file.
void CheckModelFile(const std::string& path, const std::string& what);

// torch::jit::load of a regular file, every failure an ERR_LOAD naming the file and, where known, the cause.
torch::jit::Module LoadFile(const std::string& path, at::Device device, torch::jit::ExtraFilesMap* extra);

// The submodule tree: class names, direct parameters and buffers, plain scalar attributes, methods.
Napi::Object ModuleTree(Napi::Env env, const torch::jit::Module& m, const std::string& name, const std::string& path);

// The submodule at a dotted path ('' is the root); ERR_INVALID_ARG naming the missing part.
torch::jit::Module Submodule(const torch::jit::Module& root, const std::string& path);

}  // namespace tg
