// Operator schemas: the names of an op's arguments, so that passes read `arg(n, 'is_causal')`
// instead of `n.inputs[5]`. Nodes exported from TorchScript carry the schema libtorch matched
// (node.schema); nodes our passes emit do not, so the overloads of the ops that passes read are
// listed in schemas-table.ts (strings as torch._C._jit_get_all_schemas() prints them) and the
// overload is picked by argument count and input types, as TorchScript's own matcher would.
// Pure data and parsing: nothing here imports the IR.

export interface ArgSpec {
  name: string;
  /** Schema type without alias annotations, e.g. "Tensor?", "int[]", "ScalarType?". */
  type: string;
  /** The default as written in the schema ("None", "1", "False", "[]"), when there is one. */
  default?: string;
  kwargOnly: boolean;
}

export interface OpSchema {
  /** "aten::softmax" */
  name: string;
  /** "int" for aten::softmax.int; '' when the schema has no overload name. */
  overload: string;
  args: ArgSpec[];
  text: string;
}

/** Split at top-level commas (not inside brackets or parentheses). */
function splitTop(s: string): string[] {
  const out: string[] = [];
  let depth = 0, start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s[i];
    if (c === '(' || c === '[') depth++;
    else if (c === ')' || c === ']') depth--;
    else if (c === ',' && depth === 0) { out.push(s.slice(start, i)); start = i + 1; }
  }
  const last = s.slice(start).trim();
  if (last) out.push(s.slice(start));
  return out.map((x) => x.trim()).filter((x) => x.length > 0);
}

const cache = new Map<string, OpSchema>();

/** Parse "aten::linear(Tensor input, Tensor weight, Tensor? bias=None) -> Tensor". */
export function parseSchema(text: string): OpSchema {
  const hit = cache.get(text);
  if (hit) return hit;
  const open = text.indexOf('(');
  if (open < 0) throw new Error(`not an operator schema: ${text}`);
  const head = text.slice(0, open).trim();
  let depth = 0, close = -1;
  for (let i = open; i < text.length; i++) {
    if (text[i] === '(') depth++;
    else if (text[i] === ')' && --depth === 0) { close = i; break; }
  }
  if (close < 0) throw new Error(`unbalanced operator schema: ${text}`);
  const dot = head.indexOf('.', head.indexOf('::') + 2);
  const name = dot < 0 ? head : head.slice(0, dot);
  const overload = dot < 0 ? '' : head.slice(dot + 1);
  const args: ArgSpec[] = [];
  let kwargOnly = false;
  for (const part of splitTop(text.slice(open + 1, close))) {
    if (part === '*') { kwargOnly = true; continue; }
    const eq = part.indexOf('=');
    const decl = (eq < 0 ? part : part.slice(0, eq)).trim();
    const space = decl.lastIndexOf(' ');
    const type = decl.slice(0, space).replace(/\([^)]*\)/g, '').trim();
    args.push({ name: decl.slice(space + 1), type, ...(eq >= 0 ? { default: part.slice(eq + 1).trim() } : {}), kwargOnly });
  }
  const s: OpSchema = { name, overload, args, text };
  cache.set(text, s);
  return s;
}

/**
 * How a value's type fits a schema type: 2 exactly, 1 loosely (an Int where a Scalar or float is
 * taken, None for an optional), 0 not at all. Input types are the IR's type kinds ('Tensor',
 * 'Int', 'List', ...).
 */
function fit(schemaType: string, kind: string): number {
  const optional = schemaType.endsWith('?');
  const base = optional ? schemaType.slice(0, -1) : schemaType;
  if (kind === 'None') return optional ? 2 : 0;
  if (kind === 'Optional' || kind === 'Other') return 1;
  if (/\[\d*\]$/.test(base)) return kind === 'List' ? 2 : 0;
  switch (base) {
    case 'Tensor': return kind === 'Tensor' ? 2 : 0;
    case 'int': case 'SymInt': case 'ScalarType': case 'Layout': case 'MemoryFormat': return kind === 'Int' ? 2 : 0;
    case 'float': return kind === 'Float' ? 2 : kind === 'Int' ? 1 : 0;
    case 'bool': return kind === 'Bool' ? 2 : 0;
    case 'Scalar': return kind === 'Float' || kind === 'Int' || kind === 'Number' || kind === 'Bool' ? 2 : 0;
    case 'str': return kind === 'String' ? 2 : 0;
    case 'Device': return kind === 'Device' ? 2 : 0;
    default: return 1; // t, Any, Generator, ...: not what overloads are told apart by here
  }
}

/** The overload of `candidates` that takes `inputKinds` (TorchScript nodes carry every argument). */
export function pickOverload(candidates: readonly OpSchema[], inputKinds: readonly string[]): OpSchema | undefined {
  let best: OpSchema | undefined;
  let bestScore = -1;
  for (const s of candidates) {
    if (s.args.length !== inputKinds.length) continue;
    let score = 0;
    for (let i = 0; i < inputKinds.length && score >= 0; i++) {
      const f = fit(s.args[i].type, inputKinds[i]);
      score = f === 0 ? -1 : score + f;
    }
    if (score > bestScore) { best = s; bestScore = score; }
  }
  return best;
}
