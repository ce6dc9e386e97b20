// Constant-fold what the module's own attributes decide. Scripted models read plain
// attributes (training, _qkv_same_embed_dim, bias_k, ...) at run time and branch on them
// with prim::If; with the attributes known, the branches not taken go away. In place.
import type { ModuleTreeData } from '../torchscript/binding';
import { getAttrObject, type Block, type Graph, type Node, type Value } from '../core/ir';
import { modulePaths } from './module-calls';
import { constantOf, type ScalarConstantValue } from '../core/constants';

export interface FoldReport {
  attributesFolded: number;
  opsFolded: number;
  ifsResolved: number;
  /** prim::If / prim::Loop nodes that remain, with what their condition depends on. */
  remaining: { kind: string; node: string; condition: string }[];
}

type Scalar = ScalarConstantValue;
/** The folds read scalar constants only: two list constants are never compared here. */
const SCALARS = { scalarOnly: true } as const;

function attributeTable(tree: ModuleTreeData): Map<string, Record<string, unknown>> {
  const table = new Map<string, Record<string, unknown>>();
  const walk = (m: ModuleTreeData) => { table.set(m.path, m.attributes); m.children.forEach(walk); };
  walk(tree);
  return table;
}

function isNoneTyped(v: Value): boolean { return v.type.kind === 'None'; }
function cannotBeNone(v: Value): boolean { return !['Optional', 'None', 'Other'].includes(v.type.kind); }

/** The folded value of a node on constant inputs, or undefined. */
function foldOp(n: Node): { value: Scalar } | undefined {
  const vals = n.inputs.map((v) => constantOf(v, SCALARS));
  const all = vals.every((x) => x !== undefined);
  switch (n.kind) {
    case 'aten::__not__': return all ? { value: !vals[0] } : undefined;
    case 'aten::__is__':
    case 'aten::__isnot__': {
      const [a, b] = n.inputs;
      let same: boolean | undefined;
      const ca = constantOf(a, SCALARS), cb = constantOf(b, SCALARS);
      const none = (v: Value, c: Scalar | undefined) => isNoneTyped(v) || c === null;
      if (typeof ca === 'boolean' && typeof cb === 'boolean') same = ca === cb;
      else if (none(a, ca) && none(b, cb)) same = true;
      else if (none(b, cb) && cannotBeNone(a)) same = false;
      else if (none(a, ca) && cannotBeNone(b)) same = false;
      if (same === undefined) return undefined;
      return { value: n.kind === 'aten::__is__' ? same : !same };
    }
    case 'aten::eq': return all && n.inputs.length === 2 ? { value: vals[0] === vals[1] } : undefined;
    case 'aten::ne': return all && n.inputs.length === 2 ? { value: vals[0] !== vals[1] } : undefined;
    case 'aten::__and__': return all && typeof vals[0] === 'boolean' ? { value: Boolean(vals[0] && vals[1]) } : undefined;
    case 'aten::__or__': return all && typeof vals[0] === 'boolean' ? { value: Boolean(vals[0] || vals[1]) } : undefined;
    case 'aten::Bool': return all && typeof vals[0] !== 'string' && vals[0] !== null ? { value: Boolean(vals[0]) } : undefined;
    default: return undefined;
  }
}

function replaceWithConstant(g: Graph, n: Node, value: Scalar): void {
  const out = n.output;
  const c = g.withInsertPoint(n, () =>
    out.type.kind === 'Bool' ? g.insertConstant(Boolean(value))
    : out.type.kind === 'Int' && typeof value !== 'bigint' && typeof value === 'number' ? g.insertConstant(BigInt(value))
    : g.insertConstant(value));
  // A None keeps its Optional type: ops in branches not (yet) folded still type-check.
  if (value === null) c.node!.outputs[0].type = out.type;
  out.replaceAllUsesWith(c);
  n.destroy();
}

/**
 * A tuple returned by a prim::If becomes one output per element (each branch unpacks its
 * tuple; the tuple is rebuilt after the If), so that folding can see which elements are used.
 */
function splitTupleOutputs(g: Graph): number {
  let split = 0;
  for (const n of g.allNodes()) {
    if (n.kind !== 'prim::If') continue;
    for (let i = n.outputs.length - 1; i >= 0; i--) {
      const o = n.outputs[i];
      if (o.type.kind !== 'Tuple' || !o.hasUses()) continue;
      const elems = o.type.elems;
      const parts = n.blocks.map((blk) => g.withInsertPoint(blk, () => {
        // A branch that returns early yields prim::Uninitialized for the tuple; unpacking it
        // would fail at run time, so that branch yields an uninitialized value per element.
        if (blk.outputs[i].node?.kind === 'prim::Uninitialized') {
          return elems.map((t) => g.createNode('prim::Uninitialized', [], [t]).output);
        }
        return g.createNode('prim::TupleUnpack', [blk.outputs[i]], elems).outputs;
      }));
      const news = elems.map((t, k) => {
        n.blocks.forEach((blk, b) => blk.registerOutput(parts[b][k]));
        return n.addOutput(t);
      });
      const tuple = g.withInsertPoint(n.next ?? n.owningBlock!.returnNode, () => g.createNode('prim::TupleConstruct', news, [o.type]));
      o.replaceAllUsesWith(tuple.output);
      n.blocks.forEach((blk) => blk.setOutputs(blk.outputs.filter((_, j) => j !== i)));
      n.eraseOutput(i);
      split++;
    }
  }
  return split;
}

