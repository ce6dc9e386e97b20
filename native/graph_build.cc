// Graph build: plain JS data (lib/core/ir/serialized.ts) -> torch::jit::Graph, constructed
// node by node (torch's printed IR does not parse back). Every aten node must resolve to a
// registered libtorch operator; a malformed node is an ERR_GRAPH that names it.
#include "graph_build.h"

#include <torch/csrc/jit/api/function_impl.h>

#include <map>
#include <mutex>
#include <unordered_map>

namespace tg {
namespace {

using torch::jit::Value;
namespace jit = torch::jit;

std::string Describe(const Napi::Object& nd, size_t index) {
  std::string s = "node #" + std::to_string(index) + " (" + nd.Get("kind").ToString().Utf8Value();
  auto outs = nd.Get("outputs");
  if (outs.IsArray() && outs.As<Napi::Array>().Length() > 0) {
    auto o0 = outs.As<Napi::Array>().Get(0u).As<Napi::Object>();
    s += " -> %" + (o0.Get("name").IsString() ? o0.Get("name").As<Napi::String>().Utf8Value()
                                              : o0.Get("id").ToString().Utf8Value());
  }
  return s + ")";
}

struct Builder {
  Napi::Env env;
  std::shared_ptr<jit::Graph> g;
  std::unordered_map<int64_t, Value*> values;
  std::unordered_map<std::string, c10::ClassTypePtr> classes;
  std::shared_ptr<jit::CompilationUnit> cu;
  size_t nodeIndex = 0;

  void CollectClasses(const jit::Module& m) {
    if (auto n = m.type()->name()) classes.emplace(n->qualifiedName(), m.type());
    for (const auto& c : m.children()) CollectClasses(c);
  }

  static int64_t Int(Napi::Value v) {
    if (v.IsBigInt()) { bool lossless; return v.As<Napi::BigInt>().Int64Value(&lossless); }
    return static_cast<int64_t>(v.As<Napi::Number>().DoubleValue());
  }

  c10::TypePtr Type(Napi::Value tv) {
    if (!tv.IsObject()) throw Error("ERR_GRAPH", "missing type");
    auto o = tv.As<Napi::Object>();
    std::string k = o.Get("kind").ToString().Utf8Value();
    if (k == "Tensor") {
      // Shapes are analysis results in TS; the interpreter needs only "a tensor".
      return c10::TensorType::get();
    }
    if (k == "Int") return c10::IntType::get();
    if (k == "Float") return c10::FloatType::get();
    if (k == "Bool") return c10::BoolType::get();
    if (k == "String") return c10::StringType::get();
    if (k == "None") return c10::NoneType::get();
    if (k == "Device") return c10::DeviceObjType::get();
    if (k == "Number") return c10::NumberType::get();
    if (k == "Complex") return c10::ComplexType::get();
    if (k == "Optional") return c10::OptionalType::create(Type(o.Get("elem")));
    if (k == "List") return c10::ListType::create(Type(o.Get("elem")));
    if (k == "Tuple") {
      auto arr = o.Get("elems").As<Napi::Array>();
      std::vector<c10::TypePtr> elems;
      for (uint32_t i = 0; i < arr.Length(); ++i) elems.push_back(Type(arr.Get(i)));
      return c10::TupleType::create(std::move(elems));
    }
    if (k == "Dict") return c10::DictType::create(Type(o.Get("key")), Type(o.Get("value")));
    if (k == "Class") {
      std::string name = o.Get("name").ToString().Utf8Value();
      auto it = classes.find(name);
      if (it != classes.end()) return it->second;
      if (cu) {
        if (auto c = cu->get_class(c10::QualifiedName(name))) return c;
      }
      throw Error("ERR_GRAPH", "unknown class type '" + name + "' (not a module type of this model)");
    }
    if (k == "Other" && cu && o.Get("repr").IsString()) {
      // Function values (prim::CallFunction targets) are typed by their function.
      std::string repr = o.Get("repr").ToString().Utf8Value();
      if (auto* fn = cu->find_function(c10::QualifiedName(repr))) return c10::FunctionType::create(fn);
      // Enum values (timm's Format) are typed by their enum class.
      if (auto named = cu->get_type(c10::QualifiedName(repr))) {
        if (auto et = named->cast<c10::EnumType>()) return et;
      }
    }
    throw Error("ERR_GRAPH", "unsupported type '" + (o.Get("repr").IsString() ? o.Get("repr").ToString().Utf8Value() : k) + "'");
  }

