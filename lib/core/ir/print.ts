// A readable graph dump: torch::jit's "%y : T = kind[attrs](inputs)" lines, aligned in columns
// like torch.fx's print_tabular, with the module path (and source) as a trailing comment.
import type { Graph } from './graph';
import type { Block, Node, Value } from './node';
import type { AttrData, IValueData, TensorHandleLike } from './serialized';
import { typeToString, type TypeToStringOptions } from './types';

export interface PrintOptions {
  /** Tensor dtype/shape/device in value types. Default true. */
  tensorDetails?: boolean;
  /** Qualified class names instead of the last component. Default false. */
  fullClassNames?: boolean;
  /** Append the recorded "file:line". Default true. */
  showSource?: boolean;
  /** The op's name in place of `kind[attrs]` (e.g. call_module:LayerNorm for a kept module call). */
  kindOf?: (n: Node) => string | undefined;
  /** A value's type in place of its IR type (e.g. the shape a shape run found). */
  typeOf?: (v: Value) => string | undefined;
  /** The source shown for a node in place of node.source (undefined: none). */
  sourceOf?: (n: Node) => string | undefined;
  /** More of the trailing comment (e.g. the node's fusion group). */
  noteOf?: (n: Node) => string | undefined;
}

type Row = string | [lhs: string, rhs: string, comment: string];

const MAX_LHS = 48;
const MAX_RHS = 80;

export function printGraph(g: Graph, opts: PrintOptions = {}): string {
  const typeOpts: TypeToStringOptions = { tensorDetails: opts.tensorDetails ?? true, fullClassNames: opts.fullClassNames };
  const names = valueNames(g);
  const ref = (v: Value) => '%' + (names.get(v) ?? v.debugName);
  const decl = (v: Value) => `${ref(v)} : ${opts.typeOf?.(v) ?? typeToString(v.type, typeOpts)}`;
  const sourceOf = opts.sourceOf ?? ((n: Node) => n.source);
  const rows: Row[] = [`graph(${g.inputs.map(decl).join(', ')}):`];

  const emitBlock = (b: Block, indent: string) => {
    for (const n of b.nodes()) {
      const lhs = indent + n.outputs.map(decl).join(', ');
      const named = opts.kindOf?.(n);
      const attrs = named === undefined && Object.keys(n.attrs).length ? `[${formatAttrs(n)}]` : '';
      const source = opts.showSource !== false ? sourceOf(n) : undefined;
      const comment = [opts.noteOf?.(n), n.modulePath, source ? `(${source})` : '']
        .filter(Boolean).join('  ');
      rows.push([lhs, `${named ?? n.kind}${attrs}(${n.inputs.map(ref).join(', ')})`, comment ? `# ${comment}` : '']);
      n.blocks.forEach((sb, k) => {
        rows.push(`${indent}  block${k}(${sb.inputs.map(decl).join(', ')}):`);
        emitBlock(sb, indent + '    ');
        rows.push(`${indent}    -> (${sb.outputs.map(ref).join(', ')})`);
      });
    }
  };
  emitBlock(g.block, '  ');
  rows.push(`  return (${g.outputs.map(ref).join(', ')})`);

  // Reduce, not Math.max(...spread): graphs can have more rows than the argument limit.
  const widest = (f: (r: Exclude<Row, string>) => number) => rows.reduce((w, r) => (typeof r === 'string' ? w : Math.max(w, f(r))), 0);
  const lhsWidth = Math.min(MAX_LHS, widest((r) => r[0].length));
  const rhsWidth = Math.min(MAX_RHS, widest((r) => (r[2] ? r[1].length : 0)));
  return rows.map((r) => {
    if (typeof r === 'string') return r;
    const [lhs, rhs, comment] = r;
    const head = `${lhs.padEnd(lhsWidth)} ${lhs.trim() ? '=' : ' '} ${rhs}`;
    return comment ? `${head.padEnd(lhsWidth + 3 + rhsWidth)}  ${comment}` : head;
  }).join('\n') + '\n';
}

/** Debug names, made unique by appending the id where two values share one. */
function valueNames(g: Graph): Map<Value, string> {
  const all = g.allValues();
  const count = new Map<string, number>();
  all.forEach((v) => count.set(v.debugName, (count.get(v.debugName) ?? 0) + 1));
  return new Map(all.map((v) => [v, count.get(v.debugName)! > 1 ? `${v.debugName}#${v.id}` : v.debugName]));
}

function formatAttrs(n: Node): string {
  return Object.entries(n.attrs).map(([k, a]) => `${k}=${formatAttr(a)}`).join(', ');
}

export function formatAttr(a: AttrData): string {
  switch (a.kind) {
    case 'i': return a.value.toString();
    case 'f': return formatFloat(a.value);
    case 's': return JSON.stringify(a.value);
    case 't': return formatTensor(a.value);
    case 'is': return `[${a.value.join(', ')}]`;
    case 'fs': return `[${a.value.map(formatFloat).join(', ')}]`;
    case 'ss': return `[${a.value.map((s) => JSON.stringify(s)).join(', ')}]`;
    case 'ival': return formatIValue(a.value);
    case 'ty': return typeToString(a.value);
  }
}

export function formatIValue(v: IValueData): string {
  switch (v.type) {
    case 'int': return v.value.toString();
    case 'float': return formatFloat(v.value);
    case 'bool': return v.value ? 'True' : 'False';
    case 'str': return JSON.stringify(v.value);
    case 'none': return 'None';
    case 'device': return `device(${JSON.stringify(v.value)})`;
    case 'tensor': return formatTensor(v.tensor);
    case 'list': return `[${v.items.map(formatIValue).join(', ')}]`;
    case 'tuple': return `(${v.items.map(formatIValue).join(', ')}${v.items.length === 1 ? ',' : ''})`;
    case 'enum': return `${v.enumType.split('.').pop()}.${v.name}`;
  }
}

/** Floats keep a decimal point so they read apart from ints: 1.0, -inf, 0.125. */
function formatFloat(x: number): string {
  if (Number.isNaN(x)) return 'nan';
  if (!Number.isFinite(x)) return x > 0 ? 'inf' : '-inf';
  return Number.isInteger(x) && Math.abs(x) < 1e21 ? x.toFixed(1) : String(x);
}

function formatTensor(t: TensorHandleLike): string {
  return `<Tensor ${t.dtype} [${t.shape.join(', ')}]>`;
}
