// The module structure of a program rebuilt from nn_module_stack, as torch.export.unflatten
// would: each run of nodes that one module call produced becomes a method of that module and a
// prim::CallMethod in its caller, level by level (a torch.nn leaf module's body, such as
// MultiheadAttention's, stays flat), so the program is held as a traced TorchScript module is,
// and the standard view (user modules inlined, leaf modules kept as calls) and the inlined view
// come out of the same code as for TorchScript. A module's weights are read inside its method
// from its own `self`; values from outside come in as arguments; values used after the call come
// out (a tuple when several). In place on `graph` (the flat program graph of to-graph.ts);
// returns the methods, callees first.
import { getAttrObject, Graph, type Node, type Value } from '../core/ir';
import type { ScopeFrame, TypeData } from '../core/ir/serialized';

/** Containers torch.fx traces through although they live in torch.nn (as transforms/module-calls.ts). */
const NN_CONTAINERS = new Set(['Sequential', 'ModuleList', 'ModuleDict', 'ParameterList', 'ParameterDict']);

function isLeaf(cls: string): boolean {
  return /^__torch__\.torch\.nn\.modules\./.test(cls) && !NN_CONTAINERS.has(cls.split('.').pop() ?? '');
}

export interface ProgramMethod { module: string; name: string; graph: Graph }

/** depth: frames of the nodes' scopes above the call's own (0 when the graph is the caller's method). */
interface Call { frame: ScopeFrame; depth: number; nodes: Node[] }

/** Consecutive top-level nodes of one call of a module: by the outermost frame, or with `leafOnly`
 * by the outermost leaf module's frame. */
function moduleCalls(g: Graph, leafOnly: boolean): Call[] {
  const calls: Call[] = [];
  let cur: Call | undefined;
  for (const n of g.nodes()) {
    const depth = leafOnly ? (n.scope ?? []).findIndex((f) => isLeaf(f.cls)) : n.scope?.length ? 0 : -1;
    if (depth < 0) { cur = undefined; continue; }
    const frame = n.scope![depth];
    if (!cur || cur.frame.path !== frame.path) {
      cur = { frame, depth, nodes: [] };
      calls.push(cur);
    }
    cur.nodes.push(n);
  }
  return calls;
}

/** Dotted module path of every module and tensor value read from `self` by prim::GetAttr. */
function attrPaths(g: Graph): Map<Value, string> {
  const paths = new Map<Value, string>([[g.inputs[0], '']]);
  for (const n of g.nodes()) {
    if (n.kind !== 'prim::GetAttr') continue;
    const parent = paths.get(getAttrObject(n));
    if (parent === undefined) continue;
    const name = String(n.attr('name'));
    paths.set(n.output, parent ? `${parent}.${name}` : name);
  }
  return paths;
}

const relative = (path: string, base: string) => (path === base ? '' : path.startsWith(base + '.') ? path.slice(base.length + 1) : path);

/** The method graph of one call; `args` are the outside values it takes, `outs` those it returns. */
function methodGraph(call: Call, selfType: TypeData, paths: Map<Value, string>, args: Value[], outs: Value[]): Graph {
  const m = new Graph();
  const map = new Map<Value, Value>();
  const self = m.addInput(selfType, 'self');
  const attr = (v: Value): Value => {
    // A weight of this module (or of a module inside it), read from the method's own self.
    const rel = relative(paths.get(v)!, call.frame.path).split('.');
    let cur = self;
    rel.forEach((name, i) => {
      const type = i === rel.length - 1 ? v.type : { kind: 'Class' as const, name: '' };
      cur = m.createNode('prim::GetAttr', [cur], [type], { name: { kind: 's', value: name } }).output;
    });
    cur.name = v.name;
    return cur;
  };
  for (const a of args) map.set(a, isOwnAttr(a, call, paths) ? attr(a) : m.addInput(a.type, a.name));
  for (const n of call.nodes) {
    const scope = (n.scope ?? []).slice(call.depth + 1).map((f) => ({ ...f, path: relative(f.path, call.frame.path) }));
    const c = m.createNode(n.kind, n.inputs.map((v) => map.get(v)!), n.outputs.map((o) => o.type), n.attrs,
      { schema: n.schema, source: n.source, scope, outputNames: n.outputs.map((o) => o.name) as string[] });
    n.outputs.forEach((o, i) => map.set(o, c.outputs[i]));
  }
  const results = outs.map((o) => map.get(o)!);
  if (results.length === 1) m.registerOutput(results[0]);
  else m.registerOutput(m.createNode('prim::TupleConstruct', results, [{ kind: 'Tuple', elems: results.map((r) => r.type) }]).output);
  return m;
}

function isOwnAttr(v: Value, call: Call, paths: Map<Value, string>): boolean {
  const p = paths.get(v);
  return p !== undefined && v.type.kind !== 'Class' && (p.startsWith(call.frame.path + '.'));
}

