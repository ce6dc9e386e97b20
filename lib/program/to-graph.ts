// model.json's graph -> our Graph, in the shape TorchScript graphs come in: input 0 is `self`
// (the module tree rebuilt from the program's weights and nn_module_stack), parameters,
// buffers and constants are prim::GetAttr reads of it, user inputs keep the signature's names,
// and every ATen node carries the schema libtorch registers for its overload, with the
// arguments the program left out filled with the schema's defaults. Node scopes come from
// nn_module_stack, so the module a node came from is known as in an inlined TorchScript graph.
import { Graph, type Value } from '../core/ir';
import type { ScopeFrame, TypeData } from '../core/ir/serialized';
import { parseSchema, type OpSchema } from '../core/ops/schema';
import { TorchGraphError } from '../core/errors';
import type { NativeOpDefault } from '../torchscript/binding';
import {
  c10Layout, c10MemoryFormat, c10ScalarType, dtypeOf, parseModuleStack, sourceOf, symInt,
  type Argument, type ModelJson, type SerializedGraph, type SerializedNode, type SymArg, type TensorMeta,
} from './format';
import { boundTensors, moduleClasses, splitTarget, type ProgramTensorRef } from './module-tree';

export type { ProgramTensorRef };

/** libtorch's schema of an overload with its defaults (native opSchema), or null. */
export type SchemaLookup = (name: string, overload: string) => { text: string; defaults: (NativeOpDefault | undefined)[] } | null;

export interface ProgramGraph {
  graph: Graph;
  /** Module tree, parents first: dotted path and TorchScript class name. */
  modules: { path: string; cls: string }[];
  tensors: ProgramTensorRef[];
  /** User input names, in order. */
  inputNames: string[];
  /** Export-time assertions left out, by target. */
  dropped: Record<string, number>;
}

/** Python operator targets of symbolic-size arithmetic, as TorchScript int ops. */
const SYM_OPS: Record<string, string> = {
  '_operator.mul': 'aten::mul.int', '_operator.add': 'aten::add.int', '_operator.sub': 'aten::sub.int',
  '_operator.floordiv': 'aten::floordiv.int', '_operator.mod': 'aten::remainder.int',
  // Comparisons of sizes (torch's TorchScript converter writes them for size checks).
  '_operator.ge': 'aten::ge.int', '_operator.gt': 'aten::gt.int', '_operator.le': 'aten::le.int', '_operator.lt': 'aten::lt.int',
  '_operator.eq': 'aten::eq.int', '_operator.ne': 'aten::ne.int', '_operator.neg': 'aten::neg.int',
};

const TENSOR: TypeData = { kind: 'Tensor' };
/** Assertions the exporter inserts (torch.export's _assert_tensor_metadata, _assert_scalar, ...). */
const DROPPED = /^aten::(_assert_\w+|sym_constrain_range\w*)$/;

/** A float of model.json: a number, or "Infinity" / "-Infinity" / "NaN" (JSON has no literal for them). */
export function float(x: number | string): number {
  return typeof x === 'number' ? x : Number(x);
}

const INT64_MAX = 2n ** 63n - 1n;
/** An int of model.json as int64. JSON.parse reads sys.maxsize (slice ends) as 2^63, past int64: clamp. */
export function int64(x: number): bigint {
  const b = BigInt(Math.trunc(x));
  return b > INT64_MAX ? INT64_MAX : b < -INT64_MAX - 1n ? -INT64_MAX - 1n : b;
}

export function tensorType(meta: TensorMeta | undefined): TypeData {
  if (!meta) return TENSOR;
  const dtype = dtypeOf(meta.dtype);
  return { kind: 'Tensor', ...(dtype ? { dtype } : {}), shape: meta.sizes.map(symInt), strides: meta.strides.map(symInt) };
}

function loadError(what: string, fix: string): TorchGraphError {
  return new TorchGraphError('ERR_LOAD', `${what}. ${fix}`);
}

/** "torch.ops.aten.linear.default" -> ["aten::linear", ""]; undefined for other targets. */
export function opOfTarget(target: string): [string, string] | undefined {
  const m = /^torch\.ops\.([A-Za-z0-9_]+)\.([A-Za-z0-9_]+)\.([A-Za-z0-9_]+)$/.exec(target);
  if (m && m[1] !== 'higher_order') return [`${m[1]}::${m[2]}`, m[3] === 'default' ? '' : m[3]];
  const sym = SYM_OPS[target];
  if (sym) {
    const dot = sym.indexOf('.');
    return [sym.slice(0, dot), sym.slice(dot + 1)];
  }
  return undefined;
}

