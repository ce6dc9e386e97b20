// Loading a TorchScript file with every failure as one clear ERR_LOAD line, and describing a
// loaded module (its submodule tree, a submodule by path) for JS.
#include "module_load.h"

#include <caffe2/serialize/inline_container.h>
#include <torch/csrc/jit/runtime/graph_iterator.h>
#include <sys/stat.h>

#include <cerrno>
#include <unordered_map>

namespace tg {
namespace {

// Why a file is not loadable TorchScript, as one line with a hint where the cause is known.
// lib/torchscript/module.ts adds what the archive's listing says (a torch.export program, ...).
std::string LoadFailure(const std::string& why) {
  if (why.find("not one torch wrote)") != std::string::npos) return why;  // TorchMessageLine gave the hint
  if (why.find("Unknown builtin op") != std::string::npos)
    return why + " (the model calls a custom op that is not registered in this process: load the library that "
                 "defines it first, or export the model without it)";
  // The TorchScript compiler's errors end their first line with "here:" (the source follows).
  if (why.size() >= 5 && why.compare(why.size() - 5, 5, "here:") == 0)
    return why + " (the TorchScript source in the archive's code/ does not compile: the file is damaged, or was "
                 "written by an incompatible torch)";
  // data.pkl names a tensor record the archive lacks: a TorchScript archive with a part missing.
  if (why.find("failed locating file data/") != std::string::npos || why.find("failed locating file constants/") != std::string::npos)
    return why + " (the archive is damaged: a tensor record is missing)";
  if (why.find("constants.pkl") != std::string::npos || why.find("code/") != std::string::npos ||
      why.find("PytorchStreamReader failed locating file") != std::string::npos)
    return why + " (this looks like a torch.save() checkpoint, not a TorchScript archive: export the model with "
                 "torch.jit.trace or torch.jit.script and torch.jit.save)";
  if (why.find("central directory") != std::string::npos || why.find("zip archive") != std::string::npos ||
      why.find("file_size") != std::string::npos)
    return why + " (not a TorchScript zip archive, or a truncated one)";
  if (why.find("unpickling") != std::string::npos || why.find("pickle") != std::string::npos)
    return why + " (the archive's data.pkl is damaged)";
  return why + " (the archive is damaged, or was written by an incompatible torch)";
}

std::string ClassName(const torch::jit::Module& m) {
  auto n = m.type()->name();
  return n ? n->qualifiedName() : "<anonymous>";
}

Napi::Object TensorInfo(Napi::Env env, const std::string& name, const at::Tensor& t) {
  auto o = Napi::Object::New(env);
  o.Set("name", name);
  auto shape = Napi::Array::New(env, t.dim());
  for (int64_t i = 0; i < t.dim(); ++i) shape.Set(static_cast<uint32_t>(i), Napi::Number::New(env, static_cast<double>(t.size(i))));
  o.Set("shape", shape);
  o.Set("dtype", DTypeName(t.scalar_type()));
  o.Set("device", t.device().str());
  o.Set("bytes", Napi::Number::New(env, static_cast<double>(t.nbytes())));
  return o;
}

// libtorch gives each tensor of an archive the bytes data.pkl (or constants.pkl) says it has and
// reads its record into a buffer of the record's own size, without comparing the two: a record
// cut short loads, then a run reads past its end (a segfault, or numbers from whatever lies
// there). So the storages the module holds (attributes, and tensor constants of its code), each
// counted once, must not need more bytes than the archive's tensor records hold together.
using StorageBytes = std::unordered_map<const c10::StorageImpl*, size_t>;

void CollectStorages(const c10::IValue& v, StorageBytes& out) {
  if (v.isTensor()) {
    const at::Tensor& t = v.toTensor();
    if (t.defined() && t.has_storage()) out.emplace(t.storage().unsafeGetStorageImpl(), t.storage().nbytes());
  } else if (v.isTensorList() || v.isList()) {
    for (const c10::IValue& e : v.toListRef()) CollectStorages(e, out);
  } else if (v.isTuple()) {
    for (const c10::IValue& e : v.toTupleRef().elements()) CollectStorages(e, out);
  } else if (v.isGenericDict()) {
    for (const auto& kv : v.toGenericDict()) CollectStorages(kv.value(), out);
  } else if (v.isObject()) {
    auto obj = v.toObject();
    for (size_t i = 0; i < obj->type()->numAttributes(); ++i) CollectStorages(obj->getSlot(i), out);
  }
}

void CollectConstantStorages(const torch::jit::Module& m, StorageBytes& out) {
  for (const auto& method : m.get_methods()) {
    std::shared_ptr<torch::jit::Graph> graph = method.graph();
    for (torch::jit::DepthFirstGraphNodeIterator it(graph);;) {
      torch::jit::Node* n = it.next();
      if (!n) break;
      if (n->kind() == c10::prim::Constant && n->hasAttribute(c10::attr::value) && n->kindOf(c10::attr::value) == torch::jit::AttributeKind::t)
        CollectStorages(n->t(c10::attr::value), out);
    }
  }
  for (const auto& c : m.named_children()) CollectConstantStorages(c.value, out);
}

void CheckRecordsHoldTensors(const torch::jit::Module& m, const std::string& path) {
  StorageBytes storages;
  CollectStorages(m._ivalue(), storages);
  CollectConstantStorages(m, storages);
  size_t need = 0;
  for (const auto& s : storages) need += s.second;
  caffe2::serialize::PyTorchStreamReader reader(path);
  size_t held = 0;
  for (const std::string& r : reader.getAllRecords()) {
    if (r.rfind("data/", 0) == 0 || r.rfind("constants/", 0) == 0) held += reader.getRecordSize(r);
  }
  if (need > held)
    throw Error("ERR_LOAD", "cannot load '" + path + "' as TorchScript: its tensors need " + std::to_string(need) +
                                " bytes, its tensor records hold " + std::to_string(held) + " (the archive is damaged: a record was cut short)");
}

}  // namespace

// The first non-empty line of a libtorch message, without miniz's paragraph of generic advice or
// c10's "(Could this error message be improved? ...)", with a hint where the zip reader's own
// words are all there is.
std::string TorchMessageLine(const std::string& msg) {
  std::string line = "unknown error";
  for (size_t start = 0; start < msg.size();) {
    size_t nl = msg.find('\n', start);
    std::string l = msg.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
    if (l.find_first_not_of(" \t\r") != std::string::npos) { line = l; break; }
    if (nl == std::string::npos) break;
    start = nl + 1;
  }
  for (const char* boilerplate : {" This is an internal miniz error", "  (Could this error message be improved?"}) {
    auto at = line.find(boilerplate);
    if (at != std::string::npos) line = line.substr(0, at);
  }
  // c10's TORCH_CHECK prefix ("[enforce fail at inline_container.cc:180] . ") names our caller's caller.
  if (line.rfind("[enforce fail at ", 0) == 0) {
    auto end = line.find("] . ");
    if (end != std::string::npos) line = line.substr(end + 4);
  }
  if (line.find("hasRecord(\"version\")") != std::string::npos || line.find("is not in a subdirectory") != std::string::npos)
    line += " (a zip archive, but not one torch wrote)";
  return line;
}

// A path that names a regular, non-empty file, or ERR_LOAD with what it names instead: a FIFO
// would block a reader, a device would be read without end.
void CheckModelFile(const std::string& path, const std::string& what) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) {
    int err = errno;
    if (err == ELOOP) throw Error("ERR_LOAD", what + ": a symlink loop");
    if (err == EACCES) throw Error("ERR_LOAD", what + ": permission denied");
    if (err == ENOTDIR) throw Error("ERR_LOAD", what + ": a parent of it is not a directory");
    throw Error("ERR_LOAD", what + ": no such file");
  }
  if (S_ISDIR(st.st_mode)) throw Error("ERR_LOAD", what + ": it is a directory");
  if (!S_ISREG(st.st_mode)) throw Error("ERR_LOAD", what + ": not a regular file (a FIFO, device or socket)");
  if (st.st_size == 0) throw Error("ERR_LOAD", what + ": the file is empty");
}

