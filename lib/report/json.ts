// The `--json` rendering of a ValidationReport, and a validator for the contract.
//
// Contract (see lib/report/types.ts for every field's meaning):
//   { "model": str,
//     "attention": { "found": int, "decomposed": int, "skipped": [ { "node": str, "reason": str } ] },
//     "graphs": { "standard":   { "nodes": int, "ops": { KIND: int } },
//                 "decomposed": { "nodes": int, "ops": { KIND: int } },
//                 "fused":      { "nodes": int, "ops": { KIND: int }, "groups": int } },
//     "runs": { "original": { "peakBytes": int, "medianMs": num },
//               "unfused":  { "peakBytes": int, "estimatedPeakBytes": int, "medianMs": num, "maxAbsDiff": num|null },
//               "fused":    { "peakBytes": int, "estimatedPeakBytes": int, "medianMs": num, "maxAbsDiff": num|null } },
//     "passed": bool,
//     ...optional extras: format, tolerance, checks, inputs, attentions, memory, drawing, fusedDrawing, environment;
//     graphs.fused.lowering says what each fusion group became, or why it stayed unfused }
// Keys come out in this order (the contract's first, extras after), so outputs diff cleanly.
import type { ValidationReport } from './types';
import { REPORT_FORMAT } from './types';

const TOP_ORDER = ['format', 'model', 'attention', 'graphs', 'runs', 'passed', 'tolerance', 'checks', 'inputs',
  'attentions', 'memory', 'drawing', 'fusedDrawing', 'environment'];
const ORDERS: Record<string, string[]> = {
  attention: ['found', 'decomposed', 'skipped'],
  graphs: ['standard', 'decomposed', 'fused'],
  graph: ['nodes', 'ops', 'groups', 'averageGroupSize', 'attentionOps', 'flops', 'lowering'],
  runs: ['original', 'unfused', 'fused'],
  run: ['peakBytes', 'estimatedPeakBytes', 'medianMs', 'maxAbsDiff'],
};

function ordered(obj: Record<string, unknown>, order: string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const k of order) if (obj[k] !== undefined) out[k] = obj[k];
  for (const k of Object.keys(obj)) if (!(k in out) && obj[k] !== undefined) out[k] = obj[k];
  return out;
}

/** NaN and infinities have no JSON spelling: write them as null (JSON.stringify does too, but
 * silently and only for numbers it sees; this makes the rule explicit for nested arrays). */
function finiteOrNull(_key: string, v: unknown): unknown {
  return typeof v === 'number' && !Number.isFinite(v) ? null : v;
}

/** The report as a plain JSON-ready object with the contract's key order. */
export function reportToJsonObject(report: ValidationReport): Record<string, unknown> {
  const r = { format: REPORT_FORMAT, ...report } as unknown as Record<string, unknown>;
  const graphs = report.graphs as unknown as Record<string, Record<string, unknown>>;
  const runs = report.runs as unknown as Record<string, Record<string, unknown>>;
  const top = ordered(r, TOP_ORDER);
  top.attention = ordered(report.attention as unknown as Record<string, unknown>, ORDERS.attention);
  top.graphs = ordered(Object.fromEntries(Object.entries(graphs).map(([k, g]) => [k, ordered(g, ORDERS.graph)])), ORDERS.graphs);
  top.runs = ordered(Object.fromEntries(Object.entries(runs).map(([k, g]) => [k, ordered(g, ORDERS.run)])), ORDERS.runs);
  return JSON.parse(JSON.stringify(top, finiteOrNull)) as Record<string, unknown>;
}

/** The `--json` text: one object, 2-space indented, with a trailing newline. */
export function reportToJson(report: ValidationReport, indent = 2): string {
  return JSON.stringify(reportToJsonObject(report), null, indent) + '\n';
}

// ---- validation -------------------------------------------------------------------------------

type Check = (v: unknown, at: string, errors: string[]) => void;

const isObj = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

