// Graph export (torch::jit::Graph -> plain JS data, lib/core/ir/serialized.ts) and build
// (plain data -> torch::jit::Graph, constructed node by node; torch's printed IR does not
// parse back). A built graph runs through the JIT interpreter with the module's own tensors:
// `self` is passed as the first input, so parameter reads share storage with the module.
#include "common.h"

#include <torch/cuda.h>
#include <torch/csrc/jit/api/function_impl.h>

#include <chrono>
#include <functional>
#include <map>
#include <unordered_map>

namespace tg {
namespace {

using torch::jit::Value;
namespace jit = torch::jit;

// ---------------------------------------------------------------------------- export

struct Exporter {
  Napi::Env env;

  Napi::Value Shape(const c10::VaryingShape<int64_t>& s) {
    auto sizes = s.sizes();
    if (!sizes) return env.Undefined();
    auto arr = Napi::Array::New(env, sizes->size());
    for (size_t i = 0; i < sizes->size(); ++i)
      arr.Set(i, (*sizes)[i] ? Napi::Value(Napi::Number::New(env, static_cast<double>(*(*sizes)[i]))) : env.Null());
    return arr;
  }

  Napi::Object Type(const c10::TypePtr& t) {
    auto o = Napi::Object::New(env);
    using K = c10::TypeKind;
    switch (t->kind()) {
      case K::TensorType: {
        o.Set("kind", "Tensor");
        auto tt = t->expect<c10::TensorType>();
        if (auto st = tt->scalarType()) o.Set("dtype", DTypeName(*st));
        auto sh = Shape(tt->sizes());
        if (!sh.IsUndefined()) o.Set("shape", sh);
        auto sr = Shape(tt->strides());
        if (!sr.IsUndefined()) o.Set("strides", sr);
        if (auto d = tt->device()) o.Set("device", d->str());
        if (auto rg = tt->requiresGrad()) o.Set("requiresGrad", Napi::Boolean::New(env, *rg));
        break;
      }
      case K::IntType: o.Set("kind", "Int"); break;
      case K::FloatType: o.Set("kind", "Float"); break;
      case K::BoolType: o.Set("kind", "Bool"); break;
      case K::StringType: o.Set("kind", "String"); break;
      case K::NoneType: o.Set("kind", "None"); break;
      case K::DeviceObjType: o.Set("kind", "Device"); break;
      case K::NumberType: o.Set("kind", "Number"); break;
      case K::ComplexType: o.Set("kind", "Complex"); break;
      case K::OptionalType:
        o.Set("kind", "Optional");
        o.Set("elem", Type(t->expectRef<c10::OptionalType>().getElementType()));
        break;
      case K::ListType:
        o.Set("kind", "List");
        o.Set("elem", Type(t->expectRef<c10::ListType>().getElementType()));
        break;
      case K::TupleType: {
        o.Set("kind", "Tuple");
        auto elems = t->containedTypes();
        auto arr = Napi::Array::New(env, elems.size());
        for (size_t i = 0; i < elems.size(); ++i) arr.Set(i, Type(elems[i]));
        o.Set("elems", arr);
        break;
      }
      case K::DictType:
        o.Set("kind", "Dict");
        o.Set("key", Type(t->expectRef<c10::DictType>().getKeyType()));
        o.Set("value", Type(t->expectRef<c10::DictType>().getValueType()));
        break;
      case K::ClassType: {
        o.Set("kind", "Class");
        auto n = t->expectRef<c10::ClassType>().name();
        o.Set("name", n ? n->qualifiedName() : "<anonymous>");
        break;
      }
      default:
        o.Set("kind", "Other");
        o.Set("repr", t->annotation_str());
    }
    return o;
  }

  Napi::Object ValueObj(const Value* v) {
    auto o = Napi::Object::New(env);
    o.Set("id", Napi::Number::New(env, static_cast<double>(v->unique())));
    if (v->hasDebugName()) o.Set("name", v->debugName());
    o.Set("type", Type(v->type()));
    return o;
  }

