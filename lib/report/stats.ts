// Graph statistics in the report's terms: node count, ops per kind (module calls as
// call_module:<ClassName>), attention ops.
import type { Graph, Node } from '../core/ir';
import { shortClassName } from '../core/ir/types';
import { DECOMPOSED_ATTENTION_KINDS } from '../core/ops/classes';
import type { GraphStats } from './types';

/** Ops that are a whole attention (or a layer holding one) in an undecomposed graph. */
export const ATTENTION_KINDS: ReadonlySet<string> = new Set([
  'call_module:MultiheadAttention',
  'call_module:TransformerEncoderLayer',
  'call_module:TransformerDecoderLayer',
  ...DECOMPOSED_ATTENTION_KINDS,
]);

/** The report's name for a node's kind: `call_module:<ClassName>` for a kept submodule forward
 * call, `call_method:<ClassName>.<method>` for another method, the node kind otherwise. */
export function opKind(n: Node): string {
  if (n.kind === 'prim::CallMethod') {
    const self = n.inputs[0]?.type;
    const method = n.attr('name');
    if (self?.kind === 'Class') {
      const cls = shortClassName(self.name);
      return method === 'forward' || method === undefined ? `call_module:${cls}` : `call_method:${cls}.${String(method)}`;
    }
  }
  return n.kind;
}

/** The attention a node was emitted for, as the decomposition records it in
 * `node.meta.attention` ({ id, role }); undefined for other nodes. */
export function metaAttention(n: Node): string | undefined {
  const a = n.meta.attention as { id?: unknown } | string | undefined;
  if (typeof a === 'string') return a;
  return a && typeof a.id === 'string' ? a.id : undefined;
}

export interface StatsOptions {
  /** The attention a node belongs to; default metaAttention. attentionOps counts the nodes
   * that have one, plus the whole-attention ops (ATTENTION_KINDS) left in the graph. */
  attentionOf?: (n: Node) => string | undefined;
}

/** nodes (every node, nested blocks included), ops per kind and attention ops of a graph. */
export function graphStats(g: Graph, opts: StatsOptions = {}): GraphStats {
  const ops: Record<string, number> = {};
  let attentionOps = 0;
  const nodes = g.allNodes();
  const attentionOf = opts.attentionOf ?? metaAttention;
  for (const n of nodes) {
    const k = opKind(n);
    ops[k] = (ops[k] ?? 0) + 1;
    // Explicit ops only: the constants, lists and weight reads an attention also emits are bookkeeping.
    if ((attentionOf(n) !== undefined && k.startsWith('aten::')) || ATTENTION_KINDS.has(k)) attentionOps++;
  }
  const sorted: Record<string, number> = {};
  for (const k of Object.keys(ops).sort()) sorted[k] = ops[k];
  return { nodes: nodes.length, ops: sorted, attentionOps };
}
