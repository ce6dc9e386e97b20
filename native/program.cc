// torch.export programs (.pt2): the archive is read with libtorch's own zip reader
// (caffe2::serialize::PyTorchStreamReader, what torch.export.load uses through
// torch._C.PyTorchFileReader); lib/program/ turns model.json into graph data, and the program
// becomes an in-memory TorchScript module: a module tree holding the archive's weights (read
// once, shared by every run) with methods built from that data by the graph builder. No
// decisions about the program live here.
#include "common.h"
#include "module_load.h"
#include "graph_build.h"
#include "module.h"

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/runtime/operator.h>

namespace tg {

namespace {

namespace jit = torch::jit;

bool IsTextRecord(const std::string& name) {
  auto ends = [&](const std::string& s) { return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0; };
  return ends(".json") || name == "archive_format" || name == "archive_version" || name == ".data/version" || name == "byteorder";
}

std::unique_ptr<caffe2::serialize::PyTorchStreamReader> OpenArchive(const std::string& path) {
  const std::string what = "cannot read '" + path + "'";
  CheckModelFile(path, what);
  try {
    return std::make_unique<caffe2::serialize::PyTorchStreamReader>(path);
  } catch (const c10::Error& e) {
    std::string why = TorchMessageLine(e.what_without_backtrace());
    if (why.find("not a ZIP archive") != std::string::npos || why.find("central directory") != std::string::npos) why += " (not a zip archive, or a truncated one)";
    throw Error("ERR_LOAD", what + " as a zip archive: " + why);
  }
}

std::string ReadText(caffe2::serialize::PyTorchStreamReader& r, const std::string& name) {
  auto [ptr, size] = r.getRecord(name);
  return std::string(static_cast<const char*>(ptr.get()), size);
}

// readArchive(path) -> Promise<{records: string[], texts: {[record]: string}}>: every record
// name (without the archive folder) and the text of the small ones (json, format, version).
Napi::Value ReadArchive(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsString()) throw Error("ERR_INVALID_ARG", "readArchive(path: string)");
    std::string path = info[0].As<Napi::String>().Utf8Value();
    auto records = std::make_shared<std::vector<std::string>>();
    auto texts = std::make_shared<std::vector<std::pair<std::string, std::string>>>();
    return PromiseWorker::Run(
        env,
        [path, records, texts] {
          auto r = OpenArchive(path);
          *records = r->getAllRecords();
          for (const auto& n : *records)
            if (IsTextRecord(n)) texts->emplace_back(n, ReadText(*r, n));
        },
        [records, texts](Napi::Env env) -> Napi::Value {
          auto o = Napi::Object::New(env);
          auto arr = Napi::Array::New(env, records->size());
          for (size_t i = 0; i < records->size(); ++i) arr.Set(i, (*records)[i]);
          o.Set("records", arr);
          auto t = Napi::Object::New(env);
          for (const auto& kv : *texts) t.Set(kv.first, kv.second);
          o.Set("texts", t);
          return o;
        });
  });
}

struct TensorSpec {
  std::string record;
  at::ScalarType dtype;
  std::vector<int64_t> sizes, strides;
  int64_t offset = 0;
};

std::vector<int64_t> Ints(Napi::Value v) {
  std::vector<int64_t> out;
  auto arr = v.As<Napi::Array>();
  for (uint32_t i = 0; i < arr.Length(); ++i) out.push_back(static_cast<int64_t>(arr.Get(i).As<Napi::Number>().Int64Value()));
  return out;
}