class GraphWriter {
  readonly g = new Graph();
  /** Values by name; a wrapped region (inlineGradModeRegion) writes into a namespace of its own. */
  values = new Map<string, Value>();
  /** Tensor metadata by name, of the graph being written (a region's subgraph has its own). */
  tensorValues: Record<string, TensorMeta>;
  /** The scope of the node being written: its constants and lists belong to the same module call. */
  current: { scope?: ScopeFrame[] } = {};
  /** Nodes left out (export-time assertions), by target. */
  readonly dropped = new Map<string, number>();
  private readonly schemas = new Map<string, { schema: OpSchema; defaults: (NativeOpDefault | undefined)[] } | null>();

  constructor(private readonly program: ModelJson, private readonly lookup: SchemaLookup, private readonly classes: Map<string, string>,
    private readonly targetDevice?: string) {
    this.tensorValues = program.graph_module.graph.tensor_values;
  }

  schemaOf(kind: string, overload: string) {
    const key = `${kind}.${overload}`;
    if (!this.schemas.has(key)) {
      const s = this.lookup(kind, overload);
      this.schemas.set(key, s ? { schema: parseSchema(s.text), defaults: s.defaults } : null);
    }
    return this.schemas.get(key) ?? undefined;
  }

  value(name: string): Value {
    const v = this.values.get(name);
    if (!v) throw loadError(`the program uses value '${name}' before defining it`, 'The archive is damaged: save the program again.');
    return v;
  }

  define(name: string, v: Value): Value {
    this.values.set(name, v);
    return v;
  }

  meta(name: string): TensorMeta | undefined { return this.tensorValues[name]; }

  constant(v: bigint | number | boolean | string | null | bigint[] | number[]): Value {
    if (!Array.isArray(v)) return this.g.insertConstant(v, this.current);
    // List constants as TorchScript holds them: an IValue attribute (the interpreter reads no 'is' lists).
    const ints = v.every((x) => typeof x === 'bigint');
    const elem: TypeData = { kind: ints ? 'Int' : 'Float' };
    const items = v.map((x) => (ints ? { type: 'int' as const, value: x as bigint } : { type: 'float' as const, value: x as number }));
    return this.g.createNode('prim::Constant', [], [{ kind: 'List', elem }],
      { value: { kind: 'ival', value: { type: 'list', items, elem } } }, this.current).output;
  }

  list(items: Value[], elem: TypeData): Value {
    return this.g.createNode('prim::ListConstruct', items, [{ kind: 'List', elem }], {}, this.current).output;
  }

  sym(a: SymArg, kind: 'Int' | 'Float' | 'Bool'): Value {
    if (a.as_name !== undefined) return this.value(a.as_name);
    if (kind === 'Int') return this.constant(int64(a.as_int ?? 0));
    if (kind === 'Float') return this.constant(float(a.as_float ?? 0));
    return this.constant(a.as_bool ?? false);
  }

  device(d: { type: string; index: number | null }): Value {
    // A program exported on one device names it in its constants (arange, new_ones, to): loaded
    // on another, they name that one (as torch.export's move_to_device_pass does).
    const given = d.index === null || d.index === undefined ? d.type : `${d.type}:${d.index}`;
    const text = this.targetDevice && (d.type === 'cpu' || d.type === 'cuda') ? this.targetDevice : given;
    return this.g.createNode('prim::Constant', [], [{ kind: 'Device' }], { value: { kind: 's', value: text } }, this.current).output;
  }

  scope(n: SerializedNode): ScopeFrame[] {
    return parseModuleStack(n.metadata?.nn_module_stack).filter((f) => f.path !== '')
      .map((f) => ({ path: f.path, cls: this.classes.get(f.path) ?? `__torch__.${f.type}`, method: 'forward' }));
  }
}