  Value* Lookup(Napi::Value id, const std::string& where) {
    int64_t i = Int(id);
    auto it = values.find(i);
    if (it == values.end()) throw Error("ERR_GRAPH", where + ": uses value " + std::to_string(i) + " before it is defined");
    return it->second;
  }

  void Define(Napi::Object vd, Value* v) {
    int64_t id = Int(vd.Get("id"));
    if (values.count(id)) throw Error("ERR_GRAPH", "value id " + std::to_string(id) + " is defined twice");
    values[id] = v;
    v->setType(Type(vd.Get("type")));
    if (vd.Get("name").IsString()) {
      std::string name = vd.Get("name").As<Napi::String>().Utf8Value();
      // Purely numeric names are reserved for unnamed values in torch::jit.
      if (!name.empty() && !std::isdigit(static_cast<unsigned char>(name[0])))
        v->setDebugName(name);
    }
  }

  c10::IValue IVal(Napi::Value v) {
    auto o = v.As<Napi::Object>();
    std::string t = o.Get("type").ToString().Utf8Value();
    if (t == "int") return Int(o.Get("value"));
    if (t == "float") return o.Get("value").As<Napi::Number>().DoubleValue();
    if (t == "bool") return o.Get("value").ToBoolean().Value();
    if (t == "str") return o.Get("value").ToString().Utf8Value();
    if (t == "none") return c10::IValue();
    if (t == "device") return c10::Device(o.Get("value").ToString().Utf8Value());
    if (t == "tensor") return UnwrapTensor(o.Get("tensor"));
    if (t == "enum") {
      std::string qn = o.Get("enumType").ToString().Utf8Value();
      auto named = cu ? cu->get_type(c10::QualifiedName(qn)) : nullptr;
      auto et = named ? named->cast<c10::EnumType>() : nullptr;
      if (!et) throw Error("ERR_GRAPH", "unknown enum type '" + qn + "' (not an enum of this model)");
      return c10::IValue(c10::make_intrusive<c10::ivalue::EnumHolder>(et, o.Get("name").ToString().Utf8Value(), IVal(o.Get("value"))));
    }
    if (t == "tuple" || t == "list") {
      auto arr = o.Get("items").As<Napi::Array>();
      std::vector<c10::IValue> items;
      for (uint32_t i = 0; i < arr.Length(); ++i) items.push_back(IVal(arr.Get(i)));
      if (t == "tuple") return c10::ivalue::Tuple::create(std::move(items));
      c10::impl::GenericList l(Type(o.Get("elem")));
      for (auto& it : items) l.push_back(std::move(it));
      return l;
    }
    throw Error("ERR_GRAPH", "unsupported constant type '" + t + "'");
  }

