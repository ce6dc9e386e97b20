// Graph.verify(): structural invariants plus the type checks that need no operator schemas.
import type { Graph } from './graph';
import type { Block, Node, Value } from './node';
import type { TypeData } from './serialized';
import { BoolType, IntType, isSubtypeOf, typeToString } from './types';

export class GraphVerifyError extends Error {
  /** The offending node, or null for graph inputs/outputs. */
  constructor(message: string, readonly node: Node | null) {
    super(message);
    this.name = 'GraphVerifyError';
  }
}

function fail(node: Node | null, problem: string): never {
  throw new GraphVerifyError(`${problem} at ${node ? node.describe() : 'graph inputs/outputs'}`, node);
}

const ref = (v: Value) => `%${v.debugName}`;
const show = (t: TypeData) => typeToString(t, { tensorDetails: true });
/** The node a value belongs to for messages: its producer, or the owner of its block. */
const siteOf = (v: Value): Node | null => v.node ?? v.owningBlock?.owningNode ?? null;

/** Loose check: reports only types that cannot match whatever the refinements (no false positives). */
function expectType(node: Node | null, what: string, actual: TypeData, expected: TypeData): void {
  if (!isSubtypeOf(actual, expected, { loose: true })) fail(node, `${what} has type ${show(actual)}, expected ${show(expected)}`);
}

export function verifyGraph(g: Graph): void {
  // Pass 1: every value and node the graph holds; value ids must be unique.
  const defined = new Set<Value>();
  const live = new Set<Node>();
  const byId = new Map<number, Value>();
  const define = (v: Value, site: Node | null) => {
    const other = byId.get(v.id);
    if (other && other !== v) fail(site, `duplicate value id ${v.id} (${ref(other)} and ${ref(v)})`);
    byId.set(v.id, v);
    defined.add(v);
  };
  const collect = (b: Block) => {
    live.add(b.returnNode);
    for (const v of b.inputs) {
      if (v.node !== null || v.owningBlock !== b) fail(b.owningNode, `block input ${ref(v)} does not point back at its block`);
      define(v, b.owningNode);
    }
    for (const n of b.nodes()) {
      live.add(n);
      for (const o of n.outputs) {
        if (o.node !== n) fail(n, `output ${ref(o)} does not point back at its node`);
        define(o, n);
      }
      for (const sb of n.blocks) {
        if (sb.owningNode !== n) fail(n, 'a block does not point back at its node');
        collect(sb);
      }
    }
  };
  collect(g.block);

  // Pass 2: scoped walk in execution order; a value is visible after its definition, within
  // its block and the blocks nested in it.
  const visible = new Set<Value>();
  const checkUse = (user: Node, v: Value, i: number, site: Node | null, what: string) => {
    if (!defined.has(v)) fail(site, `${what} ${ref(v)} is not defined in this graph (dangling)`);
    if (!visible.has(v)) {
      const defBlock = v.owningBlock;
      let enclosing = false;
      for (let b: Block | null = user.owningBlock; b && !enclosing; b = b.owningNode?.owningBlock ?? null) enclosing = b === defBlock;
      const by = siteOf(v);
      fail(site, enclosing
        ? `${what} ${ref(v)} is used before its definition${by ? ` by ${by.describe()}` : ''}`
        : `${what} ${ref(v)} is defined inside a block of ${defBlock?.owningNode?.describe() ?? 'another node'} and is not visible here`);
    }
    if (!v.uses.some((u) => u.node === user && u.index === i)) fail(site, `use list of ${ref(v)} lacks ${what}`);
  };
  const walk = (b: Block) => {
    const scoped: Value[] = [...b.inputs];
    b.inputs.forEach((v) => visible.add(v));
    for (const n of b.nodes()) {
      n.inputs.forEach((v, i) => checkUse(n, v, i, n, `input ${i}`));
      checkNode(n);
      n.blocks.forEach(walk);
      n.outputs.forEach((o) => { visible.add(o); scoped.push(o); });
    }
    const owner = b.owningNode;
    const label = owner ? `block ${owner.blocks.indexOf(b)} output` : 'graph output';
    b.outputs.forEach((v, i) => checkUse(b.returnNode, v, i, owner, `${label} ${i}`));
    scoped.forEach((v) => visible.delete(v));
  };
  walk(g.block);

  // Pass 3: every recorded use must be a real input slot of a live node, recorded once.
  for (const v of defined) {
    const seen = new Set<string>();
    const ids = new Map<Node, number>();
    for (const u of v.uses) {
      if (!live.has(u.node)) fail(siteOf(v), `${ref(v)} lists a use by ${u.node.kind}, which is not in the graph`);
      if (u.node.inputs[u.index] !== v) fail(u.node, `use list of ${ref(v)} names input ${u.index}, which holds another value`);
      if (!ids.has(u.node)) ids.set(u.node, ids.size);
      const key = `${ids.get(u.node)}:${u.index}`;
      if (seen.has(key)) fail(u.node, `use list of ${ref(v)} records input ${u.index} twice`);
      seen.add(key);
    }
  }
}

