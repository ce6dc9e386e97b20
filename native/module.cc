// Module: a loaded TorchScript module. Loading and running happen off the JS thread; the
// worker holds a shared_ptr so dispose() during a run is safe.
#include "module.h"

#include "module_load.h"

#include "graph.h"
#include "graph_build.h"
#include "graph_export.h"
#include "shape_run.h"

#include <torch/cuda.h>
#include <torch/csrc/jit/api/function_impl.h>
#include <torch/csrc/jit/passes/inliner.h>

#include <chrono>
#include <unordered_map>

namespace tg {
namespace {

struct Loaded {
  torch::jit::Module module;
  at::Device device;
  int64_t paramBytes = 0;
  // The archive's extra file torchgraph.json (written by save() for an optimized model), or "".
  std::string metadata;
};

// The extra file an optimized model's archive carries (lib/pipeline/save-model.ts writes it, lib/torchscript/module.ts reads it).
constexpr const char* kMetadataFile = "torchgraph.json";

int64_t ParamBytes(const torch::jit::Module& m) {
  int64_t b = 0;
  for (const auto& p : m.parameters()) b += static_cast<int64_t>(p.nbytes());
  for (const auto& p : m.buffers()) b += static_cast<int64_t>(p.nbytes());
  return b;
}

class Module : public Napi::ObjectWrap<Module> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Module", {
      InstanceMethod("info", &Module::Info),
      InstanceMethod("run", &Module::Run),
      InstanceMethod("exportGraph", &Module::Export),
      InstanceMethod("buildGraph", &Module::Build),
      InstanceMethod("inferValues", &Module::Infer),
      InstanceMethod("exportFunction", &Module::ExportFunction),
      InstanceMethod("signature", &Module::Signature),
      InstanceMethod("dispose", &Module::Dispose),
      InstanceMethod("save", &Module::Save),
      InstanceMethod("setAttribute", &Module::SetAttribute),
      InstanceMethod("share", &Module::Share),
      InstanceAccessor("metadata", &Module::Metadata, nullptr),
      InstanceAccessor("device", &Module::DeviceName, nullptr),
      InstanceAccessor("disposed", &Module::Disposed, nullptr),
      InstanceAccessor("paramBytes", &Module::ParamBytesJs, nullptr),
    });
  }

  explicit Module(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Module>(info) {}
  ~Module() override { Release(); }

  void Adopt(Napi::Env env, std::shared_ptr<Loaded> l) {
    loaded_ = std::move(l);
    env_ = env;
    reported_ = loaded_->device.is_cpu() ? loaded_->paramBytes : 0;
    if (reported_) Napi::MemoryManagement::AdjustExternalMemory(env, reported_);
  }

  std::shared_ptr<Loaded> loaded() const {
    if (!loaded_) throw Error("ERR_DISPOSED", "module was disposed");
    return loaded_;
  }

 private:
  void Release() {
    if (reported_ && env_) Napi::MemoryManagement::AdjustExternalMemory(Napi::Env(env_), -reported_);
    reported_ = 0;
    if (!loaded_) return;
    loaded_.reset();
    ReleaseFreedMemory();  // the parameters' memory goes back to the system, not only to malloc
  }

  Napi::Value Info(const Napi::CallbackInfo& info) {
    return Guard(info.Env(), [&]() -> Napi::Value {
      auto l = loaded();
      return ModuleTree(info.Env(), l->module, "", "");
    });
  }

  // run(method, inputs[], {measureMemory}) -> Promise<{output, peakBytes, ms}>
  Napi::Value Run(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return Guard(env, [&]() -> Napi::Value {
      auto l = loaded();
      std::string method = info[0].As<Napi::String>().Utf8Value();
      auto arr = info[1].As<Napi::Array>();
      auto stack = std::make_shared<std::vector<c10::IValue>>();
      for (uint32_t i = 0; i < arr.Length(); ++i) {
        c10::IValue v = FromJs(env, arr.Get(i));
        if (v.isTensor() && v.toTensor().device() != l->device)
          throw Error("ERR_INVALID_ARG", "input " + std::to_string(i) + " is on " + v.toTensor().device().str() +
                                             " but the module is on " + l->device.str());
        stack->push_back(std::move(v));
      }
      bool measure = info.Length() > 2 && info[2].IsObject() && info[2].As<Napi::Object>().Get("measureMemory").ToBoolean();
      auto method_fn = l->module.find_method(method);
      if (!method_fn) throw Error("ERR_INVALID_ARG", "module has no method '" + method + "'");
      auto result = std::make_shared<c10::IValue>();
      auto peak = std::make_shared<int64_t>(-1);
      auto ms = std::make_shared<double>(0);
      return PromiseWorker::Run(
          env,
          [l, method, stack, measure, result, peak, ms] {
            c10::InferenceMode guard;
            auto m = *l->module.find_method(method);
            std::optional<MemoryScope> scope;
            std::optional<SharedRunLock> shared;
            if (measure) scope.emplace(l->device);
            else shared.emplace();
            auto t0 = std::chrono::steady_clock::now();
            *result = m(std::move(*stack));
            if (l->device.is_cuda()) torch::cuda::synchronize();
            *ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
            if (scope) *peak = scope->peakAboveBaseline();
          },
          [result, peak, ms](Napi::Env env) -> Napi::Value {
            auto o = Napi::Object::New(env);
            o.Set("output", ToJs(env, *result));
            o.Set("peakBytes", Napi::Number::New(env, static_cast<double>(*peak)));
            o.Set("ms", Napi::Number::New(env, *ms));
            return o;
          });
    });
  }

  // signature(method) -> [{name, type, kwargOnly, hasDefault, default?, defaultRepr?}]: the
  // method schema's arguments, self first, as plain data. Defaults: None -> null, bool, int ->
  // BigInt (always, as int64 is carried), float -> number, str, lists -> arrays; any other
  // default has hasDefault but only defaultRepr. What to do with them is lib's business.
  Napi::Value Signature(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return Guard(env, [&]() -> Napi::Value {
      auto l = loaded();
      if (info.Length() < 1 || !info[0].IsString()) throw Error("ERR_INVALID_ARG", "signature(method: string)");
      std::string method = info[0].As<Napi::String>().Utf8Value();
      auto fn = l->module.find_method(method);
      if (!fn) throw Error("ERR_INVALID_ARG", "module has no method '" + method + "'");
      const auto& args = fn->function().getSchema().arguments();
      auto arr = Napi::Array::New(env, args.size());
      for (size_t i = 0; i < args.size(); ++i) {
        const auto& a = args[i];
        auto o = Napi::Object::New(env);
        o.Set("name", a.name());
        o.Set("type", a.type()->annotation_str());
        o.Set("kwargOnly", Napi::Boolean::New(env, a.kwarg_only()));
        o.Set("hasDefault", Napi::Boolean::New(env, a.default_value().has_value()));
        if (a.default_value()) {
          Napi::Value d = DefaultToJs(env, *a.default_value());
          if (d.IsEmpty()) o.Set("defaultRepr", c10::str(*a.default_value()));
          else o.Set("default", d);
        }
        arr.Set(static_cast<uint32_t>(i), o);
      }
      return arr;
    });
  }

  // Plain data of a default value; empty when it is not plain data (a tensor, a device, ...).
  static Napi::Value DefaultToJs(Napi::Env env, const c10::IValue& v) {
    if (v.isNone()) return env.Null();
    if (v.isBool()) return Napi::Boolean::New(env, v.toBool());
    if (v.isInt()) return Napi::BigInt::New(env, v.toInt());
    if (v.isDouble()) return Napi::Number::New(env, v.toDouble());
    if (v.isString()) return Napi::String::New(env, v.toStringRef());
    if (v.isList() || v.isTuple()) {
      auto elems = v.isTuple() ? v.toTupleRef().elements().vec() : v.toList().vec();
      auto arr = Napi::Array::New(env, elems.size());
      for (size_t i = 0; i < elems.size(); ++i) {
        Napi::Value e = DefaultToJs(env, elems[i]);
        if (e.IsEmpty()) return Napi::Value();
        arr.Set(static_cast<uint32_t>(i), e);
      }
      return arr;
    }
    return Napi::Value();
  }

  // exportGraph(method, {inline: bool, path: string}) -> GraphData
  Napi::Value Export(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return Guard(env, [&]() -> Napi::Value {
      auto l = loaded();
      std::string method = info[0].As<Napi::String>().Utf8Value();
      bool inl = false;
      std::string path;
      if (info.Length() > 1 && info[1].IsObject()) {
        auto o = info[1].As<Napi::Object>();
        inl = o.Get("inline").ToBoolean();
        if (o.Get("path").IsString()) path = o.Get("path").As<Napi::String>().Utf8Value();
      }
      torch::jit::Module m = Submodule(l->module, path);
      auto fn = m.find_method(method);
      if (!fn) throw Error("ERR_INVALID_ARG", "module '" + (path.empty() ? std::string("<root>") : path) + "' has no method '" + method + "'");
      auto g = fn->graph()->copy();
      if (inl) torch::jit::Inline(*g);
      return ExportGraph(env, *g);
    });
  }

  // exportFunction(qualifiedName, {inline}) -> GraphData of a TorchScript function of this
  // model's compilation unit (the targets of prim::CallFunction).
  Napi::Value ExportFunction(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return Guard(env, [&]() -> Napi::Value {
      auto l = loaded();
      std::string name = info[0].As<Napi::String>().Utf8Value();
      bool inl = info.Length() > 1 && info[1].IsObject() && info[1].As<Napi::Object>().Get("inline").ToBoolean();
      auto cu = l->module.type()->compilation_unit();
      auto* fn = cu->find_function(c10::QualifiedName(name));
      if (!fn) throw Error("ERR_INVALID_ARG", "no TorchScript function '" + name + "' in this model");
      auto* gf = torch::jit::tryToGraphFunction(*fn);
      if (!gf) throw Error("ERR_GRAPH", "function '" + name + "' has no graph (a builtin)");
      auto g = gf->graph()->copy();
      if (inl) torch::jit::Inline(*g);
      return ExportGraph(env, *g);
    });
  }

  // buildGraph(GraphData) -> Graph (a runnable graph bound to this module's tensors)
  Napi::Value Build(const Napi::CallbackInfo& info);

  // inferValues(GraphData, inputs[], {nodeByNode, metaParameters}) -> Promise<{values, fallbacks}>
  Napi::Value Infer(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return Guard(env, [&]() -> Napi::Value {
      auto l = loaded();
      auto flag = [&](const char* name) {
        return info.Length() > 2 && info[2].IsObject() && info[2].As<Napi::Object>().Get(name).ToBoolean().Value();
      };
      return InferValues(env, l->module, info[0].As<Napi::Object>(), info[1].As<Napi::Array>(), flag("nodeByNode"),
                         flag("metaParameters"));
    });
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    Release();
    return info.Env().Undefined();
  }

  // save(path, metadata: string) -> Promise<void>: torch::jit::Module::save, with `metadata` as
  // the extra file torchgraph.json. lib/ writes to a temporary name and renames it into place.
  Napi::Value Save(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return Guard(env, [&]() -> Napi::Value {
      auto l = loaded();
      if (info.Length() < 2 || !info[0].IsString() || !info[1].IsString()) throw Error("ERR_INVALID_ARG", "save(path: string, metadata: string)");
      std::string path = info[0].As<Napi::String>().Utf8Value();
      std::string metadata = info[1].As<Napi::String>().Utf8Value();
      return PromiseWorker::Run(
          env,
          [l, path, metadata] {
            SharedRunLock shared;  // serialising copies storages of other devices: never during a measured run
            l->module.save(path, torch::jit::ExtraFilesMap{{kMetadataFile, metadata}});
          },
          [](Napi::Env env) -> Napi::Value { return env.Undefined(); });
    });
  }

  // setAttribute(name, tensor): the root's tensor attribute `name` now holds `tensor` (a buffer
  // registered if there is none). The tensor it held is released once nothing else holds it:
  // this is how a weight is replaced by its prepacked form, one at a time.
  Napi::Value SetAttribute(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return Guard(env, [&]() -> Napi::Value {
      auto l = loaded();
      if (info.Length() < 2 || !info[0].IsString()) throw Error("ERR_INVALID_ARG", "setAttribute(name: string, tensor: Tensor)");
      std::string name = info[0].As<Napi::String>().Utf8Value();
      at::Tensor t = UnwrapTensor(info[1]);
      if (l->module.hasattr(name)) {
        if (!l->module.attr(name).isTensor()) throw Error("ERR_INVALID_ARG", "setAttribute: '" + name + "' is not a tensor attribute");
        l->module.setattr(name, t);
      } else {
        l->module.register_buffer(name, t);
      }
      l->paramBytes = ParamBytes(l->module);
      return env.Undefined();
    });
  }

  Napi::Value Metadata(const Napi::CallbackInfo& info) {
    return Guard(info.Env(), [&]() -> Napi::Value {
      auto l = loaded();
      if (l->metadata.empty()) return info.Env().Null();
      return Napi::String::New(info.Env(), l->metadata);
    });
  }
  Napi::Value DeviceName(const Napi::CallbackInfo& info) {
    return Guard(info.Env(), [&]() -> Napi::Value { return Napi::String::New(info.Env(), loaded()->device.str()); });
  }
  Napi::Value Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !loaded_); }

  // share() -> token: this module, for another JS thread (a worker_threads Worker) to wrap once
  // with adopt(token). Both wrappers then hold it; it is freed when both are disposed.
  Napi::Value Share(const Napi::CallbackInfo& info);
  Napi::Value ParamBytesJs(const Napi::CallbackInfo& info) {
    return Guard(info.Env(), [&]() -> Napi::Value { return Napi::Number::New(info.Env(), static_cast<double>(loaded()->paramBytes)); });
  }

  std::shared_ptr<Loaded> loaded_;
  int64_t reported_ = 0;
  napi_env env_ = nullptr;
};