// loadTensors(path, [{record, dtype, sizes, strides, offset}], device) -> Promise<Tensor[]>:
// each record read once into one storage (tensors naming the same record share it), viewed
// with the given geometry and moved to the device.
Napi::Value LoadTensors(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    if (info.Length() < 2 || !info[0].IsString() || !info[1].IsArray())
      throw Error("ERR_INVALID_ARG", "loadTensors(path: string, specs: TensorSpec[], device?: string)");
    std::string path = info[0].As<Napi::String>().Utf8Value();
    auto specs = std::make_shared<std::vector<TensorSpec>>();
    auto arr = info[1].As<Napi::Array>();
    for (uint32_t i = 0; i < arr.Length(); ++i) {
      auto o = arr.Get(i).As<Napi::Object>();
      specs->push_back({o.Get("record").ToString().Utf8Value(), ParseDType(o.Get("dtype").ToString().Utf8Value()),
                        Ints(o.Get("sizes")), Ints(o.Get("strides")), o.Get("offset").As<Napi::Number>().Int64Value()});
    }
    at::Device device = ParseDevice(info.Length() > 2 && info[2].IsString() ? info[2].As<Napi::String>().Utf8Value() : "cpu");
    auto out = std::make_shared<std::vector<at::Tensor>>();
    return PromiseWorker::Run(
        env,
        [path, specs, device, out] {
          auto r = OpenArchive(path);
          std::map<std::string, c10::Storage> storages;
          for (const auto& s : *specs) {
            if (!r->hasRecord(s.record)) throw Error("ERR_LOAD", "'" + path + "' has no record '" + s.record + "'");
            auto it = storages.find(s.record);
            if (it == storages.end()) {
              auto [ptr, size] = r->getRecord(s.record);
              c10::Storage st(c10::Storage::use_byte_size_t(), static_cast<int64_t>(size), std::move(ptr), nullptr, false);
              it = storages.emplace(s.record, std::move(st)).first;
            }
            int64_t need = s.offset;
            for (size_t d = 0; d < s.sizes.size(); ++d) need += s.sizes[d] == 0 ? 0 : (s.sizes[d] - 1) * s.strides[d];
            int64_t item = static_cast<int64_t>(c10::elementSize(s.dtype));
            bool empty = std::any_of(s.sizes.begin(), s.sizes.end(), [](int64_t x) { return x == 0; });
            if (!empty && (need + 1) * item > static_cast<int64_t>(it->second.nbytes()))
              throw Error("ERR_LOAD", "record '" + s.record + "' holds " + std::to_string(it->second.nbytes()) +
                                          " bytes, too few for the tensor model_weights_config.json describes");
            at::Tensor t = at::empty({0}, at::TensorOptions().dtype(s.dtype));
            t.set_(it->second, s.offset, s.sizes, s.strides);
            out->push_back(device.is_cpu() ? t : t.to(device));
          }
        },
        [out](Napi::Env env) -> Napi::Value {
          auto a = Napi::Array::New(env, out->size());
          for (size_t i = 0; i < out->size(); ++i) a.Set(i, WrapTensor(env, (*out)[i]));
          return a;
        });
  });
}

Napi::Value DefaultData(Napi::Env env, const c10::IValue& v) {
  auto o = Napi::Object::New(env);
  if (v.isNone()) o.Set("type", "none");
  else if (v.isBool()) { o.Set("type", "bool"); o.Set("value", v.toBool()); }
  else if (v.isInt()) { o.Set("type", "int"); o.Set("value", Napi::BigInt::New(env, v.toInt())); }
  else if (v.isDouble()) { o.Set("type", "float"); o.Set("value", v.toDouble()); }
  else if (v.isString()) { o.Set("type", "str"); o.Set("value", v.toStringRef()); }
  else if (v.isList()) {
    o.Set("type", "list");
    auto l = v.toList();
    auto arr = Napi::Array::New(env, l.size());
    for (size_t i = 0; i < l.size(); ++i) arr.Set(i, DefaultData(env, l.get(i)));
    o.Set("items", arr);
  } else {
    o.Set("type", "other");
    o.Set("repr", v.tagKind());
  }
  return o;
}

// opSchema("aten::name", "overload") -> {text, defaults: (IValueData-like | undefined)[]} or null
// when libtorch has no such operator.
Napi::Value OpSchema(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    std::string name = info[0].ToString().Utf8Value();
    std::string overload = info[1].ToString().Utf8Value();
    for (const auto& op : jit::getAllOperatorsFor(c10::Symbol::fromQualString(name))) {
      const auto& s = op->schema();
      if (s.overload_name() != overload) continue;
      auto o = Napi::Object::New(env);
      o.Set("text", c10::toString(s));
      auto defs = Napi::Array::New(env, s.arguments().size());
      for (size_t i = 0; i < s.arguments().size(); ++i) {
        const auto& a = s.arguments()[i];
        defs.Set(i, a.default_value() ? DefaultData(env, *a.default_value()) : env.Undefined());
      }
      o.Set("defaults", defs);
      return o;
    }
    return env.Null();
  });
}

jit::Module FindModule(std::map<std::string, jit::Module>& byPath, const std::string& path) {
  auto it = byPath.find(path);
  if (it == byPath.end()) throw Error("ERR_INVALID_ARG", "no module '" + path + "' in the module spec");
  return it->second;
}