  Napi::Value IVal(const c10::IValue& v) {
    auto o = Napi::Object::New(env);
    if (v.isInt()) { o.Set("type", "int"); o.Set("value", Napi::BigInt::New(env, v.toInt())); }
    else if (v.isDouble()) { o.Set("type", "float"); o.Set("value", v.toDouble()); }
    else if (v.isBool()) { o.Set("type", "bool"); o.Set("value", v.toBool()); }
    else if (v.isString()) { o.Set("type", "str"); o.Set("value", v.toStringRef()); }
    else if (v.isNone()) { o.Set("type", "none"); }
    else if (v.isDevice()) { o.Set("type", "device"); o.Set("value", v.toDevice().str()); }
    else if (v.isTensor()) { o.Set("type", "tensor"); o.Set("tensor", WrapTensor(env, v.toTensor())); }
    else if (v.isList()) {
      o.Set("type", "list");
      auto l = v.toList();
      auto arr = Napi::Array::New(env, l.size());
      for (size_t i = 0; i < l.size(); ++i) arr.Set(i, IVal(l.get(i)));
      o.Set("items", arr);
      o.Set("elem", Type(l.elementType()));
    } else if (v.isTuple()) {
      o.Set("type", "tuple");
      const auto& el = v.toTupleRef().elements();
      auto arr = Napi::Array::New(env, el.size());
      for (size_t i = 0; i < el.size(); ++i) arr.Set(i, IVal(el[i]));
      o.Set("items", arr);
    } else if (v.isEnum()) {
      // A TorchScript enum (timm's Format.NCHW): its class, member name and value.
      const auto& e = v.toEnumHolder();
      o.Set("type", "enum");
      o.Set("enumType", e->qualifiedClassName());
      o.Set("name", e->name());
      o.Set("value", IVal(e->value()));
    } else {
      throw Error("ERR_GRAPH", std::string("cannot export a constant of type ") + v.tagKind());
    }
    return o;
  }

  Napi::Object Attr(const jit::Node* n, c10::Symbol name) {
    auto o = Napi::Object::New(env);
    using A = jit::AttributeKind;
    switch (n->kindOf(name)) {
      case A::i: o.Set("kind", "i"); o.Set("value", Napi::BigInt::New(env, n->i(name))); break;
      case A::f: o.Set("kind", "f"); o.Set("value", n->f(name)); break;
      case A::s: o.Set("kind", "s"); o.Set("value", n->s(name)); break;
      case A::t: o.Set("kind", "t"); o.Set("value", WrapTensor(env, n->t(name))); break;
      case A::is: {
        o.Set("kind", "is");
        const auto& v = n->is(name);
        auto arr = Napi::Array::New(env, v.size());
        for (size_t i = 0; i < v.size(); ++i) arr.Set(i, Napi::BigInt::New(env, v[i]));
        o.Set("value", arr);
        break;
      }
      case A::fs: {
        o.Set("kind", "fs");
        const auto& v = n->fs(name);
        auto arr = Napi::Array::New(env, v.size());
        for (size_t i = 0; i < v.size(); ++i) arr.Set(i, v[i]);
        o.Set("value", arr);
        break;
      }
      case A::ss: {
        o.Set("kind", "ss");
        const auto& v = n->ss(name);
        auto arr = Napi::Array::New(env, v.size());
        for (size_t i = 0; i < v.size(); ++i) arr.Set(i, v[i]);
        o.Set("value", arr);
        break;
      }
      case A::ival: o.Set("kind", "ival"); o.Set("value", IVal(n->ival(name))); break;
      case A::ty: o.Set("kind", "ty"); o.Set("value", Type(n->ty(name))); break;
      default:
        throw Error("ERR_GRAPH", std::string("unsupported attribute kind '") + jit::toString(n->kindOf(name)) +
                                     "' for attribute '" + name.toUnqualString() + "' on " + n->kind().toQualString());
    }
    return o;
  }