// load(path, device) -> Promise<Module>
Napi::Value Load(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsString()) throw Error("ERR_INVALID_ARG", "load(path: string, device?: string)");
    std::string path = info[0].As<Napi::String>().Utf8Value();
    at::Device device = ParseDevice(info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "cpu");
    auto loaded = std::make_shared<std::shared_ptr<Loaded>>();
    return PromiseWorker::Run(
        env,
        [path, device, loaded] {
          SharedRunLock shared;  // loading allocates the parameters: never during a measured run
          torch::jit::ExtraFilesMap extra{{kMetadataFile, ""}};
          torch::jit::Module m = LoadFile(path, device, &extra);
          m.eval();
          auto l = std::make_shared<Loaded>(Loaded{std::move(m), device});
          l->metadata = extra[kMetadataFile];
          l->paramBytes = ParamBytes(l->module);
          *loaded = l;
        },
        [loaded](Napi::Env env) -> Napi::Value {
          auto* data = env.GetInstanceData<AddonData>();
          Napi::Object obj = data->moduleCtor.New({});
          Module::Unwrap(obj)->Adopt(env, *loaded);
          return obj;
        });
  });
}

}  // namespace

Napi::Value Module::Build(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    auto l = loaded();
    if (info.Length() < 1 || !info[0].IsObject()) throw Error("ERR_INVALID_ARG", "buildGraph(graph: GraphData)");
    auto g = BuildGraph(env, info[0].As<Napi::Object>(), l->module);
    return NewGraphObject(env, g, l->module, l->device);
  });
}