/** One argument as a value of the graph (constants inserted at the insertion point). */
function argValue(w: GraphWriter, a: Argument, where: string): Value {
  if (a.as_tensor) return w.value(a.as_tensor.name);
  if (a.as_none) return w.constant(null);
  if (a.as_tensors) return w.list(a.as_tensors.map((t) => w.value(t.name)), TENSOR);
  if (a.as_optional_tensor) return a.as_optional_tensor.as_tensor ? w.value(a.as_optional_tensor.as_tensor.name) : w.constant(null);
  if (a.as_optional_tensors) {
    const elems = a.as_optional_tensors.map((t) => (t.as_tensor ? w.value(t.as_tensor.name) : w.constant(null)));
    return w.list(elems, { kind: 'Optional', elem: TENSOR });
  }
  if (typeof a.as_int === 'number') return w.constant(int64(a.as_int));
  if (typeof a.as_float === 'number' || typeof a.as_float === 'string') return w.constant(float(a.as_float));
  if (typeof a.as_bool === 'boolean') return w.constant(a.as_bool);
  if (typeof a.as_string === 'string') return w.constant(a.as_string);
  if (a.as_ints) return w.constant(a.as_ints.map(int64));
  if (a.as_floats) return w.constant(a.as_floats.map(float));
  if (a.as_bools) return w.list(a.as_bools.map((b) => w.constant(b)), { kind: 'Bool' });
  if (a.as_strings) return w.list(a.as_strings.map((s) => w.constant(s)), { kind: 'String' });
  if (a.as_sym_int) return w.sym(a.as_sym_int, 'Int');
  if (a.as_sym_float) return w.sym(a.as_sym_float, 'Float');
  if (a.as_sym_bool) return w.sym(a.as_sym_bool, 'Bool');
  if (a.as_sym_ints) {
    const xs = a.as_sym_ints;
    if (xs.every((x) => x.as_name === undefined)) return w.constant(xs.map((x) => int64(x.as_int ?? 0)));
    return w.list(xs.map((x) => w.sym(x, 'Int')), { kind: 'Int' });
  }
  if (a.as_sym_floats) return w.list(a.as_sym_floats.map((x) => w.sym(x, 'Float')), { kind: 'Float' });
  if (a.as_device) return w.device(a.as_device);
  const enumCode = typeof a.as_scalar_type === 'number' ? c10ScalarType(a.as_scalar_type)
    : typeof a.as_memory_format === 'number' ? c10MemoryFormat(a.as_memory_format)
    : typeof a.as_layout === 'number' ? c10Layout(a.as_layout) : undefined;
  if (enumCode !== undefined) return w.constant(BigInt(enumCode));
  const kind = Object.keys(a).find((k) => a[k] !== undefined && a[k] !== null) ?? 'an empty argument';
  throw loadError(`${where}: cannot read argument of kind ${kind}`,
    'torchgraph reads programs of plain ATen ops (no control flow, custom objects or higher-order ops): export without them');
}

/** A schema default as a value. */
function defaultValue(w: GraphWriter, d: NativeOpDefault, type: string, where: string): Value {
  switch (d.type) {
    case 'none': return w.constant(null);
    case 'bool': return w.constant(d.value);
    case 'int': return /^(float|float\?)$/.test(type) ? w.constant(Number(d.value)) : w.constant(d.value);
    case 'float': return w.constant(d.value);
    case 'str': return w.constant(d.value);
    case 'list': {
      const items = d.items;
      if (items.every((x) => x.type === 'int')) return w.constant(items.map((x) => (x as { value: bigint }).value));
      if (items.every((x) => x.type === 'float')) return w.constant(items.map((x) => (x as { value: number }).value));
      break;
    }
  }
  throw loadError(`${where}: cannot write the default of type ${type}`, 'Pass the argument explicitly in the model');
}

function outputType(w: GraphWriter, a: Argument): TypeData {
  if (a.as_tensor) return tensorType(w.meta(a.as_tensor.name));
  if (a.as_sym_int || typeof a.as_int === 'number') return { kind: 'Int' };
  if (a.as_sym_float || typeof a.as_float === 'number') return { kind: 'Float' };
  if (a.as_sym_bool || typeof a.as_bool === 'boolean') return { kind: 'Bool' };
  if (a.as_tensors) return { kind: 'List', elem: TENSOR };
  return TENSOR; // as_none: an output the program does not use (e.g. native_layer_norm's mean)
}

/** How many values a schema returns: "-> ()" none, "-> (Tensor, Tensor)" two, "-> Tensor" one. */
export function returnCount(schema: string): number {
  const ret = schema.slice(schema.lastIndexOf('->') + 2).trim();
  if (ret === '()') return 0;
  if (!ret.startsWith('(')) return 1;
  let depth = 0, n = 1;
  for (const c of ret.slice(1, -1)) {
    if (c === '(' || c === '[') depth++;
    else if (c === ')' || c === ']') depth--;
    else if (c === ',' && depth === 0) n++;
  }
  return n;
}

