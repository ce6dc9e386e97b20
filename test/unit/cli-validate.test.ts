// runValidation against a stand-in pipeline: what is checked, how the report is assembled, and
// that it always matches the --json contract. No libtorch needed.
import { strict as assert } from 'assert';
import { Graph } from '../../lib/core/ir';
import { ClassType, TensorType } from '../../lib/core/ir/types';
import type { Module } from '../../lib/torchscript/module';
import type { Tensor } from '../../lib/torchscript/tensor';
import { runValidation, DEFAULT_TOLERANCE, type RunStage, type ValidationOptions, type ValidationPipeline } from '../../lib/pipeline/stages';
import { validateReportJson, reportToJson } from '../../lib/report/json';
import { sampleDecomposedGraph } from '../../lib/report/sample';
import { graphStats } from '../../lib/report/stats';

/** forward(x) = x + attn(norm(x)), as the standard view shows mha_demo. */
function standardGraph(): Graph {
  const g = new Graph();
  const self = g.addInput(ClassType('__torch__.MhaDemo'), 'self');
  const x = g.addInput(TensorType, 'x');
  const attn = g.createNode('prim::GetAttr', [self], [ClassType('__torch__.torch.nn.modules.activation.MultiheadAttention')], { name: { kind: 's', value: 'attn' } }).output;
  const norm = g.createNode('prim::GetAttr', [self], [ClassType('__torch__.torch.nn.modules.normalization.___torch_mangle_0.LayerNorm')], { name: { kind: 's', value: 'norm' } }).output;
  const n = g.createNode('prim::CallMethod', [norm, x], [TensorType], { name: { kind: 's', value: 'forward' } }).output;
  const a = g.createNode('prim::CallMethod', [attn, n], [TensorType], { name: { kind: 's', value: 'forward' } }).output;
  const one = g.insertConstant(1n);
  g.registerOutput(g.createNode('aten::add', [x, a, one], [TensorType]).output);
  return g;
}

interface FakeOpts { unfusedDiff?: number | null; fusedDiff?: number | null; skipped?: boolean; extraCheck?: boolean; throwIn?: string }

function fakePipeline(o: FakeOpts = {}) {
  const calls: string[] = [];
  let disposed = 0;
  const sample = sampleDecomposedGraph(2);
  const fused = sample.graph.clone();
  const pipeline: ValidationPipeline = {
    load: async (file, { device }) => {
      calls.push(`load ${file} ${device}`);
      if (o.throwIn === 'load') throw new Error('load failed');
      return { dispose: () => { disposed++; } } as unknown as Module;
    },
    standard: () => { calls.push('standard'); return { graph: standardGraph() }; },
    decompose: (_m, std) => {
      calls.push(`decompose ${std.allNodes().length}`);
      if (o.throwIn === 'decompose') throw new Error('decompose failed');
      return {
        graph: sample.graph,
        attention: o.skipped
          ? { found: 2, decomposed: 1, skipped: [{ node: 'encoder.layers.encoder_layer_1.self_attention', reason: 'kdim != embed_dim with add_bias_kv' }] }
          : { found: 2, decomposed: 2, skipped: [] },
        attentions: [0, 1].map((i) => ({ id: `encoder.layers.encoder_layer_${i}.self_attention`, form: 'native_mha' as const, heads: 12, embedDim: 768, batchFirst: true, opsExposed: 23, decomposed: !(o.skipped && i === 1) })),
        stats: { flops: 1.5e9 },
      };
    },
    partition: (_m, dec, d) => {
      calls.push(`partition ${dec === sample.graph} ${d.attention.found}`);
      return { graph: fused, groups: 10, estimatedPeakBytes: { unfused: 5_000_000, fused: 3_000_000 }, groupOf: (n) => sample.groups.get(n), stats: { averageGroupSize: 2.5, flops: 1.5e9 } };
    },
    run: async (_m, graphs, inputs, opts): Promise<RunStage> => {
      calls.push(`run ${graphs.fused === fused} ${inputs.length} ${opts.device} ${opts.seed}`);
      return {
        original: { peakBytes: 4_000_000, medianMs: 10 },
        unfused: { peakBytes: 5_100_000, medianMs: 12, maxAbsDiff: o.unfusedDiff === undefined ? 1e-6 : o.unfusedDiff },
        fused: { peakBytes: 3_050_000, medianMs: 9, maxAbsDiff: o.fusedDiff === undefined ? 2e-6 : o.fusedDiff },
        attentionDiffs: { 'encoder.layers.encoder_layer_0.self_attention': 5e-7 },
        checks: o.extraCheck ? [{ name: 'estimate-within-10pct', passed: false, detail: 'fused estimate 3.00 MB vs measured 3.05 MB' }] : undefined,
      };
    },
    environment: () => ({ torchVersion: '2.13.0+cpu' }),
  };
  return { pipeline, calls, disposed: () => disposed, sample };
}