Napi::Value NewModuleObject(Napi::Env env, torch::jit::Module module, at::Device device) {
  module.eval();
  auto l = std::make_shared<Loaded>(Loaded{std::move(module), device});
  l->paramBytes = ParamBytes(l->module);
  Napi::Object obj = env.GetInstanceData<AddonData>()->moduleCtor.New({});
  Module::Unwrap(obj)->Adopt(env, l);
  return obj;
}

namespace {

// Modules and tensors handed from one JS thread to another: each thread's addon instance has its
// own wrapper classes, so the object itself is parked here under a token until adopted.
struct Shared {
  std::shared_ptr<Loaded> module;
  at::Tensor tensor;
};
std::mutex g_sharedMutex;
std::unordered_map<int64_t, Shared> g_shared;
int64_t g_nextToken = 1;

int64_t Park(Shared s) {
  std::lock_guard<std::mutex> lock(g_sharedMutex);
  int64_t token = g_nextToken++;
  g_shared.emplace(token, std::move(s));
  return token;
}

Napi::Value Module::Share(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    return Napi::Number::New(info.Env(), static_cast<double>(Park({loaded(), at::Tensor()})));
  });
}

// shareTensor(tensor) -> token; adopt(token) -> Module | Tensor (each token once).
Napi::Value ShareTensor(const Napi::CallbackInfo& info) {
  return Guard(info.Env(), [&]() -> Napi::Value {
    if (info.Length() < 1) throw Error("ERR_INVALID_ARG", "shareTensor(tensor: Tensor)");
    return Napi::Number::New(info.Env(), static_cast<double>(Park({nullptr, UnwrapTensor(info[0])})));
  });
}

