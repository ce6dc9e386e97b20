// The shape runner: a graph built for a shape run (lib/torchscript/shape-run.ts) runs with
// meta tensors, whole or node by node, and each value it returns is described as plain data.
#include "shape_run.h"

#include "graph_build.h"

#include <torch/csrc/jit/api/function_impl.h>

#include <map>
#include <unordered_map>

namespace tg {
namespace {

using torch::jit::Value;
namespace jit = torch::jit;

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
  auto g = BuildGraph(env, data, module);
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

}  // namespace tg