/** Class types of the intermediate GetAttrs in a method are those of the module tree. */
function fixClassTypes(m: Graph, base: string, classOf: (path: string) => string | undefined): void {
  const paths = new Map<Value, string>([[m.inputs[0], base]]);
  for (const n of m.nodes()) {
    if (n.kind !== 'prim::GetAttr') continue;
    const p = `${paths.get(getAttrObject(n))}.${String(n.attr('name'))}`;
    paths.set(n.output, p);
    if (n.output.type.kind === 'Class') n.output.type = { kind: 'Class', name: classOf(p) ?? '' };
  }
}

/** The value of the module at `path` in `g`: its GetAttr chain from self, made before `before` when missing
 * (a module without weights: Dropout, GELU, ...). */
function moduleOf(g: Graph, path: string, known: Map<string, Value>, classOf: (path: string) => string | undefined, before: Node): Value {
  const hit = known.get(path);
  if (hit) return hit;
  const dot = path.lastIndexOf('.');
  const parent = moduleOf(g, dot < 0 ? '' : path.slice(0, dot), known, classOf, before);
  const n = g.create('prim::GetAttr', [parent], [{ kind: 'Class', name: classOf(path) ?? '' }],
    { name: { kind: 's', value: path.slice(dot + 1) } });
  n.insertBefore(before);
  n.output.name = path.replace(/\./g, '_');
  known.set(path, n.output);
  return n.output;
}

interface Unflatten {
  classOf: (path: string) => string | undefined;
  methods: ProgramMethod[];
  names: Map<string, number>;
  /** Only leaf-module calls (the standard view's calls), not every level. */
  leafOnly: boolean;
}

const join = (base: string, rel: string) => (base && rel ? `${base}.${rel}` : base || rel);

/** Make the calls of `g` (a method of the module at `base`; its scope paths relative to it) into methods. */
function unflattenGraph(g: Graph, base: string, u: Unflatten): void {
  const classOf = (p: string) => u.classOf(join(base, p));
  const paths = attrPaths(g);
  const moduleValue = new Map<string, Value>();
  for (const [v, p] of paths) if (v.type.kind === 'Class') moduleValue.set(p, v);
  for (const call of moduleCalls(g, u.leafOnly)) {
    const inside = new Set(call.nodes);
    const args = [...new Set(call.nodes.flatMap((n) => n.inputs.filter((v) => !v.node || !inside.has(v.node))))];
    const outs = call.nodes.flatMap((n) => n.outputs).filter((o) => o.uses.some((u2) => !inside.has(u2.node)));
    if (outs.length === 0) continue;
    const target = moduleOf(g, call.frame.path, moduleValue, classOf, call.nodes[0]);
    const abs = join(base, call.frame.path);
    const k = u.names.get(abs) ?? 0;
    u.names.set(abs, k + 1);
    const name = k === 0 ? 'forward' : `forward_${k}`;
    const m = methodGraph(call, target.type, paths, args, outs);
    fixClassTypes(m, call.frame.path, classOf);
    if (!u.leafOnly && !isLeaf(call.frame.cls)) unflattenGraph(m, abs, u);
    u.methods.push({ module: abs, name, graph: m });
    replaceByCall(g, call, target, name, args.filter((a) => !isOwnAttr(a, call, paths)), outs);
  }
  g.eliminateDeadCode();
}

function replaceByCall(g: Graph, call: Call, target: Value, name: string, callArgs: Value[], outs: Value[]): void {
  const scope = (call.nodes[0].scope ?? []).slice(0, call.depth);
  const types = outs.length === 1 ? [outs[0].type] : [{ kind: 'Tuple' as const, elems: outs.map((o) => o.type) }];
  const node = g.create('prim::CallMethod', [target, ...callArgs], types, { name: { kind: 's', value: name } }, { scope });
  node.insertAfter(call.nodes[call.nodes.length - 1]);
  let results = node.outputs;
  if (outs.length > 1) {
    const unpack = g.create('prim::TupleUnpack', [node.output], outs.map((o) => o.type), {}, { scope });
    unpack.insertAfter(node);
    results = unpack.outputs;
  }
  outs.forEach((o, i) => { results[i].name = o.name; o.replaceAllUsesWith(results[i]); });
  for (const n of [...call.nodes].reverse()) n.destroy();
}

/** Turn module calls into methods (see the file comment); with `leafOnly`, only torch.nn leaf modules' calls. */
export function unflattenModuleCalls(
  g: Graph, classOf: (path: string) => string | undefined, options: { leafOnly?: boolean } = {},
): ProgramMethod[] {
  const u: Unflatten = { classOf, methods: [], names: new Map(), leafOnly: options.leafOnly ?? false };
  unflattenGraph(g, '', u);
  return u.methods;
}