const int = (min = 0): Check => (v, at, e) => {
  if (typeof v !== 'number' || !Number.isInteger(v)) e.push(`${at}: expected an integer, got ${JSON.stringify(v)}`);
  else if (v < min) e.push(`${at}: expected an integer >= ${min}, got ${v}`);
};
const num: Check = (v, at, e) => {
  if (typeof v !== 'number' || !Number.isFinite(v)) e.push(`${at}: expected a number, got ${JSON.stringify(v)}`);
};
const numOrNull: Check = (v, at, e) => {
  if (v !== null) num(v, at, e);
};
const str: Check = (v, at, e) => {
  if (typeof v !== 'string') e.push(`${at}: expected a string, got ${JSON.stringify(v)}`);
};
const bool: Check = (v, at, e) => {
  if (typeof v !== 'boolean') e.push(`${at}: expected a boolean, got ${JSON.stringify(v)}`);
};
const arrayOf = (item: Check): Check => (v, at, e) => {
  if (!Array.isArray(v)) { e.push(`${at}: expected an array`); return; }
  v.forEach((x, i) => item(x, `${at}[${i}]`, e));
};
const record = (value: Check): Check => (v, at, e) => {
  if (!isObj(v)) { e.push(`${at}: expected an object`); return; }
  for (const [k, x] of Object.entries(v)) value(x, `${at}[${JSON.stringify(k)}]`, e);
};
/** Required fields `req`, optional fields `opt`; other keys are allowed (the contract only grows). */
const obj = (req: Record<string, Check>, opt: Record<string, Check> = {}): Check => (v, at, e) => {
  if (!isObj(v)) { e.push(`${at}: expected an object, got ${JSON.stringify(v)}`); return; }
  for (const [k, c] of Object.entries(req)) {
    if (!(k in v) || v[k] === undefined) e.push(`${at}.${k}: missing`);
    else c(v[k], `${at}.${k}`, e);
  }
  for (const [k, c] of Object.entries(opt)) if (v[k] !== undefined) c(v[k], `${at}.${k}`, e);
};
const oneOf = (...vals: string[]): Check => (v, at, e) => {
  if (typeof v !== 'string' || !vals.includes(v)) e.push(`${at}: expected one of ${vals.join(', ')}, got ${JSON.stringify(v)}`);
};

const drawing = obj({
  caption: str,
  nodes: arrayOf(obj(
    { id: str, label: str, kind: oneOf('op', 'input', 'output', 'summary') },
    { group: str, attention: str, title: str, shape: str, lowered: str, kindMs: num },
  )),
  edges: arrayOf(obj({ from: str, to: str })),
}, { totalNodes: int(), drawnNodes: int() });

const graphExtras = { attentionOps: int(), flops: num };
const graph = obj({ nodes: int(), ops: record(int()) }, graphExtras);
const outcomes = arrayOf(obj({ id: str, lowered: bool }, { reason: str, heldBytes: int() }));
const lowering = obj({
  attentionCores: outcomes, projections: outcomes, linearActs: outcomes,
  notLowered: arrayOf(obj({ kind: str, groups: int(), reason: str })), heldWeightBytes: int(),
}, {
  foldedBatchNorms: outcomes, convolutions: outcomes, packedLinears: outcomes, addNorms: outcomes, biasGelus: outcomes,
  maxPools: outcomes, inPlaceOps: int(), writtenOutActivations: record(int()),
});
const fusedGraph = obj({ nodes: int(), ops: record(int()), groups: int() }, { ...graphExtras, averageGroupSize: num, lowering });
const compared = obj({ peakBytes: int(-1), estimatedPeakBytes: int(-1), medianMs: num, maxAbsDiff: numOrNull });

const reportCheck: Check = obj({
  format: str,
  model: str,
  attention: obj({
    found: int(), decomposed: int(),
    skipped: arrayOf(obj({ node: str, reason: str })),
  }, { modules: obj({ found: int(), decomposed: int() }) }),
  graphs: obj({ standard: graph, decomposed: graph, fused: fusedGraph }),
  runs: obj({
    original: obj({ peakBytes: int(-1), medianMs: num }, { estimatedPeakBytes: int(-1) }),
    unfused: compared,
    fused: compared,
  }),
  passed: bool,
}, {
  tolerance: num,
  checks: arrayOf(obj({ name: str, passed: bool, detail: str })),
  timing: obj({
    warmUp: obj({
      original: obj({ runs: int(), settled: bool }),
      unfused: obj({ runs: int(), settled: bool }),
      fused: obj({ runs: int(), settled: bool }),
    }),
    loadAverage: num, cores: int(1), spread: num,
  }, {
    warning: str, fusedSlower: str, slowerOps: arrayOf(obj({ kind: str, fusedMs: num, unfusedMs: num, loweredBy: arrayOf(str) })),
    opTimes: arrayOf(obj({ kind: str, fusedMs: num, unfusedMs: num, loweredBy: arrayOf(str) }, { calls: int() })),
  }),
  inputs: arrayOf(obj({ name: str, shape: arrayOf(int()), dtype: str, source: str })),
  attentions: arrayOf(obj({ id: str, form: oneOf('module', 'native_mha', 'encoder_layer', 'sdpa'), opsExposed: int(), decomposed: bool },
    { heads: int(1), embedDim: int(1), batchFirst: bool, reason: str, maxAbsDiff: numOrNull })),
  memory: obj({
    unfused: arrayOf(obj({ index: int(), node: str, liveBytes: int() })),
    fused: arrayOf(obj({ index: int(), node: str, liveBytes: int() })),
  }, { weightsBytes: int(), fusedExtraWeightsBytes: int() }),
  drawing,
  fusedDrawing: drawing,
  environment: obj({}, {
    torchVersion: str, device: str, node: str, platform: str, torchgraphVersion: str, createdAt: str,
    timings: record(num),
  }),
});

