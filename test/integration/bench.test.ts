// The benchmark harness (npm run bench): what it reports and how targets are judged. No timing
// is asserted here: times are judged by the benchmark itself, on a quiet machine.
import { strict as assert } from 'assert';
import { evaluateTargets, formatBenchTable, type BenchCaseResult, type BenchReport } from '../../lib/pipeline/bench';
import { runBench } from '../../lib/app/bench';
import { startAnchors } from '../../lib/app/anchors';
import { builtinFile } from '../../lib/app/cli/model';
import { ensureModel } from '../../lib/app/models';
import { runCase } from '../../lib/pipeline/bench';

function quiet(): { out: string[]; opts: { stdout: (s: string) => void; stderr: (s: string) => void } } {
  const out: string[] = [];
  return { out, opts: { stdout: (s) => out.push(s), stderr: () => {} } };
}

describe('bench harness', function () {
  this.timeout(600_000);

  it('mha_demo: three graphs interleaved, measured peaks, diffs, the addon-overhead target, JSON on stdout', async () => {
    const { out, opts } = quiet();
    const report = await runBench({ models: ['mha_demo'], inputs: [], device: 'cpu', seed: 0, warmup: 1, repeat: 3, json: true, verbose: false, project: true, ...opts });
    assert.deepEqual(JSON.parse(out.join('')), JSON.parse(JSON.stringify(report)));
    const [c] = report.cases;
    assert.equal(c.name, 'mha_demo');
    for (const run of Object.values(c.comparison.runs)) {
      assert.equal(run.samples.length, 3);
      assert.ok(run.peakBytes > 0 && run.minMs <= run.medianMs && run.medianMs <= run.maxMs);
    }
    assert.ok(c.comparison.runs.unfused.maxAbsDiff! <= 1e-5 && c.comparison.runs.fused.maxAbsDiff! <= 1e-5);
    assert.deepEqual(c.attentions, { found: 1, decomposed: 1 });
    assert.equal(c.loweredCores, 1);
    assert.deepEqual(report.targets!.map((t) => t.name), ['mha_demo: addon overhead over the libtorch forward']);
  });

  it('other built-in models run on their example inputs; a model file needs --input', async () => {
    const { opts } = quiet();
    const report = await runBench({ models: ['separate_projections'], inputs: [], device: 'cpu', seed: 0, warmup: 0, repeat: 1, json: true, verbose: false, ...opts });
    assert.deepEqual(report.cases[0].inputs.map((i) => i.shape), [[2, 7, 96], [2, 5, 40]]);
    await assert.rejects(runBench({ models: ['/tmp/some-model.pt'], inputs: [], device: 'cpu', seed: 0, json: true, verbose: false, ...opts }), /needs --input/);
  });

  it('anchors: PyTorch eager on the same weights, timed in the same repetitions; the GEMM peak', async () => {
    const fx = await ensureModel('mha_demo');
    const file = builtinFile(fx);
    const inputs = fx.inputs.map((i) => ({ shape: i.shape, dtype: i.dtype }));
    // Eager only: torch.compile takes minutes here, which is the benchmark's business, not a test's.
    const anchors = await startAnchors({ builtin: 'mha_demo', file, inputs }, ['eager']);
    try {
      // The rebuilt model's eager output against the TorchScript module's own: the same weights.
      assert.ok(anchors.eagerMaxAbsDiff! <= 1e-4, `eager max abs diff ${anchors.eagerMaxAbsDiff}`);
      assert.ok((await anchors.gemmGflops()) > 0);
      const r = await runCase({ name: 'mha_demo', model: 'mha_demo', file, inputs, warmup: 1, repetitions: 2 }, { external: anchors.runners });
      const eager = r.comparison.external!.eager;
      assert.equal(eager.samples.length, 2);
      assert.ok(eager.medianMs > 0);
      assert.ok(r.flops > 1e9, `fused FLOPs ${r.flops}`);
      const table = formatBenchTable({ environment: { device: 'cpu', torchVersion: 't', cpus: 2, node: 'v20' } as BenchReport['environment'], gemmGflops: 100, cases: [r], targets: [], passed: true });
      // The optimized model (optimize() on a second load) is timed in the same repetitions.
      assert.equal(r.comparison.external!.optimized.samples.length, 2);
      assert.ok(r.optimizedMaxAbsDiff !== undefined && r.optimizedMaxAbsDiff !== null && r.optimizedMaxAbsDiff <= 1e-5, `optimized max abs diff ${r.optimizedMaxAbsDiff}`);
      assert.match(table, /optimized x +diff optimized +fused \/ eager +optimized \/ eager +GFLOP\/s fused \(% peak\)/);
      assert.match(table, /machine peak: float32 GEMM 2048x2048 at 100 GFLOP\/s/);
    } finally {
      anchors.close();
    }
    await assert.rejects(startAnchors({ builtin: 'no_such_model', file, inputs }, ['eager']), /anchors for no_such_model: KeyError/);
  });

  it('targets: ratios against their limits, MISS in the table when over', () => {
    const run = (medianMs: number, peakBytes: number) => ({ name: 'original' as const, medianMs, minMs: medianMs, maxMs: medianMs, samples: [medianMs], peakBytes, maxAbsDiff: 0 });
    const result = (name: string, o: [number, number], u: [number, number], f: [number, number]): BenchCaseResult => ({
      name, model: name, inputs: [], attentions: { found: 1, decomposed: 1 }, loweredCores: 1, cores: 1, flops: 4e9, prepareMs: {},
      addonOverhead: { wallMs: 10.2, nativeMs: 10, ratio: 0.02 },
      comparison: { device: 'cpu', rssDeltaBytes: 0, load: { loadAverage: 0, cores: 2, spread: 0 }, runs: { original: run(...o), unfused: { ...run(...u), name: 'unfused' }, fused: { ...run(...f), name: 'fused' } } },
    });
    const targets = evaluateTargets([
      result('vit_b_16 batch 1', [200, 100], [210, 100], [190, 66]),
      result('attention L=2048', [1, 1], [1, 400], [1, 26]),
      result('attention core L=2048', [1, 1], [1, 400], [1, 8]),
    ]);
    const byName = new Map(targets.map((t) => [t.name, t]));
    assert.equal(byName.get('ViT-B/16 b1: fused time / original')!.value, 0.95);
    assert.equal(byName.get('ViT-B/16 b1: unfused time / original')!.passed, true);
    assert.equal(byName.get('ViT-B/16 b1: fused peak / original peak')!.value, 0.66);
    assert.equal(byName.get('attention core L=2048: fused peak / unfused peak')!.passed, true);
    assert.equal(byName.get('attention L=2048: fused peak / unfused peak')!.passed, false);
    const table = formatBenchTable({ environment: { device: 'cpu', torchVersion: 't', cpus: 2, node: 'v20' } as BenchReport['environment'], cases: [], targets, passed: false });
    assert.match(table, /^ {2}MISS attention L=2048: fused peak \/ unfused peak: 0\.065 \(limit 0\.05\)/m);
    assert.match(table, /^ {2}ok {3}attention core L=2048/m);
  });
});
