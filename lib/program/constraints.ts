// The input shapes a torch.export program allows: each dim of each user input is a static size,
// or a symbol with the range torch.export recorded (Dim(min, max)). torch's own guards check
// them before the program runs; a rebuilt graph would not (it may even run, and give a result
// the program never promised), so loadProgram's module checks them first.
import { TorchGraphError } from '../core/errors';
import type { ModelJson, SymIntValue } from './format';

export type DimConstraint = { size: number } | { symbol: string; min: number; max: number | null } | null;

export interface InputConstraint { name: string; dims: DimConstraint[] }

/** The symbol of a size expression that is one symbol ("s77", "Symbol('s77', positive=True, integer=True)"); else undefined. */
function symbolOf(expr: string): { name: string; positive: boolean } | undefined {
  const plain = /^\s*([A-Za-z_]\w*)\s*$/.exec(expr);
  if (plain) return { name: plain[1], positive: false };
  const sym = /^\s*Symbol\(\s*'([A-Za-z_]\w*)'([^)]*)\)\s*$/.exec(expr);
  return sym ? { name: sym[1], positive: /positive\s*=\s*True/.test(sym[2]) } : undefined;
}

function dimOf(d: SymIntValue, ranges: NonNullable<ModelJson['range_constraints']>): DimConstraint {
  if (typeof d.as_int === 'number') return { size: d.as_int };
  const s = d.as_expr ? symbolOf(d.as_expr.expr_str) : undefined;
  if (!s) return null; // an expression of symbols: torch checks it; not read here
  const r = ranges[s.name] ?? {};
  const min = Math.max(typeof r.min_val === 'number' ? r.min_val : 0, s.positive ? 1 : 0);
  return { symbol: s.name, min, max: typeof r.max_val === 'number' && Number.isFinite(r.max_val) ? r.max_val : null };
}

/** Each user input's dims as the program constrains them, in forward's order. */
export function inputConstraints(program: ModelJson): InputConstraint[] {
  const values = program.graph_module.graph.tensor_values;
  const ranges = program.range_constraints ?? {};
  const out: InputConstraint[] = [];
  for (const spec of program.graph_module.signature.input_specs) {
    const arg = (spec as { user_input?: { arg: { as_tensor?: { name: string } } } }).user_input?.arg;
    if (!arg) continue;
    const meta = arg.as_tensor ? values[arg.as_tensor.name] : undefined;
    out.push({ name: arg.as_tensor?.name ?? `input ${out.length}`, dims: meta ? meta.sizes.map((d) => dimOf(d, ranges)) : [] });
  }
  return out;
}

/**
 * Throws ERR_INVALID_ARG naming the input, the dim and what the program allows when a shape
 * breaks a constraint: a static size, a symbol's range, or one symbol bound to two sizes.
 * `shapes[i]` is the i-th user input's shape (undefined: not a tensor, or not given).
 */
export function checkInputShapes(constraints: readonly InputConstraint[], shapes: readonly (readonly number[] | undefined)[]): void {
  const bound = new Map<string, { size: number; where: string }>();
  constraints.forEach((c, i) => {
    const shape = shapes[i];
    if (!shape || !c.dims.length) return;
    const bad = (why: string) =>
      new TorchGraphError('ERR_INVALID_ARG', `input ${c.name}: ${why} (torch.export program's shape constraints)`);
    if (shape.length !== c.dims.length) {
      throw bad(`has rank ${shape.length} ([${shape.join(', ')}]); the program takes rank ${c.dims.length}`);
    }
    c.dims.forEach((d, j) => {
      const n = shape[j];
      if (!d) return;
      if ('size' in d) {
        if (n !== d.size) {
          throw bad(`dim ${j} is ${n}; the program was exported with a static size of ${d.size} there ` +
            '(export it with a torch.export.Dim for this dim to vary it)');
        }
        return;
      }
      if (n < d.min || (d.max !== null && n > d.max)) {
        throw bad(`dim ${j} is ${n}; the program allows ${d.min} to ${d.max ?? 'any size'} there (Dim ${d.symbol})`);
      }
      const prev = bound.get(d.symbol);
      if (prev && prev.size !== n) {
        throw bad(`dim ${j} is ${n}, but ${prev.where} is ${prev.size}: the program has one size (Dim ${d.symbol}) for both`);
      }
      if (!prev) bound.set(d.symbol, { size: n, where: `${c.name} dim ${j}` });
    });
  });
}
