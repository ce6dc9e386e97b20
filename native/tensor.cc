// Tensor: a JS object owning one at::Tensor. Data crosses the boundary by exactly one copy
// each way (TypedArray -> storage, storage -> new TypedArray).
#include "common.h"

namespace tg {
namespace {

class Tensor : public Napi::ObjectWrap<Tensor> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "Tensor", {
      StaticMethod("fromTypedArray", &Tensor::FromTypedArray),
      StaticMethod("empty", &Tensor::Empty),
      InstanceAccessor("shape", &Tensor::Shape, nullptr),
      InstanceAccessor("dtype", &Tensor::DType, nullptr),
      InstanceAccessor("device", &Tensor::DeviceName, nullptr),
      InstanceAccessor("nbytes", &Tensor::NBytes, nullptr),
      InstanceAccessor("disposed", &Tensor::Disposed, nullptr),
      InstanceMethod("toTypedArray", &Tensor::ToTypedArray),
      InstanceMethod("to", &Tensor::To),
      InstanceMethod("dispose", &Tensor::Dispose),
    });
  }

  explicit Tensor(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Tensor>(info) {}
  ~Tensor() override { Release(); }

  void Adopt(Napi::Env env, at::Tensor t) {
    tensor_ = std::move(t);
    // Only CPU bytes press on the JS heap's view of process memory.
    reported_ = tensor_.is_cpu() ? static_cast<int64_t>(tensor_.nbytes()) : 0;
    if (reported_) Napi::MemoryManagement::AdjustExternalMemory(env, reported_);
    env_ = env;
  }

  const at::Tensor& tensor() const {
    if (!tensor_.defined()) throw Error("ERR_DISPOSED", "tensor was disposed");
    return tensor_;
  }

 private:
  void Release() {
    if (reported_ && env_) Napi::MemoryManagement::AdjustExternalMemory(Napi::Env(env_), -reported_);
    reported_ = 0;
    tensor_ = at::Tensor();
  }

  // fromTypedArray(data: TypedArray, shape: number[], dtype: string)
  static Napi::Value FromTypedArray(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return Guard(env, [&]() -> Napi::Value {
      if (info.Length() < 3 || !info[0].IsTypedArray() || !info[1].IsArray() || !info[2].IsString())
        throw Error("ERR_INVALID_ARG", "fromTypedArray(data: TypedArray, shape: number[], dtype: string)");
      auto ta = info[0].As<Napi::TypedArray>();
      auto dtype = ParseDType(info[2].As<Napi::String>().Utf8Value());
      auto shapeArr = info[1].As<Napi::Array>();
      std::vector<int64_t> shape;
      int64_t numel = 1;
      for (uint32_t i = 0; i < shapeArr.Length(); ++i) {
        double d = shapeArr.Get(i).As<Napi::Number>().DoubleValue();
        if (d < 0 || d != static_cast<int64_t>(d)) throw Error("ERR_INVALID_ARG", "shape entries must be non-negative integers");
        shape.push_back(static_cast<int64_t>(d));
        numel *= shape.back();
      }
      size_t elem = c10::elementSize(dtype);
      if (ta.ByteLength() != static_cast<size_t>(numel) * elem)
        throw Error("ERR_INVALID_ARG", "data has " + std::to_string(ta.ByteLength()) + " bytes but shape [" +
                                           c10::Join(", ", shape) + "] of " + DTypeName(dtype) + " needs " +
                                           std::to_string(numel * elem));
      at::Tensor t = at::empty(shape, at::TensorOptions().dtype(dtype));
      auto* src = static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
      if (numel) std::memcpy(t.data_ptr(), src, ta.ByteLength());
      return WrapTensor(env, std::move(t));
    });
  }

  // empty(shape, dtype, device): an uninitialised tensor, for measuring allocation.
  static Napi::Value Empty(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return Guard(env, [&]() -> Napi::Value {
      auto shapeArr = info[0].As<Napi::Array>();
      std::vector<int64_t> shape;
      for (uint32_t i = 0; i < shapeArr.Length(); ++i)
        shape.push_back(static_cast<int64_t>(shapeArr.Get(i).As<Napi::Number>().DoubleValue()));
      auto dtype = ParseDType(info[1].As<Napi::String>().Utf8Value());
      auto device = ParseDevice(info.Length() > 2 ? info[2].As<Napi::String>().Utf8Value() : "cpu");
      return WrapTensor(env, at::empty(shape, at::TensorOptions().dtype(dtype).device(device)));
    });
  }

  Napi::Value Shape(const Napi::CallbackInfo& info) {
    return Guard(info.Env(), [&]() -> Napi::Value {
      auto sizes = tensor().sizes();
      auto arr = Napi::Array::New(info.Env(), sizes.size());
      for (size_t i = 0; i < sizes.size(); ++i) arr.Set(i, Napi::Number::New(info.Env(), static_cast<double>(sizes[i])));
      return arr;
    });
  }
  Napi::Value DType(const Napi::CallbackInfo& info) {
    return Guard(info.Env(), [&]() -> Napi::Value { return Napi::String::New(info.Env(), DTypeName(tensor().scalar_type())); });
  }
  Napi::Value DeviceName(const Napi::CallbackInfo& info) {
    return Guard(info.Env(), [&]() -> Napi::Value { return Napi::String::New(info.Env(), tensor().device().str()); });
  }
  Napi::Value NBytes(const Napi::CallbackInfo& info) {
    return Guard(info.Env(), [&]() -> Napi::Value { return Napi::Number::New(info.Env(), static_cast<double>(tensor().nbytes())); });
  }
  Napi::Value Disposed(const Napi::CallbackInfo& info) { return Napi::Boolean::New(info.Env(), !tensor_.defined()); }

  Napi::Value ToTypedArray(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return Guard(env, [&]() -> Napi::Value {
      at::Tensor t = tensor().to(at::kCPU).contiguous();
      size_t bytes = t.nbytes();
      auto buf = Napi::ArrayBuffer::New(env, bytes);
      if (bytes) std::memcpy(buf.Data(), t.data_ptr(), bytes);
      size_t n = static_cast<size_t>(t.numel());
      switch (t.scalar_type()) {
        case at::kFloat: return Napi::Float32Array::New(env, n, buf, 0);
        case at::kDouble: return Napi::Float64Array::New(env, n, buf, 0);
        case at::kLong: return Napi::BigInt64Array::New(env, n, buf, 0);
        case at::kInt: return Napi::Int32Array::New(env, n, buf, 0);
        case at::kShort: return Napi::Int16Array::New(env, n, buf, 0);
        case at::kChar: return Napi::Int8Array::New(env, n, buf, 0);
        case at::kByte:
        case at::kBool: return Napi::Uint8Array::New(env, n, buf, 0);
        case at::kHalf:
        case at::kBFloat16: return Napi::Uint16Array::New(env, n, buf, 0);
        default: throw Error("ERR_INVALID_ARG", std::string("cannot read back dtype ") + DTypeName(t.scalar_type()));
      }
    });
  }

  // to(device): a copy on another device (synchronous; meant for inputs).
  Napi::Value To(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    return Guard(env, [&]() -> Napi::Value {
      auto device = ParseDevice(info[0].As<Napi::String>().Utf8Value());
      return WrapTensor(env, tensor().to(device));
    });
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    Release();
    return info.Env().Undefined();
  }

  at::Tensor tensor_;
  int64_t reported_ = 0;
  napi_env env_ = nullptr;
};

}  // namespace

Napi::Object WrapTensor(Napi::Env env, at::Tensor t) {
  auto* data = env.GetInstanceData<AddonData>();
  Napi::Object obj = data->tensorCtor.New({});
  Tensor::Unwrap(obj)->Adopt(env, std::move(t));
  return obj;
}

bool IsTensor(Napi::Env env, Napi::Value v) {
  if (!v.IsObject()) return false;
  auto* data = env.GetInstanceData<AddonData>();
  return v.As<Napi::Object>().InstanceOf(data->tensorCtor.Value());
}

at::Tensor UnwrapTensor(Napi::Value v) {
  if (!IsTensor(v.Env(), v)) throw Error("ERR_INVALID_ARG", "expected a Tensor");
  return Tensor::Unwrap(v.As<Napi::Object>())->tensor();
}

void InitTensor(Napi::Env env, Napi::Object exports, AddonData* data) {
  Napi::Function ctor = Tensor::Define(env);
  data->tensorCtor = Napi::Persistent(ctor);
  exports.Set("Tensor", ctor);
}

}  // namespace tg
