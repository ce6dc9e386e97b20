// Addon entry point and the plumbing every other file uses: coded errors, the promise
// worker, dtype/device names and IValue conversion.
#include "common.h"

#include <ATen/Parallel.h>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <torch/cuda.h>
#include <torch/version.h>
#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/csrc/jit/runtime/jit_exception.h>

namespace tg {

Napi::Error MakeJsError(Napi::Env env, const std::string& code, const std::string& msg) {
  Napi::Error err = Napi::Error::New(env, msg);
  err.Set("code", Napi::String::New(env, code));
  return err;
}

// The interpreter puts a TorchScript traceback first and the actual error last; lead with
// the error so a one-line display says what went wrong.
std::string InterpreterMessage(const std::string& full) {
  auto pos = full.rfind("Error: ");
  if (pos == std::string::npos) return full;
  auto lineStart = full.rfind('\n', pos);
  std::string head = full.substr(lineStart == std::string::npos ? 0 : lineStart + 1);
  while (!head.empty() && (head.back() == '\n' || head.back() == ' ')) head.pop_back();
  return head + "\n" + full;
}

// One thread runs every piece of libtorch work the promises ask for. OpenMP keeps a team of
// threads per calling thread, and a team spins for a while after each parallel region: work
// spread over libuv's pool (4 threads) left up to 4 teams on 2 cores, busy-waiting against
// each other. Measured: transformers' ResNet-50 at batch 1 ran in 92.9-104.1 ms through the
// pool and 57.1-57.7 ms with the pool at one thread (UV_THREADPOOL_SIZE=1), where Python eager
// takes about 69 ms. The work goes straight to this thread, and its result back to the JS
// thread through a thread-safe function (no pool thread in between: one wake-up each way).
class TorchThread {
 public:
  static TorchThread& Get() {
    static TorchThread* t = new TorchThread();  // never destroyed: the thread lives as long as the process
    return *t;
  }
  void Post(std::function<void()> task) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(std::move(task));
    }
    cv_.notify_one();
  }

 private:
  TorchThread() { std::thread([this] { Loop(); }).detach(); }
  void Loop() {
    // The executor's optimize flag is thread-local in libtorch: set on the JS thread only, every
    // run here went through the optimizing profiling executor (its first runs profile, then it
    // rewrites the graph: common subexpressions merged, so a late aten::size no longer holds its
    // tensor, and measured peaks left the estimates).
    torch::jit::setGraphExecutorOptimize(false);
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [this] { return !queue_.empty(); });
        task = std::move(queue_.front());
        queue_.pop_front();
      }
      task();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
};

namespace {

struct PromiseJob {
  Napi::Promise::Deferred deferred;
  PromiseWorker::Work work;
  PromiseWorker::Done done;
  std::string code;
  std::string message;
};

// Runs the work; what it throws becomes a code and a message (the promise's rejection).
void RunCaught(PromiseJob& job) {
  try {
    job.work();
  } catch (const Error& e) {
    job.code = e.code;
    job.message = e.what();
  } catch (const c10::Error& e) {
    job.code = "ERR_TORCH";
    job.message = e.what_without_backtrace();
  } catch (const torch::jit::JITException& e) {
    job.code = "ERR_TORCH";
    job.message = InterpreterMessage(e.what());
  } catch (const std::exception& e) {
    // The interpreter rethrows op failures as plain runtime_errors carrying the traceback.
    std::string what = e.what();
    bool fromInterpreter = what.find("TorchScript interpreter") != std::string::npos;
    job.code = fromInterpreter ? "ERR_TORCH" : "ERR_NATIVE";
    job.message = fromInterpreter ? InterpreterMessage(what) : what;
  } catch (...) {
    job.code = "ERR_NATIVE";
    job.message = "unknown native exception";
  }
}

// On the JS thread: settle the job's promise.
void Settle(Napi::Env env, Napi::Function, std::nullptr_t*, PromiseJob* raw) {
  std::unique_ptr<PromiseJob> job(raw);
  if (env == nullptr) return;  // the environment is being torn down
  Napi::HandleScope scope(env);
  if (!job->code.empty()) {
    job->deferred.Reject(MakeJsError(env, job->code, job->message).Value());
    return;
  }
  try {
    job->deferred.Resolve(Guard(env, [&] { return job->done(env); }));
  } catch (const Napi::Error& e) {
    job->deferred.Reject(e.Value());
  }
}

using SettleOnJsThread = Napi::TypedThreadSafeFunction<std::nullptr_t, PromiseJob, Settle>;

}  // namespace

