// A drawable extract of a graph for the HTML report: the data-flow nodes (constants and weight
// reads left out), all of them when the graph is small, otherwise a window around the first
// attention region with the rest collapsed into "summary" nodes.
import type { Graph, Node, Value } from '../core/ir';
import { typeToString } from '../core/ir/types';
import { shapeText, valueShape } from './inspect';
import { metaAttention, opKind } from './stats';
import type { DrawingEdge, DrawingNode, GraphDrawing } from './types';

export interface DrawingOptions {
  /** Caption shown above the drawing; a default describes the window. */
  caption?: string;
  /** Fusion group of a node (e.g. from node.meta), drawn as its colour. */
  groupOf?: (n: Node) => string | number | undefined;
  /** Attention region of a node (its module path), drawn as a labelled box; default:
   * node.meta.attention.id as the decomposition records it. */
  attentionOf?: (n: Node) => string | undefined;
  /** The lowering that emitted a node (fused graph), drawn as a fused op. */
  loweredOf?: (n: Node) => string | undefined;
  /** Mean time of one call of a node's op kind, from a profile. */
  msOf?: (n: Node) => number | undefined;
  /** Most nodes drawn individually (default 160). */
  maxNodes?: number;
  /** Node kinds never drawn (default prim::Constant and prim::GetAttr). */
  hideKinds?: ReadonlySet<string>;
}

const DEFAULT_HIDE: ReadonlySet<string> = new Set(['prim::Constant', 'prim::GetAttr']);
const CONSTANT_BUILDERS: ReadonlySet<string> = new Set(['prim::ListConstruct', 'prim::TupleConstruct', 'prim::DictConstruct']);

function shortLabel(kind: string): string {
  if (kind.startsWith('call_module:')) return kind.slice('call_module:'.length);
  return kind.replace(/^aten::/, '');
}

/** The shape and dtype the shape run recorded (node.meta.outputInfo), else a complete tensor type's: float32[4, 196, 768]. */
function drawnShape(v: Value): string | undefined {
  const t = v.type;
  const typed = t.kind === 'Tensor' && t.dtype && t.shape?.every((d) => typeof d === 'number')
    ? shapeText(t.dtype, t.shape as number[]) : undefined;
  return valueShape(v) ?? typed;
}

function valueTitle(v: Value): string {
  return `%${v.debugName}: ${drawnShape(v) ?? typeToString(v.type, { tensorDetails: true })}`;
}

/** The first output's shape, as drawn under the op's name: [4, 196, 768]. */
function shapeLabel(v: Value | undefined): string | undefined {
  const s = v ? drawnShape(v) : undefined;
  return s?.slice(s.indexOf('['));
}

export function drawingFromGraph(g: Graph, opts: DrawingOptions = {}): GraphDrawing {
  const maxNodes = Math.max(8, opts.maxNodes ?? 160);
  const top = g.nodes();
  const attOf = opts.attentionOf ?? metaAttention;
  const { topIndex, hidden, visible } = visibleNodes(top, opts.hideKinds ?? DEFAULT_HIDE);
  const { lo, hi, focus } = drawnWindow(top, visible, attOf, maxNodes);
  const posOf = new Map<number, number>(visible.map((i, p) => [i, p]));
  const drawnId = (i: number): string | undefined => {
    if (hidden.has(i)) return undefined;
    const p = posOf.get(i)!;
    return p < lo ? 'before' : p >= hi ? 'after' : `n${i}`;
  };
  const { nodes, inputId } = drawnNodes(g, top, visible, lo, hi, attOf, opts);
  const edges = dataEdges(g, top, topIndex, inputId, drawnId);

  const drawn = hi - lo;
  const caption = opts.caption ?? (visible.length > drawn
    ? `${drawn} of ${visible.length} data-flow nodes${focus ? `, around attention ${focus}` : ''} (constants and weight reads not drawn)`
    : `all ${visible.length} data-flow nodes (constants and weight reads not drawn)`);
  return { caption, nodes, edges, totalNodes: g.allNodes().length, drawnNodes: drawn };
}

/** Every node's top-level ancestor, and which top-level nodes are drawn at all. */
function visibleNodes(top: Node[], hide: ReadonlySet<string>): { topIndex: Map<Node, number>; hidden: Set<number>; visible: number[] } {
  // Map every node (nested ones included) to its top-level ancestor's index.
  const topIndex = new Map<Node, number>();
  const mark = (n: Node, i: number) => { topIndex.set(n, i); n.blocks.forEach((b) => b.nodes().forEach((m) => mark(m, i))); };
  top.forEach((n, i) => mark(n, i));

  // Hidden: constants, weight reads, and lists/tuples built only from those.
  const hidden = new Set<number>();
  top.forEach((n, i) => {
    if (hide.has(n.kind)) hidden.add(i);
    else if (CONSTANT_BUILDERS.has(n.kind) && n.inputs.every((v) => v.node && hidden.has(topIndex.get(v.node) ?? -1))) hidden.add(i);
  });
  const visible = top.map((_, i) => i).filter((i) => !hidden.has(i));
  return { topIndex, hidden, visible };
}