/** Outputs of a prim::If nobody reads: dropped from the If and from both branches. */
function pruneUnusedOutputs(n: Node): boolean {
  let pruned = false;
  for (let i = n.outputs.length - 1; i >= 0; i--) {
    if (n.outputs[i].hasUses()) continue;
    n.blocks.forEach((blk) => blk.setOutputs(blk.outputs.filter((_, j) => j !== i)));
    n.eraseOutput(i);
    pruned = true;
  }
  return pruned;
}

/** Outputs of a prim::If that both branches give the same way (the same outer value, or None). */
function foldAgreeingOutputs(g: Graph, n: Node): boolean {
  let folded = false;
  n.outputs.forEach((o, i) => {
    if (!o.hasUses()) return;
    const [a, b] = n.blocks.map((blk) => blk.outputs[i]);
    const inner = (v: Value) => n.blocks.some((blk) => v.owningBlock === blk || isInside(v, blk));
    if (a === b && !inner(a)) {
      o.replaceAllUsesWith(a);
      folded = true;
    } else if (constantOf(a, SCALARS) === null && constantOf(b, SCALARS) === null) {
      const c = g.withInsertPoint(n, () => g.insertConstant(null));
      c.type = o.type;
      o.replaceAllUsesWith(c);
      folded = true;
    }
  });
  return folded;
}

function isInside(v: Value, blk: Block): boolean {
  for (let b: Block | null = v.owningBlock; b; b = b.owningNode?.owningBlock ?? null) if (b === blk) return true;
  return false;
}

/** Replace a prim::If whose condition is constant by the nodes of the branch taken. */
function inlineBranch(n: Node, taken: boolean): void {
  const block = n.blocks[taken ? 0 : 1];
  for (const inner of block.nodes()) inner.insertBefore(n);
  n.outputs.forEach((o, i) => o.replaceAllUsesWith(block.outputs[i]));
  n.blocks[taken ? 1 : 0].setOutputs([]);
  block.setOutputs([]);
  for (const b of n.blocks) for (const inner of [...b.nodes()].reverse()) inner.destroy();
  n.destroy();
}

export function foldModuleConstants(g: Graph, tree: ModuleTreeData): FoldReport {
  const attrs = attributeTable(tree);
  const report: FoldReport = { attributesFolded: 0, opsFolded: 0, ifsResolved: 0, remaining: [] };
  report.opsFolded += splitTupleOutputs(g);
  // Folding and dead-code removal feed each other (a dead tuple rebuild keeps If outputs
  // alive): alternate until neither changes anything.
  for (let round = 0; round < 50; round++) {
    let changed = true;
    while (changed) {
      changed = false;
      const paths = modulePaths(g);
      for (const n of g.allNodes()) {
        if (n.isDestroyed) continue;
        if (n.kind === 'prim::GetAttr') {
          const path = paths.get(getAttrObject(n));
          const name = n.attr('name');
          if (path === undefined || typeof name !== 'string') continue;
          const table = attrs.get(path);
          if (!table || !(name in table)) continue;
          const v = table[name];
          if (v !== null && !['number', 'boolean', 'string', 'bigint'].includes(typeof v)) continue;
          const kind = n.output.type.kind;
          let value: Scalar = v as Scalar;
          if (kind === 'Int' && typeof v === 'number') value = BigInt(v);
          else if (kind === 'Optional' && v !== null) continue; // a present Optional[T] keeps its type; leave it
          else if (!['Int', 'Float', 'Bool', 'String', 'Optional', 'None'].includes(kind)) continue;
          replaceWithConstant(g, n, value);
          report.attributesFolded++;
          changed = true;
        } else if (n.kind === 'prim::If') {
          const c = constantOf(n.inputs[0], SCALARS);
          if (typeof c === 'boolean') {
            inlineBranch(n, c);
            report.ifsResolved++;
            changed = true;
          } else if (foldAgreeingOutputs(g, n) || pruneUnusedOutputs(n)) {
            report.opsFolded++;
            changed = true;
          }
        } else if (n.kind === 'prim::TupleIndex' && n.inputs[0].node?.kind === 'prim::TupleConstruct'
          && typeof constantOf(n.inputs[1], SCALARS) === 'bigint') {
          n.output.replaceAllUsesWith(n.inputs[0].node.inputs[Number(constantOf(n.inputs[1], SCALARS))]);
          n.destroy();
          report.opsFolded++;
          changed = true;
        } else if (n.kind === 'prim::TupleUnpack' && n.inputs[0].node?.kind === 'prim::TupleConstruct') {
          const items = n.inputs[0].node.inputs;
          n.outputs.forEach((o, i) => o.replaceAllUsesWith(items[i]));
          n.destroy();
          report.opsFolded++;
          changed = true;
        } else if (n.outputs.length === 1 && n.blocks.length === 0) {
          const f = foldOp(n);
          if (f) {
            replaceWithConstant(g, n, f.value);
            report.opsFolded++;
            changed = true;
          }
        }
      }
    }
    const removed = g.eliminateDeadCode();
    const pruned = g.allNodes().filter((n) => n.kind === 'prim::If' && pruneUnusedOutputs(n)).length;
    if (!removed && !pruned) break;
  }
  g.eliminateDeadCode();
  for (const n of g.allNodes()) {
    if (n.kind !== 'prim::If' && n.kind !== 'prim::Loop') continue;
    const cond = n.kind === 'prim::If' ? n.inputs[0] : n.inputs[1];
    report.remaining.push({ kind: n.kind, node: n.describe(), condition: cond?.node ? cond.node.kind : 'input' });
  }
  return report;
}