Napi::Promise PromiseWorker::Run(Napi::Env env, Work work, Done done) {
  auto* job = new PromiseJob{Napi::Promise::Deferred::New(env), std::move(work), std::move(done), {}, {}};
  auto promise = job->deferred.Promise();
  // Keeps the event loop alive until the job is settled, as a queued AsyncWorker does.
  auto settle = SettleOnJsThread::New(env, "torchgraph", 0, 1);
  TorchThread::Get().Post([job, settle]() mutable {
    RunCaught(*job);
    if (settle.BlockingCall(job) != napi_ok) delete job;  // the environment is closing: nothing to settle
    settle.Release();
  });
  return promise;
}

const char* DTypeName(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return "float32";
    case at::kDouble: return "float64";
    case at::kHalf: return "float16";
    case at::kBFloat16: return "bfloat16";
    case at::kLong: return "int64";
    case at::kInt: return "int32";
    case at::kShort: return "int16";
    case at::kChar: return "int8";
    case at::kByte: return "uint8";
    case at::kBool: return "bool";
    case at::kComplexFloat: return "complex64";
    case at::kComplexDouble: return "complex128";
    default: return c10::toString(t);
  }
}

at::ScalarType ParseDType(const std::string& n) {
  if (n == "float32") return at::kFloat;
  if (n == "float64") return at::kDouble;
  if (n == "float16") return at::kHalf;
  if (n == "bfloat16") return at::kBFloat16;
  if (n == "int64") return at::kLong;
  if (n == "int32") return at::kInt;
  if (n == "int16") return at::kShort;
  if (n == "int8") return at::kChar;
  if (n == "uint8") return at::kByte;
  if (n == "bool") return at::kBool;
  if (n == "complex64") return at::kComplexFloat;
  if (n == "complex128") return at::kComplexDouble;
  throw Error("ERR_INVALID_ARG", "unknown dtype '" + n + "'");
}

at::Device ParseDevice(const std::string& name) {
  std::optional<at::Device> d;
  try {
    d = at::Device(name);
  } catch (const c10::Error&) {
    throw Error("ERR_INVALID_ARG", "invalid device '" + name + "' (expected cpu, cuda or cuda:N)");
  }
  if (d->is_cuda()) {
    if (!torch::cuda::is_available())
      throw Error("ERR_NO_DEVICE",
                  "device '" + name + "' requested but CUDA is not available (" +
                      (c10::impl::hasDeviceGuardImpl(c10::DeviceType::CUDA)
                           ? "this libtorch has CUDA but sees no GPU: check the driver and CUDA_VISIBLE_DEVICES"
                           : "this libtorch is CPU-only: point TORCHGRAPH_LIBTORCH or TORCHGRAPH_PYTHON at a CUDA "
                             "torch and run npm install again") +
                      ")");
    if (d->has_index() && d->index() >= static_cast<int>(torch::cuda::device_count()))
      throw Error("ERR_NO_DEVICE", "device '" + name + "' does not exist (" +
                                       std::to_string(torch::cuda::device_count()) + " CUDA devices)");
  } else if (!d->is_cpu() && !d->is_meta()) {
    throw Error("ERR_NO_DEVICE", "device '" + name + "' is not supported (cpu or cuda)");
  }
  return *d;
}

Napi::Value ToJs(Napi::Env env, const c10::IValue& v) {
  if (v.isTensor()) return WrapTensor(env, v.toTensor());
  if (v.isNone()) return env.Null();
  if (v.isBool()) return Napi::Boolean::New(env, v.toBool());
  if (v.isInt()) {
    int64_t i = v.toInt();
    if (i > (int64_t(1) << 53) || i < -(int64_t(1) << 53)) return Napi::BigInt::New(env, i);
    return Napi::Number::New(env, static_cast<double>(i));
  }
  if (v.isDouble()) return Napi::Number::New(env, v.toDouble());
  if (v.isString()) return Napi::String::New(env, v.toStringRef());
  if (v.isDevice()) return Napi::String::New(env, v.toDevice().str());
  if (v.isTuple() || v.isList()) {
    auto elems = v.isTuple() ? v.toTupleRef().elements().vec() : v.toList().vec();
    auto arr = Napi::Array::New(env, elems.size());
    for (size_t i = 0; i < elems.size(); ++i) arr.Set(i, ToJs(env, elems[i]));
    return arr;
  }
  if (v.isGenericDict()) {
    auto obj = Napi::Object::New(env);
    for (const auto& kv : v.toGenericDict()) {
      std::string key = kv.key().isString() ? kv.key().toStringRef() : c10::str(kv.key());
      obj.Set(key, ToJs(env, kv.value()));
    }
    return obj;
  }
  throw Error("ERR_INVALID_ARG", std::string("cannot return a value of type ") + v.tagKind() + " to JS");
}