/** The window [lo, hi) of visible positions drawn individually: around the first attention region when there are too many. */
function drawnWindow(top: Node[], visible: number[], attOf: (n: Node) => string | undefined, maxNodes: number):
{ lo: number; hi: number; focus: string | undefined } {
  let lo = 0;
  let hi = visible.length; // exclusive, in positions of `visible`
  let focus: string | undefined;
  if (visible.length > maxNodes) {
    const att = (i: number) => attOf(top[i]);
    const first = visible.findIndex((i) => att(i) !== undefined);
    if (first >= 0) {
      focus = att(visible[first]);
      let last = first;
      for (let p = first; p < visible.length && p - first < maxNodes; p++) if (att(visible[p]) === focus) last = p;
      // Context on either side, up to the neighbouring attention regions (not into them).
      const ctx = Math.min(12, Math.max(0, Math.floor((maxNodes - (last - first + 1)) / 2)));
      lo = first;
      while (lo > 0 && first - lo < ctx && att(visible[lo - 1]) === undefined) lo--;
      hi = last + 1;
      while (hi < visible.length && hi - last - 1 < ctx && att(visible[hi]) === undefined) hi++;
      hi = Math.min(hi, lo + maxNodes);
    } else {
      hi = maxNodes;
    }
  }
  return { lo, hi, focus };
}

/** The drawn nodes: graph inputs, a summary before the window, its ops, a summary after it, the output. */
function drawnNodes(g: Graph, top: Node[], visible: number[], lo: number, hi: number, attOf: (n: Node) => string | undefined,
  opts: DrawingOptions): { nodes: DrawingNode[]; inputId: Map<Value, string> } {
  const nodes: DrawingNode[] = [];
  // Graph inputs (the module's `self` is not data).
  const inputId = new Map<Value, string>();
  g.inputs.forEach((v, k) => {
    if (v.type.kind === 'Class') return;
    const id = `in${k}`;
    inputId.set(v, id);
    const shape = shapeLabel(v);
    nodes.push({
      id, label: v.name ? v.name.replace(/\.\d+$/, '') : `input ${k}`, kind: 'input', title: valueTitle(v), ...(shape ? { shape } : {}),
    });
  });

  const countAttention = (ps: number[]) => new Set(ps.map((p) => attOf(top[visible[p]])).filter((a) => a !== undefined)).size;
  if (lo > 0) {
    const ps = Array.from({ length: lo }, (_, p) => p);
    const k = countAttention(ps);
    nodes.push({
      id: 'before', label: `… ${lo} nodes`, kind: 'summary',
      title: `${lo} nodes before this window${k ? `, ${k} attention region(s)` : ''}`,
    });
  }
  for (let p = lo; p < hi; p++) {
    const i = visible[p];
    const n = top[i];
    const kind = opKind(n);
    const group = opts.groupOf?.(n);
    const lowered = opts.loweredOf?.(n);
    const ms = opts.msOf?.(n);
    const attention = attOf(n);
    const shape = shapeLabel(n.outputs[0]);
    const d: DrawingNode = {
      id: `n${i}`, label: shortLabel(kind), kind: 'op', ...(shape ? { shape } : {}),
      title: [kind, ...n.outputs.map(valueTitle), n.modulePath ? `in ${n.modulePath}` : ''].filter(Boolean).join('\n'),
    };
    if (group !== undefined) d.group = String(group);
    if (attention !== undefined) d.attention = attention;
    if (lowered !== undefined) d.lowered = lowered;
    if (ms !== undefined) d.kindMs = ms;
    nodes.push(d);
  }
  if (hi < visible.length) {
    const ps = Array.from({ length: visible.length - hi }, (_, k) => hi + k);
    const k = countAttention(ps);
    nodes.push({
      id: 'after', label: `… ${visible.length - hi} nodes`, kind: 'summary',
      title: `${visible.length - hi} nodes after this window${k ? `, ${k} attention region(s)` : ''}`,
    });
  }
  nodes.push({ id: 'out', label: 'output', kind: 'output', title: g.outputs.map(valueTitle).join('\n') });
  return { nodes, inputId };
}

/**
 * Data edges between drawn nodes, through uses of each value (nested uses count for their
 * top-level owner), each once.
 */
function dataEdges(g: Graph, top: Node[], topIndex: Map<Node, number>, inputId: Map<Value, string>,
  drawnId: (i: number) => string | undefined): DrawingEdge[] {
  const edges: DrawingEdge[] = [];
  const seen = new Set<string>();
  const edge = (from: string | undefined, to: string | undefined) => {
    if (!from || !to || from === to) return;
    const k = `${from}\0${to}`;
    if (seen.has(k)) return;
    seen.add(k);
    edges.push({ from, to });
  };
  const source = (v: Value): string | undefined => {
    if (inputId.has(v)) return inputId.get(v);
    const prod = v.node;
    if (!prod) return undefined; // a block input: internal to its owner
    const i = topIndex.get(prod);
    return i === undefined ? undefined : drawnId(i);
  };
  top.forEach((n, i) => {
    const to = drawnId(i);
    if (!to) return;
    const uses: Value[] = [];
    const collect = (m: Node) => {
      uses.push(...m.inputs);
      m.blocks.forEach((b) => {
        b.nodes().forEach(collect);
        uses.push(...b.outputs);
      });
    };
    collect(n);
    for (const v of uses) edge(source(v), to);
  });
  for (const v of g.outputs) edge(source(v), 'out');
  return edges;
}
