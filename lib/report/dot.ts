// Graphviz DOT for a graph (`torchgraph inspect --dot`): one box per node, data edges between
// them, nested blocks (prim::If, prim::Loop) as clusters. Constants are left out by default; their
// values show in the consuming node's tooltip instead.
import type { Block, Graph, Node, Value } from '../core/ir';
import { formatAttr } from '../core/ir/print';
import { typeToString } from '../core/ir/types';
import { opKind } from './stats';

export interface DotOptions {
  /** Graph name (default "torchgraph"). */
  name?: string;
  /** Draw prim::Constant nodes too (default false). */
  constants?: boolean;
  /** Fill colour per node (e.g. by fusion group). */
  fillOf?: (n: Node) => string | undefined;
  /** One more label line per node (e.g. its fusion group). */
  noteOf?: (n: Node) => string | undefined;
  /** An output's type in place of its IR type (e.g. the shape a shape run found). */
  typeOf?: (v: Value) => string | undefined;
  /** The source line in a node's tooltip in place of node.source (undefined: none). */
  sourceOf?: (n: Node) => string | undefined;
  /** Nodes of one block with the same key are drawn in one cluster (e.g. a fusion group). */
  clusterOf?: (n: Node) => string | undefined;
}

/** A DOT double-quoted string. */
export function dotString(s: string): string {
  return `"${s.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\r?\n/g, '\\n')}"`;
}

export function graphToDot(g: Graph, opts: DotOptions = {}): string {
  const lines: string[] = [];
  const ids = new Map<Node, string>();
  const valueSource = new Map<Value, string>();
  const skip = (n: Node) => !opts.constants && n.kind === 'prim::Constant';
  let counter = 0;

  lines.push(`digraph ${dotString(opts.name ?? 'torchgraph')} {`);
  lines.push('  rankdir=TB;');
  lines.push('  node [shape=box, style="rounded,filled", fillcolor="#ffffff", fontname="monospace", fontsize=10];');
  lines.push('  edge [color="#6b7785", arrowsize=0.6];');

  g.inputs.forEach((v, k) => {
    const id = `in${k}`;
    valueSource.set(v, id);
    lines.push(`  ${id} [label=${dotString(`%${v.debugName}\n${typeToString(v.type)}`)}, shape=ellipse, fillcolor="#e8f1fb"];`);
  });

  const declare = (b: Block, indent: string) => {
    const clusters = new Map<string, string[]>();
    for (const n of b.nodes()) {
      if (skip(n)) continue;
      const id = `n${counter++}`;
      ids.set(n, id);
      const key = opts.clusterOf?.(n);
      if (key !== undefined) clusters.set(key, [...(clusters.get(key) ?? []), id]);
      n.outputs.forEach((o) => valueSource.set(o, id));
      const outs = n.outputs.map((o) => `%${o.debugName} : ${opts.typeOf?.(o) ?? typeToString(o.type, { tensorDetails: true })}`);
      // A call drawn as its method's kind does not repeat the method's name as an attribute.
      const shown = ([k]: [string, unknown]) => !(n.kind === 'prim::CallMethod' && k === 'name' && opKind(n) !== n.kind);
      const attrs = Object.entries(n.attrs).filter(shown).map(([k, a]) => `${k}=${formatAttr(a)}`);
      const note = opts.noteOf?.(n);
      const shortAttrs = attrs.map((a) => (a.length > 40 ? a.slice(0, 39) + '…' : a));
      const label = [opKind(n), ...shortAttrs, ...outs.slice(0, 3), ...(note ? [note] : [])].join('\n');
      const fill = opts.fillOf?.(n);
      const source = (opts.sourceOf ? opts.sourceOf(n) : n.source) ?? '';
      const tip = [n.describe(), n.modulePath ? `module ${n.modulePath}` : '', source].filter(Boolean).join('\n');
      lines.push(`${indent}${id} [label=${dotString(label)}, tooltip=${dotString(tip)}${fill ? `, fillcolor=${dotString(fill)}` : ''}];`);
      n.blocks.forEach((sb, k) => {
        lines.push(`${indent}subgraph ${dotString(`cluster_${id}_b${k}`)} {`);
        lines.push(`${indent}  label=${dotString(`${n.kind} block${k}`)}; style=dashed; color="#9aa4b0";`);
        sb.inputs.forEach((v) => valueSource.set(v, id)); // block inputs come from the owner
        declare(sb, indent + '  ');
        lines.push(`${indent}}`);
      });
    }
    for (const [key, members] of clusters) {
      lines.push(`${indent}subgraph ${dotString(`cluster_group_${key}`)} { `
        + `label=${dotString(key)}; style=rounded; color="#8a6d3b"; ${members.join('; ')}; }`);
    }
  };
  declare(g.block, '  ');
  const returned = g.outputs.map((v) => `%${v.debugName}`).join(', ');
  lines.push(`  out [label=${dotString(`return\n${returned}`)}, shape=ellipse, fillcolor="#e8f1fb"];`);

  const seen = new Set<string>();
  const edge = (from: string | undefined, to: string, style = '') => {
    if (!from || from === to) return;
    const k = `${from}->${to}`;
    if (seen.has(k)) return;
    seen.add(k);
    lines.push(`  ${from} -> ${to}${style};`);
  };
  const connect = (b: Block) => {
    for (const n of b.nodes()) {
      const to = ids.get(n);
      if (!to) continue;
      for (const v of n.inputs) edge(valueSource.get(v), to);
      n.blocks.forEach((sb) => {
        connect(sb);
        for (const v of sb.outputs) edge(valueSource.get(v), to, ' [style=dashed]');
      });
    }
  };
  connect(g.block);
  for (const v of g.outputs) edge(valueSource.get(v), 'out');
  lines.push('}');
  return lines.join('\n') + '\n';
}