const baseOpts = (): ValidationOptions => ({
  model: 'mha_demo', file: '/models/mha_demo.pt', device: 'cpu', seed: 3,
  inputs: [{} as Tensor], inputInfo: [{ name: 'x', shape: [4, 196, 768], dtype: 'float32', source: 'example input of mha_demo' }],
  environment: { torchgraphVersion: '0.1.0' },
});

describe('cli: runValidation with a stand-in pipeline', () => {
  it('runs the stages in order and assembles a report that matches the contract', async () => {
    const f = fakePipeline();
    const lines: string[] = [];
    const r = await runValidation(f.pipeline, { ...baseOpts(), log: (l) => lines.push(l) });
    assert.deepEqual(f.calls, ['load /models/mha_demo.pt cpu', 'standard', 'decompose 6', 'partition true 2', 'run true 1 cpu 3']);
    assert.equal(f.disposed(), 1, 'the model is disposed');
    assert.ok(lines.length >= 5);
    assert.deepEqual(validateReportJson(JSON.parse(reportToJson(r))), []);
    assert.equal(r.passed, true);
    assert.equal(r.model, 'mha_demo');
    assert.equal(r.tolerance, DEFAULT_TOLERANCE);
    assert.deepEqual(r.checks!.map((c) => [c.name, c.passed]), [['unfused-matches', true], ['fused-matches', true], ['attention-decomposed', true], ['estimate-vs-measured', true]]);
    // Stats: computed from the graphs, overridden/extended by the stage.
    assert.equal(r.graphs.standard.nodes, 6);
    assert.equal(r.graphs.standard.ops['call_module:MultiheadAttention'], 1);
    assert.equal(r.graphs.standard.ops['call_module:LayerNorm'], 1, 'mangled class names are shortened');
    assert.equal(r.graphs.standard.attentionOps, 1);
    assert.deepEqual(r.graphs.decomposed.ops, graphStats(f.sample.graph).ops);
    const tagged = f.sample.graph.allNodes().filter((n) => n.meta.attention !== undefined && n.kind.startsWith('aten::')).length;
    assert.ok(tagged > 20);
    assert.equal(r.graphs.decomposed.attentionOps, tagged, 'aten ops tagged node.meta.attention are attention ops (constants and lists are not)');
    assert.equal(r.graphs.decomposed.flops, 1.5e9);
    assert.equal(r.graphs.fused.groups, 10);
    assert.equal(r.graphs.fused.averageGroupSize, 2.5);
    // Runs: measured from run, estimates from partition.
    assert.deepEqual(r.runs.unfused, { peakBytes: 5_100_000, estimatedPeakBytes: 5_000_000, medianMs: 12, maxAbsDiff: 1e-6 });
    assert.deepEqual(r.runs.original, { peakBytes: 4_000_000, medianMs: 10 });
    // Extras.
    assert.equal(r.attentions![0].maxAbsDiff, 5e-7);
    assert.equal(r.attentions![1].maxAbsDiff, undefined);
    assert.ok(r.drawing!.nodes.some((n) => n.group !== undefined), 'groups reach the drawing');
    assert.ok(r.drawing!.nodes.some((n) => n.attention === 'encoder.layers.encoder_layer_0.self_attention'));
    assert.equal(r.environment!.torchVersion, '2.13.0+cpu');
    assert.equal(r.environment!.torchgraphVersion, '0.1.0');
    for (const k of ['load', 'standard', 'decompose', 'partition', 'run', 'total']) assert.equal(typeof r.environment!.timings![k], 'number', k);
  });

  it('a diff over the tolerance fails the report', async () => {
    const r = await runValidation(fakePipeline({ fusedDiff: 3e-3 }).pipeline, baseOpts());
    assert.equal(r.passed, false);
    const c = r.checks!.find((x) => x.name === 'fused-matches')!;
    assert.equal(c.passed, false);
    assert.equal(c.detail, 'fused vs original: max abs diff 3.00e-3 > 0.0001');
    assert.deepEqual(validateReportJson(JSON.parse(reportToJson(r))), []);
  });

  it('the tolerance is an option', async () => {
    const r = await runValidation(fakePipeline({ fusedDiff: 3e-3 }).pipeline, { ...baseOpts(), tolerance: 1e-2 });
    assert.equal(r.passed, true);
    assert.equal(r.tolerance, 1e-2);
  });

  it('outputs that cannot be compared (NaN or null) fail, and are null in JSON', async () => {
    for (const d of [NaN, null]) {
      const r = await runValidation(fakePipeline({ unfusedDiff: d }).pipeline, baseOpts());
      assert.equal(r.passed, false);
      assert.equal(r.runs.unfused.maxAbsDiff, null);
      assert.match(r.checks![0].detail, /could not be compared/);
      const json = JSON.parse(reportToJson(r));
      assert.equal(json.runs.unfused.maxAbsDiff, null);
      assert.deepEqual(validateReportJson(json), []);
    }
  });

  it('a skipped attention fails the attention check and is reported with its reason', async () => {
    const r = await runValidation(fakePipeline({ skipped: true }).pipeline, baseOpts());
    assert.equal(r.passed, false);
    const c = r.checks!.find((x) => x.name === 'attention-decomposed')!;
    assert.equal(c.passed, false);
    assert.match(c.detail, /^1 of 2 attentions decomposed; skipped: encoder\.layers\.encoder_layer_1\.self_attention \(kdim != embed_dim with add_bias_kv\)$/);
    assert.deepEqual(r.attention.skipped, [{ node: 'encoder.layers.encoder_layer_1.self_attention', reason: 'kdim != embed_dim with add_bias_kv' }]);
  });

  it('an estimate more than 10% from its measurement fails estimate-vs-measured', async () => {
    const f = fakePipeline();
    const partition = f.pipeline.partition;
    f.pipeline.partition = async (...a) => ({ ...(await partition(...a)), estimatedPeakBytes: { unfused: 5_000_000, fused: 2_700_000 } });
    const r = await runValidation(f.pipeline, baseOpts());
    const c = r.checks!.find((x) => x.name === 'estimate-vs-measured')!;
    assert.equal(c.passed, false);
    assert.match(c.detail, /unfused off by .* \(2\.0%\), within the 10% limit; fused off by .* \(11\.5%\), over the 10% limit/);
    assert.equal(r.passed, false);
  });

  it("the runtime's own checks count", async () => {
    const r = await runValidation(fakePipeline({ extraCheck: true }).pipeline, baseOpts());
    assert.equal(r.passed, false);
    assert.equal(r.checks!.at(-1)!.name, 'estimate-within-10pct');
  });

  it('a stage that throws propagates, and the model is still disposed', async () => {
    const f = fakePipeline({ throwIn: 'decompose' });
    await assert.rejects(runValidation(f.pipeline, baseOpts()), /decompose failed/);
    assert.equal(f.disposed(), 1);
  });
});