  Napi::Object NodeObj(const jit::Node* n) {
    auto o = Napi::Object::New(env);
    o.Set("kind", n->kind().toQualString());
    if (n->kind().is_aten()) {
      if (auto s = n->maybeSchema()) o.Set("schema", c10::toString(*s));
    }
    auto ins = Napi::Array::New(env, n->inputs().size());
    for (size_t i = 0; i < n->inputs().size(); ++i) ins.Set(i, Napi::Number::New(env, static_cast<double>(n->input(i)->unique())));
    o.Set("inputs", ins);
    auto outs = Napi::Array::New(env, n->outputs().size());
    for (size_t i = 0; i < n->outputs().size(); ++i) outs.Set(i, ValueObj(n->output(i)));
    o.Set("outputs", outs);
    auto attrs = Napi::Object::New(env);
    for (auto name : n->attributeNames()) attrs.Set(name.toUnqualString(), Attr(n, name));
    o.Set("attrs", attrs);
    auto blocks = Napi::Array::New(env, n->blocks().size());
    for (size_t i = 0; i < n->blocks().size(); ++i) blocks.Set(i, BlockObj(n->blocks()[i]));
    o.Set("blocks", blocks);
    if (auto cs = n->callstack()) {
      auto frames = Napi::Array::New(env);
      std::string path;
      for (const auto& e : (*cs)->vec()) {
        const auto& mi = std::get<2>(e);
        if (!mi) continue;
        path = path.empty() ? mi->instance_name() : path + "." + mi->instance_name();
        auto f = Napi::Object::New(env);
        f.Set("path", path);
        auto cn = mi->class_type() ? mi->class_type()->name() : std::nullopt;
        f.Set("cls", cn ? cn->qualifiedName() : "");
        f.Set("method", std::get<0>(e) ? std::get<0>(e)->name() : "forward");
        frames.Set(frames.Length(), f);
      }
      o.Set("scope", frames);
    }
    if (auto flc = n->sourceRange().file_line_col()) {
      o.Set("source", std::get<0>(*flc) + ":" + std::to_string(std::get<1>(*flc)));
    }
    return o;
  }

  Napi::Object BlockObj(const jit::Block* b) {
    auto o = Napi::Object::New(env);
    auto ins = Napi::Array::New(env, b->inputs().size());
    for (size_t i = 0; i < b->inputs().size(); ++i) ins.Set(i, ValueObj(b->inputs()[i]));
    o.Set("inputs", ins);
    auto outs = Napi::Array::New(env, b->outputs().size());
    for (size_t i = 0; i < b->outputs().size(); ++i) outs.Set(i, Napi::Number::New(env, static_cast<double>(b->outputs()[i]->unique())));
    o.Set("outputs", outs);
    auto nodes = Napi::Array::New(env);
    for (const auto* n : b->nodes()) nodes.Set(nodes.Length(), NodeObj(n));
    o.Set("nodes", nodes);
    return o;
  }
};

// ----------------------------------------------------------------------------- build

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
  // same layout (two members, same types and order: torch/csrc/jit/ir/scope.h).
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

// ------------------------------------------------------------------------ Graph object

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
    return Guard(info.Env(), [&]() -> Napi::Value { return Exporter{info.Env()}.BlockObj(built()->graph->block()); });
  }

  Napi::Value Dispose(const Napi::CallbackInfo& info) {
    built_.reset();
    return info.Env().Undefined();
  }
};

}  // namespace

Napi::Object ExportGraph(Napi::Env env, const torch::jit::Graph& g) {
  return Exporter{env}.BlockObj(g.block());
}