Napi::Value Adopt(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsNumber()) throw Error("ERR_INVALID_ARG", "adopt(token: number)");
    int64_t token = info[0].As<Napi::Number>().Int64Value();
    Shared s;
    {
      std::lock_guard<std::mutex> lock(g_sharedMutex);
      auto it = g_shared.find(token);
      if (it == g_shared.end()) throw Error("ERR_INVALID_ARG", "adopt: no object was shared under token " + std::to_string(token) + " (or it was adopted already)");
      s = std::move(it->second);
      g_shared.erase(it);
    }
    if (!s.module) return WrapTensor(env, s.tensor);
    Napi::Object obj = env.GetInstanceData<AddonData>()->moduleCtor.New({});
    Module::Unwrap(obj)->Adopt(env, s.module);
    return obj;
  });
}

}  // namespace

void InitModule(Napi::Env env, Napi::Object exports, AddonData* data) {
  Napi::Function ctor = Module::Define(env);
  data->moduleCtor = Napi::Persistent(ctor);
  exports.Set("Module", ctor);
  exports.Set("load", Napi::Function::New(env, Load));
  exports.Set("shareTensor", Napi::Function::New(env, ShareTensor));
  exports.Set("adopt", Napi::Function::New(env, Adopt));
}

}  // namespace tg
