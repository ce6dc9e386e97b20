// Graph export: torch::jit::Graph -> plain JS data (lib/core/ir/serialized.ts): values with
// their types, nodes with their constants, attributes, blocks, module call stacks and sources.
#include "graph_export.h"

namespace tg {
namespace {

using torch::jit::Value;
namespace jit = torch::jit;

// "file:line" of the code that produced a node. A loaded TorchScript file's graph points at the
// code TorchScript wrote into the archive (code/__torch__/...); its debug records keep the range
// that generated each line (the user's .py for scripted code, the traced call's frame for traced
// code), which is followed back as far as it goes.
std::optional<std::string> SourceLine(const torch::jit::SourceRange& node_range) {
  torch::jit::SourceRange range = node_range;
  for (int hops = 0; hops < 8; ++hops) {
    auto from = range.findSourceRangeThatGenerated();
    if (!from || !from->source() || *from == range) break;
    range = *from;
  }
  // A range with no file (a traced module call is recorded as ":0") names nothing.
  auto named = [](const torch::jit::SourceRange& r) {
    auto flc = r.file_line_col();
    return flc && !std::get<0>(*flc).empty() ? flc : std::nullopt;
  };
  auto flc = named(range);
  if (!flc) flc = named(node_range);
  if (!flc) return std::nullopt;
  return std::get<0>(*flc) + ":" + std::to_string(std::get<1>(*flc));
}

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
    if (auto src = SourceLine(n->sourceRange())) o.Set("source", *src);
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

}  // namespace

Napi::Object ExportGraph(Napi::Env env, const torch::jit::Graph& g) {
  return Exporter{env}.BlockObj(g.block());
}

}  // namespace tg