// torch::jit::load with every failure as ERR_LOAD naming the file: only regular files are opened
// (a FIFO would block, a device would be read without end), and any exception libtorch raises
// (c10::Error, the TorchScript compiler's ErrorReport for a damaged code/ entry or an unknown op,
// the unpickler's errors) is a bad file, not an internal error.
torch::jit::Module LoadFile(const std::string& path, at::Device device, torch::jit::ExtraFilesMap* extra) {
  const std::string what = "cannot load '" + path + "'";
  CheckModelFile(path, what);
  try {
    torch::jit::Module m = torch::jit::load(path, device, *extra);
    CheckRecordsHoldTensors(m, path);
    return m;
  } catch (const c10::Error& e) {
    throw Error("ERR_LOAD", what + " as TorchScript: " + LoadFailure(TorchMessageLine(e.what_without_backtrace())));
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error("ERR_LOAD", what + " as TorchScript: " + LoadFailure(TorchMessageLine(e.what())));
  }
}

// The submodule tree with class names, direct parameters/buffers and plain scalar
// attributes (num_heads, batch_first, ... survive in scripted modules, not traced ones).
Napi::Object ModuleTree(Napi::Env env, const torch::jit::Module& m, const std::string& name, const std::string& path) {
  auto o = Napi::Object::New(env);
  o.Set("name", name);
  o.Set("path", path);
  o.Set("type", ClassName(m));
  o.Set("training", Napi::Boolean::New(env, m.is_training()));
  auto params = Napi::Array::New(env);
  for (const auto& p : m.named_parameters(/*recurse=*/false)) params.Set(params.Length(), TensorInfo(env, p.name, p.value));
  o.Set("parameters", params);
  auto buffers = Napi::Array::New(env);
  for (const auto& p : m.named_buffers(/*recurse=*/false)) buffers.Set(buffers.Length(), TensorInfo(env, p.name, p.value));
  o.Set("buffers", buffers);
  auto attrs = Napi::Object::New(env);
  auto type = m.type();
  for (size_t i = 0; i < type->numAttributes(); ++i) {
    if (type->is_parameter(i) || type->is_buffer(i)) continue;
    const auto& an = type->getAttributeName(i);
    c10::IValue v = m._ivalue()->getSlot(i);
    if (v.isInt() || v.isDouble() || v.isBool() || v.isString() || v.isNone()) attrs.Set(an, ToJs(env, v));
  }
  // Class constants (__constants__ such as MultiheadAttention.batch_first) are part of the
  // type, not the object.
  for (size_t i = 0; i < type->numConstants(); ++i) {
    c10::IValue v = type->getConstant(i);
    if (v.isInt() || v.isDouble() || v.isBool() || v.isString() || v.isNone()) attrs.Set(type->getConstantName(i), ToJs(env, v));
  }
  o.Set("attributes", attrs);
  auto children = Napi::Array::New(env);
  for (const auto& c : m.named_children())
    children.Set(children.Length(), ModuleTree(env, c.value, c.name, path.empty() ? c.name : path + "." + c.name));
  o.Set("children", children);
  auto methods = Napi::Array::New(env);
  for (const auto& meth : m.get_methods()) methods.Set(methods.Length(), meth.name());
  o.Set("methods", methods);
  return o;
}

torch::jit::Module Submodule(const torch::jit::Module& root, const std::string& path) {
  torch::jit::Module m = root;
  if (path.empty()) return m;
  size_t start = 0;
  while (start <= path.size()) {
    size_t dot = path.find('.', start);
    std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    bool found = false;
    for (const auto& c : m.named_children()) {
      if (c.name == part) { m = c.value; found = true; break; }
    }
    if (!found) throw Error("ERR_INVALID_ARG", "no submodule '" + part + "' in path '" + path + "'");
    if (dot == std::string::npos) break;
    start = dot + 1;
  }
  return m;
}

}  // namespace tg
