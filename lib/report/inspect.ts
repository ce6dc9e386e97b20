// What `torchgraph inspect` shows beside the graph: each value's shape and dtype (what a shape
// run recorded), each node's op name (opKind: call_module:LayerNorm, not prim::CallMethod), its
// fusion group, and its source line where that is the user's and not TorchScript's generated
// code. Pure: the views are built and annotated in lib/app/cli/inspect.ts.
import type { Graph, Node, Value } from '../core/ir';
import { typeToString } from '../core/ir/types';
import { tensorInfo } from '../core/value-info';
import { graphToDot } from './dot';
import { graphStats, opKind } from './stats';

/** A node's fusion group: the partitioner's (node.meta.group/groupKind/groupRole) or, in the
 * fused view, the lowering that emitted it (node.meta.fused = { kind, id }). */
export interface NodeGroup {
  /** The partitioner's group number (g3), or the id a lowering gave (an attention's, or "group 3"). */
  id: string;
  kind: string;
  /** The attention the group belongs to, when the partitioner knows it. */
  attention?: string;
  role?: string;
  /** true: emitted by a lowering (a fused op); false: a group left as its ops. */
  lowered: boolean;
}

export function nodeGroup(n: Node): NodeGroup | undefined {
  const f = n.meta.fused as { kind?: unknown; id?: unknown } | undefined;
  if (f && typeof f.kind === 'string') return { id: String(f.id), kind: f.kind, lowered: true };
  const g = n.meta.group;
  if (g === undefined || g === null) return undefined;
  const id = typeof g === 'number' ? `g${g}` : String(g);
  const role = typeof n.meta.groupRole === 'string' ? n.meta.groupRole : undefined;
  const attention = typeof n.meta.groupLabel === 'string' && n.meta.groupLabel !== id ? n.meta.groupLabel : undefined;
  return { id, kind: String(n.meta.groupKind ?? 'group'), ...(attention ? { attention } : {}), ...(role ? { role } : {}), lowered: false };
}

/** One key per group in a view (a lowering may give an attention's core and its projections the same id). */
export function groupKey(g: NodeGroup): string {
  return `${g.id} ${g.kind}`;
}

/** A shape as inspect prints it: float32[2, 7, 48]. */
export function shapeText(dtype: string, shape: readonly number[]): string {
  return `${dtype}[${shape.join(', ')}]`;
}

/** A value's type with the shape and dtype a shape run found; undefined where none was recorded. */
export function valueShape(v: Value): string | undefined {
  const t = tensorInfo(v);
  return t ? shapeText(t.dtype, t.shape) : undefined;
}

/** A node's recorded source line: the user's file, or a line of the code TorchScript generated
 * when it saved the model (code/__torch__/...: not the user's source). */
export interface SourceLine {
  file: string;
  line: number;
  generated: boolean;
}

/** Paths inside a saved TorchScript archive: the Python TorchScript wrote, not the model's source. */
const GENERATED = /^(?:[^/]*\/)?code\/__torch__[/.]/;

export function sourceLine(n: Node): SourceLine | undefined {
  const m = n.source ? /^(.*):(\d+)$/.exec(n.source) : null;
  if (!m) return undefined;
  return { file: m[1], line: Number(m[2]), generated: GENERATED.test(m[1]) };
}

/** Whether any node's source line is TorchScript's generated code (then inspect says so once). */
export function hasGeneratedSources(g: Graph): boolean {
  return g.allNodes().some((n) => sourceLine(n)?.generated);
}

/** The source line where it is the user's, not TorchScript's generated code. */
function userSource(n: Node): string | undefined {
  const s = sourceLine(n);
  return s && !s.generated ? `${s.file}:${s.line}` : undefined;
}

function groupNote(n: Node): string | undefined {
  const g = nodeGroup(n);
  if (!g) return undefined;
  const id = g.attention ? `${g.id} ${g.attention}` : g.id;
  return g.lowered ? `[${id}: ${g.kind}, fused]` : `[${id}: ${g.kind}${g.role ? ` ${g.role}` : ''}]`;
}

/** The name a node goes by in every inspect format: opKind, kept when it adds nothing. */
function namedKind(n: Node): string | undefined {
  const k = opKind(n);
  return k === n.kind ? undefined : k;
}