c10::IValue FromJs(Napi::Env env, Napi::Value v) {
  if (v.IsNull() || v.IsUndefined()) return c10::IValue();
  if (v.IsBoolean()) return v.As<Napi::Boolean>().Value();
  if (v.IsBigInt()) {
    bool lossless = true;
    int64_t i = v.As<Napi::BigInt>().Int64Value(&lossless);
    if (!lossless) throw Error("ERR_INVALID_ARG", "BigInt does not fit in int64");
    return i;
  }
  if (v.IsNumber()) return v.As<Napi::Number>().DoubleValue();
  if (v.IsString()) return v.As<Napi::String>().Utf8Value();
  if (IsTensor(env, v)) return UnwrapTensor(v);
  if (v.IsArray()) {
    auto arr = v.As<Napi::Array>();
    std::vector<c10::IValue> items;
    for (uint32_t i = 0; i < arr.Length(); ++i) items.push_back(FromJs(env, arr.Get(i)));
    return c10::ivalue::Tuple::create(std::move(items));
  }
  if (v.IsObject()) {
    auto o = v.As<Napi::Object>();
    // {list: [...]}: a List[Tensor] / List[int] / List[float] argument.
    if (o.Has("list")) {
      auto arr = o.Get("list").As<Napi::Array>();
      std::vector<c10::IValue> items;
      for (uint32_t i = 0; i < arr.Length(); ++i) items.push_back(FromJs(env, arr.Get(i)));
      // elem ('int', 'float', 'bool', 'Tensor') types an empty list; otherwise the first item does.
      std::string elem = o.Has("elem") && o.Get("elem").IsString() ? o.Get("elem").As<Napi::String>().Utf8Value() : "";
      if (items.empty() && elem == "int") return c10::List<int64_t>();
      if (items.empty() && elem == "float") return c10::List<double>();
      if (items.empty() && elem == "bool") return c10::List<bool>();
      if (items.empty() || items[0].isTensor()) {
        c10::List<at::Tensor> l;
        for (auto& it : items) l.push_back(it.toTensor());
        return l;
      }
      if (items[0].isInt()) { c10::List<int64_t> l; for (auto& it : items) l.push_back(it.toInt()); return l; }
      if (items[0].isDouble()) { c10::List<double> l; for (auto& it : items) l.push_back(it.toDouble()); return l; }
      if (items[0].isBool()) { c10::List<bool> l; for (auto& it : items) l.push_back(it.toBool()); return l; }
      throw Error("ERR_INVALID_ARG", "unsupported list element type");
    }
  }
  throw Error("ERR_INVALID_ARG", "unsupported input value (expected Tensor, number, bigint, boolean, null, string or array)");
}

namespace {

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  auto* data = new AddonData();
  env.SetInstanceData(data);
  // Run graphs as given: the optimizing executor would rewrite (and re-fuse) what we built,
  // which would make original / unfused / fused comparisons meaningless.
  torch::jit::setGraphExecutorOptimize(false);
  InstallTrackingAllocator();
  InitTensor(env, exports, data);
  InitModule(env, exports, data);
  InitGraph(env, exports, data);
  InitProgram(env, exports);
  InitMemory(env, exports);
  exports.Set("torchVersion", Napi::String::New(env, TORCH_VERSION));
  exports.Set("cudaAvailable", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
    return Napi::Boolean::New(info.Env(), torch::cuda::is_available());
  }));
  exports.Set("numThreads", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), at::get_num_threads());
  }));
  exports.Set("cudaDeviceCount", Napi::Function::New(env, [](const Napi::CallbackInfo& info) {
    return Napi::Number::New(info.Env(), static_cast<double>(torch::cuda::device_count()));
  }));
  // Whether the libtorch loaded carries CUDA (libc10_cuda registers its device guard on load),
  // decided at run time: the addon is compiled the same way for CPU and CUDA libtorch.
  // oneDNN (the prepacked pointwise convolutions of the fused graph) and MKL (its packed linears)
  // are compiled into x86 CPU builds; other builds may lack either.
  exports.Set("hasMkldnn", Napi::Boolean::New(env, at::hasMKLDNN()));
  exports.Set("hasMkl", Napi::Boolean::New(env, at::hasMKL()));
  // The instruction set ATen's own CPU kernels (and ours, native/kernel_dispatch.h) run: AVX512, AVX2 or DEFAULT.
  exports.Set("cpuCapability", Napi::String::New(env, at::get_cpu_capability()));
  exports.Set("libtorchHasCuda", Napi::Boolean::New(env, c10::impl::hasDeviceGuardImpl(c10::DeviceType::CUDA)));
  return exports;
}

}  // namespace
}  // namespace tg

static Napi::Object InitTorchgraph(Napi::Env env, Napi::Object exports) { return tg::Init(env, exports); }

NODE_API_MODULE(torchgraph, InitTorchgraph)