namespace {
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

// Describe a value computed by a shape run: tensors by dtype/shape/device, scalars and
// int lists by value. Must run on the JS thread.
Napi::Value DescribeValue(Napi::Env env, const c10::IValue& v) {
  auto o = Napi::Object::New(env);
  if (v.isTensor() && v.toTensor().defined()) {
    const auto& t = v.toTensor();
    o.Set("kind", "Tensor");
    auto shape = Napi::Array::New(env, t.dim());
    for (int64_t i = 0; i < t.dim(); ++i) shape.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(t.size(i))));
    o.Set("shape", shape);
    o.Set("dtype", DTypeName(t.scalar_type()));
    o.Set("bytes", Napi::Number::New(env, static_cast<double>(t.numel() * t.element_size())));
    if (t.is_mkldnn()) {
      // oneDNN's opaque layout (prepacked weights) has neither strides nor a storage.
      o.Set("layout", "mkldnn");
      o.Set("storageBytes", Napi::Number::New(env, static_cast<double>(t.nbytes())));
    } else {
      auto strides = Napi::Array::New(env, t.dim());
      for (int64_t i = 0; i < t.dim(); ++i) strides.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(t.stride(i))));
      o.Set("strides", strides);
      o.Set("storageBytes", Napi::Number::New(env, static_cast<double>(t.storage().nbytes())));
    }
  } else if (v.isInt()) { o.Set("kind", "Int"); o.Set("value", Napi::Number::New(env, static_cast<double>(v.toInt()))); }
  else if (v.isDouble()) { o.Set("kind", "Float"); o.Set("value", v.toDouble()); }
  else if (v.isBool()) { o.Set("kind", "Bool"); o.Set("value", v.toBool()); }
  else if (v.isIntList()) {
    o.Set("kind", "IntList");
    auto l = v.toIntList();
    auto arr = Napi::Array::New(env, l.size());
    for (size_t i = 0; i < l.size(); ++i) arr.Set(i, Napi::Number::New(env, static_cast<double>(l.get(i))));
    o.Set("value", arr);
  } else if (v.isNone()) { o.Set("kind", "None"); }
  else { o.Set("kind", "Other"); o.Set("repr", v.tagKind()); }
  return o;
}

c10::IValue MetaLike(const c10::IValue& v) {
  if (v.isTensor()) {
    const auto& t = v.toTensor();
    if (!t.defined() || t.is_meta()) return v;
    // An opaque oneDNN tensor (a prepacked weight) has no strides: its meta twin is dense.
    if (t.is_mkldnn()) return at::empty(t.sizes(), at::TensorOptions().dtype(t.scalar_type()).device(at::kMeta));
    return at::empty_strided(t.sizes(), t.strides(), t.options().device(at::kMeta));
  }
  return v;
}

bool IsOpaqueTensor(const c10::IValue& v) { return v.isTensor() && v.toTensor().defined() && v.toTensor().is_mkldnn(); }

// Prepacked (oneDNN) weight constants read as meta in a shape run: a real opaque weight would
// send the op to its oneDNN kernel, which cannot take meta activations.
void MetaizeOpaqueConstants(jit::Block* block) {
  for (auto* n : block->nodes()) {
    for (auto* b : n->blocks()) MetaizeOpaqueConstants(b);
    if (n->kind() != c10::prim::Constant || n->outputs().size() != 1) continue;
    auto iv = jit::toIValue(n->output());
    if (!iv || !IsOpaqueTensor(*iv)) continue;
    jit::WithInsertPoint guard(n);
    Value* c = block->owningGraph()->insertConstant(MetaLike(*iv));
    c->setType(c10::TensorType::get());
    n->output()->replaceAllUsesWith(c);
  }
}

// A real tensor standing in for a meta one, for an op that has no meta kernel. Its values
// are zeros: only shapes are wanted.
c10::IValue Materialize(const c10::IValue& v) {
  if (v.isTensor() && v.toTensor().is_meta()) {
    const auto& t = v.toTensor();
    return at::zeros_like(at::empty_strided(t.sizes(), t.strides(), t.options().device(at::kCPU)));
  }
  if (v.isTensorList()) {
    c10::List<at::Tensor> l;
    for (const at::Tensor& t : v.toTensorList()) l.push_back(Materialize(t).toTensor());
    return l;
  }
  return v;
}

c10::IValue Metaize(const c10::IValue& v) {
  if (v.isTensor()) return MetaLike(v);
  if (v.isTuple()) {
    std::vector<c10::IValue> items;
    for (const auto& e : v.toTupleRef().elements()) items.push_back(Metaize(e));
    return c10::ivalue::Tuple::create(std::move(items));
  }
  return v;
}

