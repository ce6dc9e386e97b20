// The --json contract: shape, key order, null for what cannot be measured, and the validator.
import { strict as assert } from 'assert';
import { assertValidReport, parseReportJson, ReportContractError, reportToJson, reportToJsonObject, validateReportJson } from '../../lib/report/json';
import { sampleReport } from '../../lib/report/sample';
import { REPORT_FORMAT, type ValidationReport } from '../../lib/report/types';

/** The smallest report the contract allows (no extras). */
function minimal(): ValidationReport {
  return {
    model: 'm.pt',
    attention: { found: 1, decomposed: 1, skipped: [] },
    graphs: {
      standard: { nodes: 3, ops: { 'aten::add': 1, 'call_module:MultiheadAttention': 1, 'prim::Constant': 1 } },
      decomposed: { nodes: 2, ops: { 'aten::linear': 2 } },
      fused: { nodes: 1, ops: { 'aten::linear': 1 }, groups: 1 },
    },
    runs: {
      original: { peakBytes: 100, medianMs: 1.5 },
      unfused: { peakBytes: 120, estimatedPeakBytes: 118, medianMs: 1.7, maxAbsDiff: 0 },
      fused: { peakBytes: 90, estimatedPeakBytes: 88, medianMs: 1.4, maxAbsDiff: 1e-7 },
    },
    passed: true,
  };
}

const clone = <T>(x: T): T => JSON.parse(JSON.stringify(x)) as T;