/** Append one program node (and the constants and lists its arguments need). */
function writeNode(w: GraphWriter, n: SerializedNode): void {
  const op = opOfTarget(n.target);
  const where = `node '${n.name ?? '?'}' (${n.target})`;
  const fix = 'torchgraph builds programs of ATen ops that libtorch registers for TorchScript; ' +
    'export without this op (or decompose it with ep.run_decompositions())';
  if (n.target === 'torch.ops.higher_order.wrap_with_set_grad_enabled') {
    inlineGradModeRegion(w, n, where);
    return;
  }
  if (!op && n.target.startsWith('torch.ops.higher_order.')) {
    throw loadError(`${where}: a higher-order op (control flow or a wrapped subgraph), which torchgraph cannot build`,
      'Export a model without data-dependent control flow (decide the branch in Python before export), or inline the wrapped region');
  }
  if (!op) throw loadError(`${where}: unsupported target`, fix);
  const [kind, overload] = op;
  // Export-time checks (dtype/device/range assertions that return nothing) are left out: they
  // hold for the program as exported, and as extra users they would hide attention cores.
  if (DROPPED.test(kind)) {
    w.dropped.set(n.target, (w.dropped.get(n.target) ?? 0) + 1);
    return;
  }
  const found = w.schemaOf(kind, overload);
  if (!found) throw loadError(`${where}: libtorch has no operator ${kind}${overload ? '.' + overload : ''}`, fix);
  w.current = { scope: w.scope(n) };
  let inputs: Value[];
  if (n.target.startsWith('torch.ops.')) {
    const byName = new Map(n.inputs.map((i) => [i.name, i.arg]));
    inputs = found.schema.args.map((spec, i) => {
      const given = byName.get(spec.name);
      if (given) return argValue(w, given, where);
      const d = found.defaults[i];
      if (!d) {
        throw loadError(`${where}: argument '${spec.name}' is missing and has no default`,
          'The archive is damaged or from another torch: save it again');
      }
      return defaultValue(w, d, spec.type, where);
    });
  } else {
    inputs = n.inputs.map((i) => argValue(w, i.arg, where));
  }
  const opts = { scope: w.current.scope ?? [], source: sourceOf(n.metadata?.stack_trace), schema: found.schema.text };
  // As many outputs as the schema returns (an op returning () is serialized with one as_none output).
  const returns = returnCount(found.schema.text);
  const outs = n.outputs.slice(0, returns);
  const node = w.g.createNode(kind, inputs, outs.map((o) => outputType(w, o)), {}, opts);
  outs.forEach((o, i) => defineOutput(w, o, node.outputs[i], opts));
}

/**
 * A region exported with grad mode switched (a `@torch.no_grad()` forward, such as transformers'
 * rotary and sinusoidal embeddings, exported with gradients on): its ops, written in place. Grad
 * mode changes no value, and torchgraph runs in inference mode. The subgraph is closed: its
 * inputs are the operands, its names its own.
 */
function inlineGradModeRegion(w: GraphWriter, n: SerializedNode, where: string): void {
  const sub = n.inputs.map((i) => i.arg).find((a) => a.as_graph)?.as_graph as { graph?: SerializedGraph } | undefined;
  const operands = n.inputs.map((i) => i.arg).filter((a) => !a.as_graph && typeof a.as_bool !== 'boolean');
  if (!sub?.graph || sub.graph.inputs.length !== operands.length) {
    throw loadError(`${where}: a grad-mode region without its subgraph`, 'The archive is damaged: save the program again');
  }
  const bound = operands.map((a) => argValue(w, a, where));
  const outer = w.values, outerMeta = w.tensorValues;
  w.values = new Map();
  w.tensorValues = { ...outerMeta, ...sub.graph.tensor_values };
  let results: Value[];
  try {
    sub.graph.inputs.forEach((a, i) => {
      const name = a.as_tensor?.name ?? a.as_sym_int?.as_name;
      if (!name) {
        throw loadError(`${where}: a region input of kind ${Object.keys(a).join(',')}`,
          'torchgraph inlines regions over tensors and sizes');
      }
      w.define(name, bound[i]);
    });
    for (const inner of sub.graph.nodes) writeNode(w, inner);
    results = sub.graph.outputs.flatMap((a) => (a.as_tensors ? a.as_tensors.map((t) => w.value(t.name)) : [argValue(w, a, where)]));
  } finally {
    w.values = outer;
    w.tensorValues = outerMeta;
  }
  const names = n.outputs.flatMap((a) => (a.as_tensors ? a.as_tensors.map((t) => t.name) : [a.as_tensor?.name ?? a.as_sym_int?.as_name]));
  if (names.length !== results.length) {
    throw loadError(`${where}: ${names.length} outputs for a region returning ${results.length}`,
      'The archive is damaged: save the program again');
  }
  names.forEach((name, i) => { if (name) w.define(name, results[i]); });
}

