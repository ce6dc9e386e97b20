// Graph: the JS object wrapping a graph built from JS data (graph_build.cc). A built graph runs
// through the JIT interpreter with the module's own tensors: `self` is passed as the first input,
// so parameter reads share storage with the module.
#include "graph.h"

#include "graph_export.h"

#include <torch/cuda.h>
#include <torch/csrc/jit/api/function_impl.h>

#include <chrono>
#include <map>
#include <mutex>
#include <optional>

namespace tg {
namespace {

namespace jit = torch::jit;

struct Built {
  std::shared_ptr<jit::Graph> graph;
  jit::Module module;
  at::Device device = at::kCPU;
  std::shared_ptr<jit::GraphFunction> fn;
  bool takesSelf = false;
  std::mutex compile;
};

class Graph : public Napi::ObjectWrap<Graph> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Graph", {
      InstanceMethod("run", &Graph::Run),
      InstanceMethod("toString", &Graph::Str),
      InstanceMethod("dispose", &Graph::Dispose),
      InstanceMethod("exportGraph", &Graph::Export),
    });
  }
  explicit Graph(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Graph>(info) {}
  std::shared_ptr<Built> built_;

 private:
  std::shared_ptr<Built> built() const {
    if (!built_) throw Error("ERR_DISPOSED", "graph was disposed");
    return built_;
  }

  // run(inputs[], {measureMemory, profile}) -> Promise<{output, peakBytes, ms, opTimes?}>
  Napi::Value Run(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return Guard(env, [&]() -> Napi::Value {
      auto b = built();
      auto arr = info[0].As<Napi::Array>();
      auto stack = std::make_shared<std::vector<c10::IValue>>();
      if (b->takesSelf) stack->push_back(b->module._ivalue());
      for (uint32_t i = 0; i < arr.Length(); ++i) stack->push_back(FromJs(env, arr.Get(i)));
      size_t expected = b->graph->inputs().size();
      if (stack->size() != expected)
        throw Error("ERR_INVALID_ARG", "graph takes " + std::to_string(expected - (b->takesSelf ? 1 : 0)) + " inputs, got " +
                                           std::to_string(arr.Length()));
      auto opt = info.Length() > 1 && info[1].IsObject() ? info[1].As<Napi::Object>() : Napi::Object::New(env);
      bool measure = opt.Get("measureMemory").ToBoolean();
      bool profile = opt.Get("profile").ToBoolean();
      auto result = std::make_shared<std::vector<c10::IValue>>();
      auto peak = std::make_shared<int64_t>(-1);
      auto ms = std::make_shared<double>(0);
      auto opTimes = std::make_shared<std::map<std::string, OpTime>>();
      return PromiseWorker::Run(
          env,
          [b, stack, measure, profile, result, peak, ms, opTimes] {
            c10::InferenceMode guard;
            {
              std::lock_guard<std::mutex> lock(b->compile);
              if (!b->fn) b->fn = std::make_shared<jit::GraphFunction>("torchgraph_built", b->graph, nullptr);
            }
            std::optional<MemoryScope> scope;
            std::optional<SharedRunLock> shared;
            if (measure) scope.emplace(b->device);
            else shared.emplace();
            std::optional<OpTimes> timer;
            if (profile) timer.emplace();
            auto t0 = std::chrono::steady_clock::now();
            b->fn->run(*stack);
            if (b->device.is_cuda()) torch::cuda::synchronize();
            *ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
            if (timer) *opTimes = timer->byName();
            if (scope) *peak = scope->peakAboveBaseline();
            *result = std::move(*stack);
          },
          [result, peak, ms, profile, opTimes](Napi::Env env) -> Napi::Value {
            auto o = Napi::Object::New(env);
            if (result->size() == 1) {
              o.Set("output", ToJs(env, (*result)[0]));
            } else {
              auto arr = Napi::Array::New(env, result->size());
              for (size_t i = 0; i < result->size(); ++i) arr.Set(i, ToJs(env, (*result)[i]));
              o.Set("output", arr);
            }
            o.Set("peakBytes", Napi::Number::New(env, static_cast<double>(*peak)));
            o.Set("ms", Napi::Number::New(env, *ms));
            if (profile) {
              auto ops = Napi::Object::New(env);
              for (const auto& [name, t] : *opTimes) {
                auto e = Napi::Object::New(env);
                e.Set("ms", t.ms);
                e.Set("calls", Napi::Number::New(env, static_cast<double>(t.calls)));
                ops.Set(name, e);
              }
              o.Set("opTimes", ops);
            }
            return o;
          });
    });
  }

  Napi::Value Str(const Napi::CallbackInfo& info) {
    return Guard(info.Env(), [&]() -> Napi::Value { return Napi::String::New(info.Env(), built()->graph->toString()); });
  }

  // The graph as libtorch holds it after building (round-trip checks).
  Napi::Value Export(const Napi::CallbackInfo& info) {
    return Guard(info.Env(), [&]() -> Napi::Value { return ExportGraph(info.Env(), *built()->graph); });
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    built_.reset();
    return info.Env().Undefined();
  }
};

}  // namespace

Napi::Value NewGraphObject(Napi::Env env, std::shared_ptr<torch::jit::Graph> g, torch::jit::Module module, at::Device device) {
  auto* data = env.GetInstanceData<AddonData>();
  Napi::Object obj = data->graphCtor.New({});
  auto built = std::make_shared<Built>();
  built->takesSelf = !g->inputs().empty() && g->inputs()[0]->type()->kind() == c10::TypeKind::ClassType;
  built->graph = std::move(g);
  built->module = std::move(module);
  built->device = device;
  Graph::Unwrap(obj)->built_ = built;
  return obj;
}

void InitGraph(Napi::Env env, Napi::Object exports, AddonData* data) {
  Napi::Function ctor = Graph::Define(env);
  data->graphCtor = Napi::Persistent(ctor);
  exports.Set("Graph", ctor);
}

}  // namespace tg