export interface InspectTextOptions {
  /** The heading's model name and file. */
  model: string;
  file: string;
  view: string;
  /** Lines after the heading (how shapes were found, or why not). */
  notes?: string[];
}

/** The text view: a heading, notes, then the graph with shapes, op names, groups and source lines. */
export function renderInspectText(g: Graph, o: InspectTextOptions): string {
  const stats = graphStats(g);
  const groups = new Set(g.allNodes().map((n) => nodeGroup(n)).filter((x): x is NodeGroup => !!x).map(groupKey));
  const head = [`# ${o.model}: ${o.view} view, ${stats.nodes} nodes${groups.size ? `, ${groups.size} fusion groups` : ''} (${o.file})`];
  for (const note of o.notes ?? []) head.push(`# ${note}`);
  if (hasGeneratedSources(g)) {
    head.push('# source lines of the code TorchScript generated (code/__torch__/...) are left out: '
      + 'they are not lines of your Python source');
  }
  if (groups.size) {
    head.push('# [ID: KIND ROLE] is the fusion group a node belongs to; ", fused" marks an op a lowering emitted for its group');
  }
  const body = g.print({
    kindOf: namedKind,
    typeOf: valueShape,
    sourceOf: userSource,
    noteOf: groupNote,
  });
  return head.join('\n') + '\n' + body;
}

export interface InspectJsonNode {
  /** Depth-first position (graph.allNodes() order, nested blocks after their owner). */
  index: number;
  /** The IR kind (what the graph JSON holds). */
  kind: string;
  /** The name inspect and validate's reports use: call_module:LayerNorm for a kept module call. */
  op: string;
  outputs: { id: number; name: string; type: string; shape?: number[]; dtype?: string }[];
  group?: NodeGroup;
  module?: string;
  source?: SourceLine;
}

/** Per node: op name, outputs with their shapes, fusion group, module path and source line. */
export function inspectNodes(g: Graph): InspectJsonNode[] {
  return g.allNodes().map((n, index) => {
    const group = nodeGroup(n);
    const source = sourceLine(n);
    return {
      index, kind: n.kind, op: opKind(n),
      outputs: n.outputs.map((v) => {
        const t = tensorInfo(v);
        return { id: v.id, name: v.debugName, type: typeToString(v.type), ...(t ? { shape: [...t.shape], dtype: t.dtype } : {}) };
      }),
      ...(group ? { group } : {}),
      ...(n.modulePath ? { module: n.modulePath } : {}),
      ...(source ? { source } : {}),
    };
  });
}

/** The graph's inputs with the shapes they were given. */
export function inspectInputs(g: Graph): { id: number; name: string; type: string; shape?: number[]; dtype?: string }[] {
  return g.inputs.map((v) => {
    const t = tensorInfo(v);
    return { id: v.id, name: v.debugName, type: typeToString(v.type), ...(t ? { shape: [...t.shape], dtype: t.dtype } : {}) };
  });
}

/** Fill colours for groups, by group kind (a group's id is in its nodes' labels). */
const KIND_COLOURS: Record<string, string> = {
  attention: '#fde2c8', attention_core: '#fde2c8', qkv_projection: '#d9ead3', kv_projection: '#d9ead3', parallel_linear: '#d9ead3',
  parallel_projection: '#d9ead3', linear_act: '#e4dcf2', elementwise: '#fff2b3',
  conv_bn_act: '#d5e8f0', conv_pointwise: '#d5e8f0', packed_linear: '#e1f0d9',
};
const OTHER_COLOURS = ['#f4cccc', '#cfe2f3', '#ead1dc', '#d0e0e3', '#fce5cd'];

function groupColour(g: NodeGroup): string {
  const c = KIND_COLOURS[g.kind];
  if (c) return c;
  let h = 0;
  for (const ch of g.kind) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return OTHER_COLOURS[h % OTHER_COLOURS.length];
}

/** The DOT view: nodes coloured by fusion group kind, the group and output shapes in each label. */
export function renderInspectDot(g: Graph, name: string): string {
  return graphToDot(g, {
    name,
    fillOf: (n) => { const gr = nodeGroup(n); return gr ? groupColour(gr) : undefined; },
    noteOf: groupNote,
    typeOf: valueShape,
    clusterOf: (n) => { const gr = nodeGroup(n); return gr ? groupKey(gr) : undefined; },
    sourceOf: userSource,
  });
}