struct InferResult {
  std::vector<c10::IValue> values;
  std::map<std::string, int> fallbacks;
};

// Straight-line graphs: run node by node on meta tensors; an op without a meta kernel runs
// on zero-filled real tensors of the same shapes and its outputs go back to meta. Module
// calls run their method graphs the same way. Only parameters become meta: constants and
// sizes stay real, so size arithmetic (aten::size -> NumToTensor -> Int) stays exact.
std::vector<c10::IValue> RunNodesOnMeta(const jit::Graph& g, std::vector<c10::IValue> inputs,
                                        std::unordered_map<const Value*, c10::IValue>& env, InferResult& out) {
  for (size_t i = 0; i < g.inputs().size(); ++i) env[g.inputs()[i]] = MetaLike(inputs[i]);
  for (auto* n : g.nodes()) {
    if (n->kind() == c10::prim::GetAttr) {
      c10::IValue obj = env.at(n->input(0));
      env[n->output()] = MetaLike(obj.toObject()->getAttr(n->s(c10::attr::name)));
      continue;
    }
    if (n->kind() == c10::prim::Constant) {
      env[n->output()] = *jit::toIValue(n->output());
      continue;
    }
    if (n->kind() == c10::prim::CallMethod) {
      auto cls = n->input(0)->type()->expect<c10::ClassType>();
      auto& callee = jit::toGraphFunction(cls->getMethod(n->s(c10::attr::name)));
      std::vector<c10::IValue> args;
      for (auto* in : n->inputs()) args.push_back(env.at(in));
      std::unordered_map<const Value*, c10::IValue> inner;
      auto results = RunNodesOnMeta(*callee.graph(), std::move(args), inner, out);
      for (size_t i = 0; i < n->outputs().size(); ++i) env[n->output(i)] = results.at(i);
      continue;
    }
    // Structural ops are interpreter instructions, not operators.
    if (n->kind() == c10::prim::ListConstruct) {
      c10::impl::GenericList l(n->output()->type()->containedTypes()[0]);
      for (auto* in : n->inputs()) l.push_back(env.at(in));
      env[n->output()] = l;
      continue;
    }
    if (n->kind() == c10::prim::TupleConstruct) {
      std::vector<c10::IValue> items;
      for (auto* in : n->inputs()) items.push_back(env.at(in));
      env[n->output()] = c10::ivalue::Tuple::create(std::move(items));
      continue;
    }
    if (n->kind() == c10::prim::TupleUnpack || n->kind() == c10::prim::ListUnpack) {
      const auto& v = env.at(n->input(0));
      auto items = v.isTuple() ? v.toTupleRef().elements().vec() : v.toListRef().vec();
      for (size_t i = 0; i < n->outputs().size(); ++i) env[n->output(i)] = items.at(i);
      continue;
    }
    if (!n->blocks().empty() || !n->maybeOperator())
      throw Error("ERR_GRAPH", std::string("no node-by-node execution for ") + n->kind().toQualString());
    jit::Stack stack;
    for (auto* in : n->inputs()) stack.push_back(env.at(in));
    bool onMeta = true;
    try {
      n->getOperation()(stack);
    } catch (const std::exception&) {
      // Only a missing meta kernel is worth a real run; other errors are real errors.
      bool anyMeta = false;
      for (auto* in : n->inputs()) {
        const auto& v = env.at(in);
        anyMeta |= (v.isTensor() && v.toTensor().defined() && v.toTensor().is_meta()) || v.isTensorList();
      }
      if (!anyMeta) throw;
      out.fallbacks[n->kind().toQualString()]++;
      onMeta = false;
      stack.clear();
      for (auto* in : n->inputs()) stack.push_back(Materialize(env.at(in)));
      try {
        n->getOperation()(stack);
      } catch (const std::exception& e) {
        throw Error("ERR_GRAPH", std::string("shape inference failed at ") + n->kind().toQualString() + ": " + e.what());
      }
    }
    // Outputs of a stand-in run go back to meta.
    for (size_t i = 0; i < n->outputs().size(); ++i) env[n->output(i)] = onMeta ? stack[i] : Metaize(stack[i]);
  }
  std::vector<c10::IValue> results;
  for (auto* o : g.outputs()) results.push_back(env.at(o));
  return results;
}

}  // namespace