  void SetAttr(jit::Node* n, const std::string& name, Napi::Object a) {
    auto sym = c10::Symbol::attr(name);
    std::string k = a.Get("kind").ToString().Utf8Value();
    Napi::Value v = a.Get("value");
    if (k == "i") n->i_(sym, Int(v));
    else if (k == "f") n->f_(sym, v.As<Napi::Number>().DoubleValue());
    else if (k == "s") n->s_(sym, v.ToString().Utf8Value());
    else if (k == "t") n->t_(sym, UnwrapTensor(v));
    else if (k == "is") {
      std::vector<int64_t> xs;
      auto arr = v.As<Napi::Array>();
      for (uint32_t i = 0; i < arr.Length(); ++i) xs.push_back(Int(arr.Get(i)));
      n->is_(sym, xs);
    } else if (k == "fs") {
      std::vector<double> xs;
      auto arr = v.As<Napi::Array>();
      for (uint32_t i = 0; i < arr.Length(); ++i) xs.push_back(arr.Get(i).As<Napi::Number>().DoubleValue());
      n->fs_(sym, xs);
    } else if (k == "ss") {
      std::vector<std::string> xs;
      auto arr = v.As<Napi::Array>();
      for (uint32_t i = 0; i < arr.Length(); ++i) xs.push_back(arr.Get(i).ToString().Utf8Value());
      n->ss_(sym, xs);
    } else if (k == "ival") n->ival_(sym, IVal(v));
    else if (k == "ty") n->ty_(sym, Type(v));
    else throw Error("ERR_GRAPH", "unsupported attribute kind '" + k + "'");
  }

  void BuildBlock(Napi::Object bd, jit::Block* b, bool top) {
    auto ins = bd.Get("inputs").As<Napi::Array>();
    for (uint32_t i = 0; i < ins.Length(); ++i) Define(ins.Get(i).As<Napi::Object>(), top ? g->addInput() : b->addInput());
    auto nodes = bd.Get("nodes").As<Napi::Array>();
    for (uint32_t i = 0; i < nodes.Length(); ++i) BuildNode(nodes.Get(i).As<Napi::Object>(), b);
    auto outs = bd.Get("outputs").As<Napi::Array>();
    for (uint32_t i = 0; i < outs.Length(); ++i) b->registerOutput(Lookup(outs.Get(i), top ? "graph output" : "block output"));
  }

  // ModuleInstanceInfo's constructor is not exported by libtorch (the struct lacks TORCH_API);
  // its default constructor and copy are inline. Fill a default one through a struct of the
  // same layout (two members, same types and order: libtorch's torch/csrc/jit/ir/scope.h).
  static jit::ModuleInstanceInfo InstanceInfo(c10::ClassTypePtr type, std::string name) {
    struct Mirror { c10::ClassTypePtr type; std::string name; };
    static_assert(sizeof(Mirror) == sizeof(jit::ModuleInstanceInfo), "ModuleInstanceInfo layout changed");
    jit::ModuleInstanceInfo info;
    auto* m = reinterpret_cast<Mirror*>(&info);
    m->type = std::move(type);
    m->name = std::move(name);
    return info;
  }

  // The module call stack of a node (ScopeFrame[], outermost first) as the inlined call stack
  // the exporter reads back: each frame's instance name relative to the frame above it.
  void SetCallstack(jit::Node* n, Napi::Array frames) {
    if (frames.Length() == 0) return;
    std::vector<jit::ModuleInstanceInfo> infos;
    std::string parent;
    for (uint32_t i = 0; i < frames.Length(); ++i) {
      auto f = frames.Get(i).As<Napi::Object>();
      std::string path = f.Get("path").ToString().Utf8Value();
      std::string cls = f.Get("cls").ToString().Utf8Value();
      std::string rel = !parent.empty() && path.rfind(parent + ".", 0) == 0 ? path.substr(parent.size() + 1) : path;
      auto it = classes.find(cls);
      infos.push_back(InstanceInfo(it == classes.end() ? nullptr : it->second, rel));
      parent = path;
    }
    // The interpreter names each frame's function when it reports an error: give every frame a
    // (never run) function of the frame's method name, and a source saying where nodes came from.
    static std::mutex mu;
    static std::map<std::string, jit::Function*> fns;
    static auto source = std::make_shared<jit::Source>(std::string("<module call stack>"));
    auto fnFor = [&](uint32_t i) {
      auto f = frames.Get(i).As<Napi::Object>();
      std::string method = f.Get("method").IsString() ? f.Get("method").ToString().Utf8Value() : "forward";
      std::lock_guard<std::mutex> lock(mu);
      auto& fn = fns[method];
      if (!fn) fn = new jit::GraphFunction(method, std::make_shared<jit::Graph>(), nullptr);  // kept for the process
      return fn;
    };
    jit::SourceRange range(source, 0, 0);
    jit::InlinedCallStackPtr cs = c10::make_intrusive<jit::InlinedCallStack>(fnFor(frames.Length() - 1), range, infos.back());
    for (size_t i = infos.size() - 1; i-- > 0;)
      cs = c10::make_intrusive<jit::InlinedCallStack>(cs, fnFor(static_cast<uint32_t>(i)), range, infos[i]);
    n->setCallStack(cs);
  }