/** Per-kind structure and the schema-independent type checks. */
function checkNode(n: Node): void {
  const { inputs, outputs, blocks } = n;
  switch (n.kind) {
    case 'prim::If': {
      if (blocks.length !== 2) fail(n, `prim::If has ${blocks.length} blocks, expected 2`);
      if (inputs.length !== 1) fail(n, `prim::If has ${inputs.length} inputs, expected 1 condition`);
      expectType(n, 'condition', inputs[0].type, BoolType);
      blocks.forEach((b, k) => {
        if (b.inputs.length) fail(n, `block ${k} of prim::If has inputs`);
        if (b.outputs.length !== outputs.length) fail(n, `block ${k} yields ${b.outputs.length} values for ${outputs.length} outputs`);
        b.outputs.forEach((v, i) => expectType(n, `block ${k} output ${i} (${ref(v)})`, v.type, outputs[i].type));
      });
      return;
    }
    case 'prim::Loop': {
      // inputs: max trip count, initial condition, carried...; block: (iteration, carried...) -> (condition, carried...)
      if (blocks.length !== 1) fail(n, `prim::Loop has ${blocks.length} blocks, expected 1`);
      if (inputs.length < 2) fail(n, `prim::Loop has ${inputs.length} inputs, expected trip count, condition and carried values`);
      const carried = inputs.length - 2;
      const body = blocks[0];
      if (outputs.length !== carried) fail(n, `prim::Loop carries ${carried} values but has ${outputs.length} outputs`);
      if (body.inputs.length !== carried + 1) fail(n, `loop body has ${body.inputs.length} inputs, expected ${carried + 1}`);
      if (body.outputs.length !== carried + 1) fail(n, `loop body yields ${body.outputs.length} values, expected ${carried + 1}`);
      expectType(n, 'trip count', inputs[0].type, IntType);
      expectType(n, 'initial condition', inputs[1].type, BoolType);
      expectType(n, 'loop body input 0 (iteration)', body.inputs[0].type, IntType);
      expectType(n, 'loop body output 0 (condition)', body.outputs[0].type, BoolType);
      for (let i = 0; i < carried; i++) {
        expectType(n, `carried input ${i} (${ref(inputs[i + 2])})`, inputs[i + 2].type, body.inputs[i + 1].type);
        expectType(n, `loop body output ${i + 1} (${ref(body.outputs[i + 1])})`, body.outputs[i + 1].type, outputs[i].type);
      }
      return;
    }
    case 'prim::TupleConstruct': {
      const t = outputs[0]?.type;
      if (t?.kind !== 'Tuple') return;
      if (t.elems.length !== inputs.length) fail(n, `${inputs.length} inputs build a ${show(t)}`);
      inputs.forEach((v, i) => expectType(n, `input ${i} (${ref(v)})`, v.type, t.elems[i]));
      return;
    }
    case 'prim::TupleUnpack': {
      const t = inputs[0]?.type;
      if (t === undefined) fail(n, 'prim::TupleUnpack has no input');
      if (t.kind === 'Other') return;
      if (t.kind !== 'Tuple') fail(n, `prim::TupleUnpack of a ${show(t)}`);
      if (t.elems.length !== outputs.length) fail(n, `${outputs.length} outputs unpack a ${show(t)}`);
      outputs.forEach((o, i) => expectType(n, `output ${i} (${ref(o)})`, t.elems[i], o.type));
      return;
    }
    case 'prim::ListConstruct': {
      const t = outputs[0]?.type;
      if (t?.kind === 'List') inputs.forEach((v, i) => expectType(n, `input ${i} (${ref(v)})`, v.type, t.elem));
      return;
    }
    case 'prim::GetAttr': case 'prim::SetAttr': case 'prim::CallMethod': {
      const t = inputs[0]?.type;
      if (t === undefined) fail(n, `${n.kind} has no object input`);
      if (t.kind !== 'Class' && t.kind !== 'Other') fail(n, `input 0 (${ref(inputs[0])}) is a ${show(t)}, not an object`);
      return;
    }
  }
}