// inferValues(module, graphData, inputs, {nodeByNode, metaParameters}) -> Promise<{values: description[], fallbacks}>
// Runs a graph made for a shape run (lib/torchscript/shape-run.ts: it returns one tuple of the
// values to describe) and describes each element. nodeByNode: node by node, where an op without
// a meta kernel runs on zeros (RunNodesOnMeta); otherwise the whole graph through the
// interpreter. metaParameters: tensors read from `self` are meta tensors of the same shape.
Napi::Value InferValues(Napi::Env env, const torch::jit::Module& module, Napi::Object data, Napi::Array inputs,
                        bool nodeByNode, bool metaParameters) {
  Builder b = MakeBuilder(env, data, module);
  auto g = b.g;
  if (g->outputs().size() != 1 || g->outputs()[0]->type()->kind() != c10::TypeKind::TupleType)
    throw Error("ERR_INVALID_ARG", "a shape-run graph returns one tuple");
  bool takesSelf = !g->inputs().empty() && g->inputs()[0]->type()->kind() == c10::TypeKind::ClassType;
  auto stack = std::make_shared<std::vector<c10::IValue>>();
  if (takesSelf) stack->push_back(module._ivalue());
  for (uint32_t i = 0; i < inputs.Length(); ++i) stack->push_back(FromJs(env, inputs.Get(i)));
  if (stack->size() != g->inputs().size()) throw Error("ERR_INVALID_ARG", "wrong number of inputs for shape inference");
  if (metaParameters && takesSelf && !nodeByNode) {
    // Parameter reads become meta constants so that nothing real is touched.
    std::unordered_map<const Value*, c10::IValue> objs;
    objs[g->inputs()[0]] = module._ivalue();
    for (auto* n : g->nodes()) {
      if (n->kind() != c10::prim::GetAttr) continue;
      auto it = objs.find(n->input(0));
      if (it == objs.end() || !it->second.isObject()) continue;
      c10::IValue val = it->second.toObject()->getAttr(n->s(c10::attr::name));
      if (val.isTensor()) {
        jit::WithInsertPoint guard(n);
        Value* c = g->insertConstant(MetaLike(val));
        c->setType(c10::TensorType::get());
        n->output()->replaceAllUsesWith(c);
      } else {
        objs[n->output()] = val;
      }
    }
  }
  if (nodeByNode || metaParameters) MetaizeOpaqueConstants(g->block());
  auto result = std::make_shared<InferResult>();
  jit::Module mod = module;
  return PromiseWorker::Run(
      env,
      [g, stack, result, nodeByNode, mod] {
        c10::InferenceMode guard;
        SharedRunLock shared;  // a shape run on real tensors allocates: never during a measured run
        c10::IValue out;
        if (nodeByNode) {
          std::unordered_map<const Value*, c10::IValue> values;
          out = RunNodesOnMeta(*g, *stack, values, *result).at(0);
        } else {
          jit::GraphFunction fn("torchgraph_infer", g, nullptr);
          fn.run(*stack);
          out = stack->back();
        }
        result->values = out.toTupleRef().elements().vec();
      },
      [result](Napi::Env env) -> Napi::Value {
        auto o = Napi::Object::New(env);
        auto arr = Napi::Array::New(env, result->values.size());
        for (size_t i = 0; i < result->values.size(); ++i) arr.Set(i, DescribeValue(env, result->values[i]));
        o.Set("values", arr);
        auto fb = Napi::Object::New(env);
        for (const auto& kv : result->fallbacks) fb.Set(kv.first, kv.second);
        o.Set("fallbacks", fb);
        return o;
      });
}

std::shared_ptr<torch::jit::Graph> BuildGraph(Napi::Env env, Napi::Object data, const torch::jit::Module& module) {
  return MakeBuilder(env, data, module).g;
}

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