describe('report: --json contract', () => {
  it('a minimal report and the full sample are valid', () => {
    assert.deepEqual(validateReportJson(minimal()), []);
    assert.deepEqual(validateReportJson(JSON.parse(reportToJson(minimal()))), []);
    const full = JSON.parse(reportToJson(sampleReport()));
    assert.deepEqual(validateReportJson(full), []);
    assert.equal(full.format, REPORT_FORMAT);
  });

  it('writes the contract keys first and in the documented order', () => {
    const o = reportToJsonObject(sampleReport());
    assert.deepEqual(Object.keys(o).slice(0, 6), ['format', 'model', 'attention', 'graphs', 'runs', 'passed']);
    assert.deepEqual(Object.keys(o.attention as object), ['found', 'decomposed', 'skipped']);
    assert.deepEqual(Object.keys(o.graphs as object), ['standard', 'decomposed', 'fused']);
    assert.deepEqual(Object.keys((o.graphs as Record<string, object>).fused).slice(0, 3), ['nodes', 'ops', 'groups']);
    assert.deepEqual(Object.keys(o.runs as object), ['original', 'unfused', 'fused']);
    assert.deepEqual(Object.keys((o.runs as Record<string, object>).unfused), ['peakBytes', 'estimatedPeakBytes', 'medianMs', 'maxAbsDiff']);
  });

  it('is stable: the same report gives the same text', () => {
    assert.equal(reportToJson(sampleReport()), reportToJson(sampleReport()));
    assert.ok(reportToJson(minimal()).endsWith('}\n'));
  });

  it('writes NaN and infinities as null', () => {
    const r = minimal();
    r.runs.unfused.maxAbsDiff = NaN;
    r.runs.fused.medianMs = Infinity;
    r.passed = false;
    const o = JSON.parse(reportToJson(r));
    assert.equal(o.runs.unfused.maxAbsDiff, null);
    assert.equal(o.runs.fused.medianMs, null);
    // null is allowed for maxAbsDiff (not comparable) but a time must be a number.
    assert.deepEqual(validateReportJson(o), ['$.runs.fused.medianMs: expected a number, got null']);
  });

  const broken: [string, (r: Record<string, any>) => void, RegExp][] = [
    ['missing model', (r) => { delete r.model; }, /^\$\.model: missing$/],
    ['model not a string', (r) => { r.model = 3; }, /^\$\.model: expected a string, got 3$/],
    ['missing runs.fused', (r) => { delete r.runs.fused; }, /^\$\.runs\.fused: missing$/],
    ['fractional node count', (r) => { r.graphs.standard.nodes = 2.5; }, /^\$\.graphs\.standard\.nodes: expected an integer, got 2\.5$/],
    ['negative count', (r) => { r.attention.found = -1; }, /^\$\.attention\.found: expected an integer >= 0, got -1$/],
    ['fused without groups', (r) => { delete r.graphs.fused.groups; }, /^\$\.graphs\.fused\.groups: missing$/],
    ['op count not an int', (r) => { r.graphs.decomposed.ops['aten::linear'] = 'two'; }, /^\$\.graphs\.decomposed\.ops\["aten::linear"\]: expected an integer/],
    ['skipped entry without reason', (r) => { r.attention.skipped = [{ node: 'a' }]; r.attention.decomposed = 0; }, /^\$\.attention\.skipped\[0\]\.reason: missing$/],
    ['passed not a bool', (r) => { r.passed = 'yes'; }, /^\$\.passed: expected a boolean/],
    ['peak below -1', (r) => { r.runs.original.peakBytes = -2; }, /^\$\.runs\.original\.peakBytes: expected an integer >= -1/],
    ['found != decomposed + skipped', (r) => { r.attention.found = 3; }, /^\$\.attention: found \(3\) != decomposed \(1\) \+ skipped \(0\)$/],
    ['ops do not add up to nodes', (r) => { r.graphs.fused.nodes = 5; }, /^\$\.graphs\.fused: ops add up to 1, nodes is 5$/],
    ['passed disagrees with checks', (r) => { r.checks = [{ name: 'a', passed: false, detail: 'x' }]; }, /^\$\.passed: true disagrees with the checks \(a\)$/],
    ['wrong format', (r) => { r.format = 'other/9'; }, /^\$\.format: expected "torchgraph\.validate\/1"/],
    ['bad attention form', (r) => { r.attentions = [{ id: 'a', form: 'flash', opsExposed: 1, decomposed: true }]; }, /^\$\.attentions\[0\]\.form: expected one of module, native_mha, encoder_layer, sdpa/],
    ['edge to an unknown node', (r) => { r.drawing = { caption: 'c', nodes: [{ id: 'a', label: 'a', kind: 'op' }], edges: [{ from: 'a', to: 'b' }] }; }, /^\$\.drawing\.edges\[0\]\.to: no node "b"$/],
    ['timeline point without bytes', (r) => { r.memory = { unfused: [{ index: 0, node: 'x' }], fused: [] }; }, /^\$\.memory\.unfused\[0\]\.liveBytes: missing$/],
  ];
  for (const [what, mutate, re] of broken) {
    it(`finds: ${what}`, () => {
      const r = clone(minimal()) as Record<string, any>;
      mutate(r);
      const problems = validateReportJson(r);
      assert.ok(problems.length >= 1, 'a problem is reported');
      assert.match(problems[0], re, problems.join('\n'));
    });
  }

  it('rejects what is not an object', () => {
    for (const v of [null, 3, 'x', []]) assert.ok(validateReportJson(v).length > 0);
  });

  it('extra fields are allowed (the contract only grows)', () => {
    const r = clone(minimal()) as Record<string, any>;
    r.somethingNew = { a: 1 };
    r.graphs.fused.bytesSaved = 12;
    assert.deepEqual(validateReportJson(r), []);
  });

  it('assertValidReport and parseReportJson throw a ReportContractError listing the problems', () => {
    const r = clone(minimal()) as Record<string, any>;
    delete r.runs;
    assert.throws(() => assertValidReport(r), (e: unknown) => e instanceof ReportContractError && e.problems[0] === '$.runs: missing');
    assert.throws(() => parseReportJson('{"model": "x"}'), ReportContractError);
    assert.equal(parseReportJson(reportToJson(minimal())).model, 'm.pt');
  });
});