  void BuildNode(Napi::Object nd, jit::Block* b) {
    size_t index = nodeIndex++;
    std::string where = Describe(nd, index);
    try {
      std::string kind = nd.Get("kind").ToString().Utf8Value();
      if (kind.find("::") == std::string::npos) throw Error("ERR_GRAPH", "kind must be qualified, e.g. aten::add");
      jit::Node* n = g->create(c10::Symbol::fromQualString(kind), 0);
      b->appendNode(n);
      auto ins = nd.Get("inputs").As<Napi::Array>();
      for (uint32_t i = 0; i < ins.Length(); ++i) n->addInput(Lookup(ins.Get(i), "input " + std::to_string(i)));
      auto outs = nd.Get("outputs").As<Napi::Array>();
      for (uint32_t i = 0; i < outs.Length(); ++i) Define(outs.Get(i).As<Napi::Object>(), n->addOutput());
      if (nd.Get("attrs").IsObject()) {
        auto attrs = nd.Get("attrs").As<Napi::Object>();
        auto names = attrs.GetPropertyNames();
        for (uint32_t i = 0; i < names.Length(); ++i) {
          std::string an = names.Get(i).ToString().Utf8Value();
          SetAttr(n, an, attrs.Get(an).As<Napi::Object>());
        }
      }
      if (nd.Get("scope").IsArray()) SetCallstack(n, nd.Get("scope").As<Napi::Array>());
      if (nd.Get("blocks").IsArray()) {
        auto blocks = nd.Get("blocks").As<Napi::Array>();
        for (uint32_t i = 0; i < blocks.Length(); ++i) BuildBlock(blocks.Get(i).As<Napi::Object>(), n->addBlock(), false);
      }
      // Ops must resolve to a registered libtorch operator for these input types.
      if (n->kind().is_aten() && !n->maybeOperator()) {
        std::string sig = kind + "(";
        for (size_t i = 0; i < n->inputs().size(); ++i) sig += (i ? ", " : "") + n->input(i)->type()->annotation_str();
        throw Error("ERR_GRAPH", "no libtorch operator matches " + sig + ")");
      }
    } catch (const Error& e) {
      if (e.what() && std::string(e.what()).rfind("node #", 0) == 0) throw;
      throw Error(e.code, where + ": " + e.what());
    } catch (const c10::Error& e) {
      throw Error("ERR_GRAPH", where + ": " + e.what_without_backtrace());
    } catch (const Napi::Error& e) {
      throw Error("ERR_GRAPH", where + ": malformed node data: " + e.Message());
    }
  }
};

Builder MakeBuilder(Napi::Env env, Napi::Object data, const torch::jit::Module& module) {
  Builder b{env, std::make_shared<jit::Graph>()};
  b.CollectClasses(module);
  b.cu = module.type()->compilation_unit();
  b.BuildBlock(data, b.g->block(), true);
  try {
    b.g->lint();
  } catch (const c10::Error& e) {
    throw Error("ERR_GRAPH", std::string("built graph is not well formed: ") + e.what_without_backtrace());
  }
  return b;
}

}  // namespace

std::shared_ptr<torch::jit::Graph> BuildGraph(Napi::Env env, Napi::Object data, const torch::jit::Module& module) {
  return MakeBuilder(env, data, module).g;
}

}  // namespace tg