/**
 * Check a parsed `--json` object (or a report) against the contract. Returns the problems found,
 * each as "path: what is wrong"; an empty list means valid. Besides types it checks the
 * contract's invariants: found = decomposed + skipped, passed agrees with the checks, and drawing
 * edges name drawn nodes.
 */
export function validateReportJson(value: unknown): string[] {
  const errors: string[] = [];
  // `format` is required in JSON output; a report object in memory may lack it.
  const withFormat = isObj(value) && value.format === undefined ? { ...value, format: REPORT_FORMAT } : value;
  reportCheck(withFormat, '$', errors);
  if (errors.length || !isObj(value)) return errors;
  const v = value as unknown as ValidationReport;
  if (value.format !== undefined && value.format !== REPORT_FORMAT) {
    errors.push(`$.format: expected ${JSON.stringify(REPORT_FORMAT)}, got ${JSON.stringify(value.format)}`);
  }
  if (v.attention.decomposed + v.attention.skipped.length !== v.attention.found) {
    errors.push(`$.attention: found (${v.attention.found}) != decomposed (${v.attention.decomposed}) `
      + `+ skipped (${v.attention.skipped.length})`);
  }
  if (v.attention.decomposed > v.attention.found) errors.push('$.attention.decomposed: more than found');
  if (v.checks && v.checks.length && v.passed !== v.checks.every((c) => c.passed)) {
    const failed = v.checks.filter((c) => !c.passed).map((c) => c.name).join(', ');
    errors.push(`$.passed: ${v.passed} disagrees with the checks (${failed || 'all passed'})`);
  }
  for (const [k, g] of Object.entries(v.graphs)) {
    const sum = Object.values(g.ops).reduce((a, b) => a + b, 0);
    if (sum !== g.nodes) errors.push(`$.graphs.${k}: ops add up to ${sum}, nodes is ${g.nodes}`);
  }
  for (const key of ['drawing', 'fusedDrawing'] as const) {
    const d = v[key];
    if (!d) continue;
    const ids = new Set<string>();
    d.nodes.forEach((n, i) => {
      if (ids.has(n.id)) errors.push(`$.${key}.nodes[${i}].id: duplicate ${JSON.stringify(n.id)}`);
      ids.add(n.id);
    });
    d.edges.forEach((ed, i) => {
      if (!ids.has(ed.from)) errors.push(`$.${key}.edges[${i}].from: no node ${JSON.stringify(ed.from)}`);
      if (!ids.has(ed.to)) errors.push(`$.${key}.edges[${i}].to: no node ${JSON.stringify(ed.to)}`);
    });
  }
  return errors;
}

export class ReportContractError extends Error {
  override name = 'ReportContractError';
  constructor(readonly problems: string[]) {
    super(`report does not match the --json contract:\n  ${problems.slice(0, 20).join('\n  ')}` +
      (problems.length > 20 ? `\n  ... and ${problems.length - 20} more` : ''));
  }
}

/** Throw ReportContractError unless `value` matches the contract. */
export function assertValidReport(value: unknown): asserts value is ValidationReport {
  const problems = validateReportJson(value);
  if (problems.length) throw new ReportContractError(problems);
}

/** Parse `--json` text and check it. */
export function parseReportJson(text: string): ValidationReport {
  const v = JSON.parse(text) as unknown;
  assertValidReport(v);
  return v;
}