function defineOutput(w: GraphWriter, o: Argument, v: Value, opts: { scope: ScopeFrame[] }): void {
  const name = o.as_tensor?.name ?? o.as_sym_int?.as_name ?? o.as_sym_float?.as_name ?? o.as_sym_bool?.as_name;
  if (name) {
    v.name = name;
    w.define(name, v);
    return;
  }
  if (o.as_tensors) {
    const unpack = w.g.createNode('prim::ListUnpack', [v], o.as_tensors.map((t) => tensorType(w.meta(t.name))), {}, { scope: opts.scope });
    o.as_tensors.forEach((t, i) => {
      unpack.outputs[i].name = t.name;
      w.define(t.name, unpack.outputs[i]);
    });
  }
}

/** The graph of a program (see the file comment). `lookup` gives libtorch's schema of an overload;
 * `device`, when given, is where the program's device constants point. */
export function programToGraph(program: ModelJson, lookup: SchemaLookup, device?: string): ProgramGraph {
  const bound = boundTensors(program);
  const classes = moduleClasses(program, bound.map((b) => b.ref.module));
  const w = new GraphWriter(program, lookup, classes, device);
  const self = w.g.addInput({ kind: 'Class', name: classes.get('')! }, 'self');
  const inputNames = addUserInputs(w, program);
  const modules = new Map<string, Value>([['', self]]);
  const moduleValue = (path: string): Value => {
    const hit = modules.get(path);
    if (hit) return hit;
    const [parent, name] = splitTarget(path);
    const v = w.g.createNode('prim::GetAttr', [moduleValue(parent)], [{ kind: 'Class', name: classes.get(path)! }],
      { name: { kind: 's', value: name } }).output;
    v.name = path.replace(/\./g, '_');
    modules.set(path, v);
    return v;
  };
  for (const { arg, ref } of bound) {
    const v = w.g.createNode('prim::GetAttr', [moduleValue(ref.module)], [tensorType(w.meta(arg))],
      { name: { kind: 's', value: ref.name } }).output;
    v.name = arg;
    w.define(arg, v);
  }
  for (const n of program.graph_module.graph.nodes) writeNode(w, n);
  w.current = {};
  writeOutputs(w, program);
  w.g.eliminateDeadCode();
  const order = [...classes.keys()].sort((a, b) => (a === '' ? -1 : b === '' ? 1 : a.split('.').length - b.split('.').length));
  return {
    graph: w.g, modules: order.map((path) => ({ path, cls: classes.get(path)! })), tensors: bound.map((b) => b.ref),
    inputNames, dropped: Object.fromEntries(w.dropped),
  };
}

function addUserInputs(w: GraphWriter, program: ModelJson): string[] {
  const names: string[] = [];
  for (const spec of program.graph_module.signature.input_specs) {
    const s = spec as Record<string, { arg?: Argument; name?: string; value?: Argument }>;
    const [kind, body] = Object.entries(s)[0] ?? [];
    if (kind === 'parameter' || kind === 'buffer' || kind === 'tensor_constant') continue;
    if (kind === 'user_input' && body.arg?.as_tensor) {
      const name = body.arg.as_tensor.name;
      w.define(name, w.g.addInput(tensorType(w.meta(name)), name));
      names.push(name);
      continue;
    }
    throw loadError(`the program takes an input of kind ${kind}${body.arg ? ' (' + Object.keys(body.arg).join(',') + ')' : ''}`,
      'torchgraph runs programs whose user inputs are tensors (no custom objects, tokens or constant inputs): ' +
      'export with tensor arguments only');
  }
  return names;
}

function writeOutputs(w: GraphWriter, program: ModelJson): void {
  const outs: Value[] = [];
  for (const spec of program.graph_module.signature.output_specs) {
    const s = spec as Record<string, { arg: Argument }>;
    const [kind, body] = Object.entries(s)[0] ?? [];
    if (kind !== 'user_output') {
      throw loadError(`the program has a ${kind} output (it mutates state or computes gradients)`,
        'Export the model in eval mode under torch.no_grad(), without in-place updates of buffers or inputs');
    }
    outs.push(argValue(w, body.arg, 'program output'));
  }
  if (outs.length === 1) w.g.registerOutput(outs[0]);
  else w.g.registerOutput(w.g.createNode('prim::TupleConstruct', outs, [{ kind: 'Tuple', elems: outs.map((o) => o.type) }]).output);
}