// A method's schema from its graph's types and the given argument names and defaults (one per
// input after self), so that a saved file's forward keeps them. A default whose value does not fit
// the argument's type is left out rather than written wrong.
c10::FunctionSchema SchemaWithDefaults(Napi::Env env, const std::string& name, const jit::Graph& g, const Napi::Array& given) {
  if (given.Length() + 1 != g.inputs().size()) throw Error("ERR_INVALID_ARG", "createModule: " + std::to_string(given.Length()) + " arguments for a graph of " + std::to_string(g.inputs().size() - 1) + " inputs after self");
  std::vector<c10::Argument> args{c10::Argument("self", g.inputs()[0]->type())};
  for (uint32_t i = 0; i < given.Length(); ++i) {
    auto a = given.Get(i).As<Napi::Object>();
    const auto& type = g.inputs()[i + 1]->type();
    std::optional<c10::IValue> def;
    if (a.Has("default")) {
      c10::IValue v = FromJs(env, a.Get("default"));
      if (v.type()->isSubtypeOf(*type)) def = std::move(v);
    }
    args.emplace_back(a.Get("name").ToString().Utf8Value(), type, std::nullopt, std::move(def));
  }
  std::vector<c10::Argument> returns;
  for (const auto* out : g.outputs()) returns.emplace_back("", out->type());
  return c10::FunctionSchema(name, "", std::move(args), std::move(returns));
}

// createModule({modules: [{path, cls}], tensors: [{module, name, kind, tensor}],
//   methods: [{module, name, graph, arguments?: [{name, default?}]}]}, device) -> Module. Modules come parents first (the root
// has path ''); methods callees first, so prim::CallMethod finds its target.
Napi::Value CreateModule(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  return Guard(env, [&]() -> Napi::Value {
    if (info.Length() < 1 || !info[0].IsObject()) throw Error("ERR_INVALID_ARG", "createModule(spec, device)");
    auto spec = info[0].As<Napi::Object>();
    at::Device device = ParseDevice(info.Length() > 1 && info[1].IsString() ? info[1].As<Napi::String>().Utf8Value() : "cpu");
    auto cu = std::make_shared<jit::CompilationUnit>();
    std::map<std::string, jit::Module> byPath;
    auto mods = spec.Get("modules").As<Napi::Array>();
    for (uint32_t i = 0; i < mods.Length(); ++i) {
      auto o = mods.Get(i).As<Napi::Object>();
      std::string path = o.Get("path").ToString().Utf8Value();
      jit::Module m(c10::QualifiedName(o.Get("cls").ToString().Utf8Value()), cu, /*shouldMangle=*/false);
      m.register_attribute("training", c10::BoolType::get(), false);
      if (!path.empty()) {
        auto dot = path.rfind('.');
        std::string parent = dot == std::string::npos ? "" : path.substr(0, dot);
        FindModule(byPath, parent).register_module(dot == std::string::npos ? path : path.substr(dot + 1), m);
      }
      byPath.emplace(path, m);
    }
    auto tensors = spec.Get("tensors").As<Napi::Array>();
    for (uint32_t i = 0; i < tensors.Length(); ++i) {
      auto o = tensors.Get(i).As<Napi::Object>();
      jit::Module m = FindModule(byPath, o.Get("module").ToString().Utf8Value());
      std::string name = o.Get("name").ToString().Utf8Value();
      std::string kind = o.Get("kind").ToString().Utf8Value();
      at::Tensor t = UnwrapTensor(o.Get("tensor"));
      if (kind == "parameter") m.register_parameter(name, t, /*is_buffer=*/false);
      else if (kind == "buffer") m.register_buffer(name, t);
      else m.register_attribute(name, c10::TensorType::get(), t);
    }
    jit::Module root = FindModule(byPath, "");
    auto methods = spec.Get("methods").As<Napi::Array>();
    for (uint32_t i = 0; i < methods.Length(); ++i) {
      auto o = methods.Get(i).As<Napi::Object>();
      jit::Module m = FindModule(byPath, o.Get("module").ToString().Utf8Value());
      std::string name = o.Get("name").ToString().Utf8Value();
      auto g = BuildGraph(env, o.Get("graph").As<Napi::Object>(), root);
      auto* fn = cu->create_function(c10::QualifiedName(*m.type()->name(), name), g);
      if (o.Has("arguments") && o.Get("arguments").IsArray()) fn->setSchema(SchemaWithDefaults(env, name, *g, o.Get("arguments").As<Napi::Array>()));
      m.type()->addMethod(fn);
    }
    return NewModuleObject(env, root, device);
  });
}

}  // namespace

void InitProgram(Napi::Env env, Napi::Object exports) {
  exports.Set("readArchive", Napi::Function::New(env, ReadArchive));
  exports.Set("loadTensors", Napi::Function::New(env, LoadTensors));
  exports.Set("opSchema", Napi::Function::New(env, OpSchema));
  exports.Set("createModule", Napi::Function::New(env, CreateModule));
}

}  // namespace tg
