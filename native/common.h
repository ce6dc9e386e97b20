// Shared by every native file: error codes, the promise worker, dtype names and the
// IValue <-> JS conversions. native/ is a thin bridge: no decisions about graphs live here.
#pragma once

#include <napi.h>
#include <torch/script.h>

#include "memory.h"

#include <functional>
#include <mutex>
#include <memory>
#include <string>

namespace tg {

// An error with a stable code that JS can switch on (see lib/core/errors.ts).
struct Error : std::runtime_error {
  std::string code;
  Error(std::string c, const std::string& msg) : std::runtime_error(msg), code(std::move(c)) {}
};

// Codes: ERR_INVALID_ARG, ERR_LOAD, ERR_NO_DEVICE, ERR_DISPOSED, ERR_GRAPH, ERR_TORCH, ERR_NATIVE.
Napi::Error MakeJsError(Napi::Env env, const std::string& code, const std::string& msg);

// Runs `fn` and turns any C++ exception into a thrown JS error with a code.
template <typename F>
auto Guard(Napi::Env env, F&& fn) -> decltype(fn()) {
  try {
    return fn();
  } catch (Napi::Error& e) {
    // node-addon-api's own type errors (a number where an array was expected, ...) are
    // argument errors: give them the code every other error has.
    if (!e.Value().Has("code")) e.Value().Set("code", Napi::String::New(env, "ERR_INVALID_ARG"));
    throw;
  } catch (const Error& e) {
    throw MakeJsError(env, e.code, e.what());
  } catch (const c10::Error& e) {
    throw MakeJsError(env, "ERR_TORCH", e.what_without_backtrace());
  } catch (const std::exception& e) {
    throw MakeJsError(env, "ERR_NATIVE", e.what());
  }
}

// Off-thread work returning a Promise. `work` runs on the torch thread (addon.cc) and must not
// touch JS; `done` converts its result on the JS thread. Errors reject with a code.
class PromiseWorker {
 public:
  using Work = std::function<void()>;
  using Done = std::function<Napi::Value(Napi::Env)>;
  static Napi::Promise Run(Napi::Env env, Work work, Done done);
};

// dtype names shared with lib/core/ir/serialized.ts (DType).
const char* DTypeName(at::ScalarType t);
at::ScalarType ParseDType(const std::string& name);
at::Device ParseDevice(const std::string& name);  // validates availability too

// Per-addon data: constructors of the wrapped classes.
struct AddonData {
  Napi::FunctionReference tensorCtor;
  Napi::FunctionReference moduleCtor;
  Napi::FunctionReference graphCtor;
};

// Tensor wrapping (tensor.cc).
Napi::Object WrapTensor(Napi::Env env, at::Tensor t);
bool IsTensor(Napi::Env env, Napi::Value v);
at::Tensor UnwrapTensor(Napi::Value v);  // throws tg::Error when disposed or not a tensor

// IValue <-> JS (addon.cc). Tensors become wrapped Tensor objects; tuples and lists become
// arrays; ints become numbers when they fit in 2^53, else BigInt.
Napi::Value ToJs(Napi::Env env, const c10::IValue& v);
// JS -> IValue for method inputs: Tensor, number (float), bigint (int), boolean, null,
// string, arrays (tuple), {list: [...], elem?} (a List[Tensor|int|float|bool]; elem types an
// empty one). Must run on the JS thread.
c10::IValue FromJs(Napi::Env env, Napi::Value v);

// Each file's exports, registered by addon.cc. The functions the files share with one another
// are declared in headers of their own names: graph_build.h, graph_export.h, graph.h,
// shape_run.h, module.h, memory.h.
void InitMemory(Napi::Env env, Napi::Object exports);                   // memory.cc
void InitTensor(Napi::Env env, Napi::Object exports, AddonData* data);  // tensor.cc
void InitModule(Napi::Env env, Napi::Object exports, AddonData* data);  // module.cc
void InitGraph(Napi::Env env, Napi::Object exports, AddonData* data);   // graph.cc
void InitProgram(Napi::Env env, Napi::Object exports);                  // program.cc: .pt2 archives

}  // namespace tg
