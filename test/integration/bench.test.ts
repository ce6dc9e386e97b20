// The benchmark harness: `torchgraph bench` on a user's own file (its runs and PyTorch's anchors on
// that very file, no targets) and the project's `npm run bench` (the suite and its targets). No
// timing is asserted here: times are judged by the benchmark itself, on a quiet machine.
import { strict as assert } from 'assert';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { ROOT, runCli } from '../support/cli';
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

// A user's block with two inputs: `keep` given by name and as ones, so an anchor that drew other
// inputs than torchgraph's (or in another order) shows in its max abs diff.
const MODEL_PY = `import torch
from torch import nn


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(32, 4, batch_first=True)
        self.norm = nn.LayerNorm(32)

    def forward(self, x, keep):
        return self.norm(x + self.attn(x, x, x, need_weights=False)[0]) * keep


def make():
    torch.manual_seed(0)
    return Block()
`;

/** The rows of `bench`'s runs table: run name -> [ms, x original, peak MiB, max abs diff]. */
function runRows(out: string): Map<string, string[]> {
  const rows = out.split('\n').filter((l) => /^\S+ +(\d|skipped)/.test(l)).map((l) => l.trim().split(/ {2,}/));
  return new Map(rows.map((r) => [r[0], r.slice(1)]));
}

describe('torchgraph bench on a user\'s file', function () {
  this.timeout(900_000);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tg-bench-'));
  const inputs = ['-i', 'keep=2x8x1:ones', '-i', 'x=2x8x32'];
  before(() => {
    fs.writeFileSync(path.join(tmp, 'block.py'), MODEL_PY);
    for (const out of ['block.pt', 'block.pt2']) {
      const r = runCli(['export', `${path.join(tmp, 'block.py')}:make`, '-i', 'x=2x8x32', '-i', 'keep=2x8x1:ones', '--out', path.join(tmp, out)]);
      assert.equal(r.code, 0, r.err);
    }
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('--help: ViT-B/16 without a model, no targets (those are npm run bench), the anchors on the file', () => {
    const r = runCli(['bench', '--help']);
    assert.equal(r.code, 0, r.err);
    const flat = r.out.replace(/\s+/g, ' ');
    assert.match(flat, /Without a model it times the built-in ViT-B\/16 at batch 1/);
    assert.match(flat, /There are no targets here: the project's own suite and its targets are `npm run bench`/);
    assert.match(flat, /--anchor-modes <modes>/);
    assert.match(flat, /torch\.jit\.load, as torchgraph's libtorch runs it/);
    const bad = runCli(['bench', path.join(tmp, 'block.pt'), ...inputs, '--anchor-modes', 'eager,jit']);
    assert.equal(bad.code, 2);
    assert.match(bad.err, /anchor modes are eager, inductor, inductor_freezing \(comma-separated\), not jit/);
  });

  it('.pt --anchor-modes eager,inductor: rows for PyTorch on that file, ratios against the original, small diffs, no targets, exit 0', () => {
    const r = runCli(['bench', path.join(tmp, 'block.pt'), ...inputs, '--anchor-modes', 'eager,inductor', '--warmup', '1', '--repeat', '3']);
    assert.equal(r.code, 0, r.err + r.out);
    assert.doesNotMatch(r.out, /targets/);
    assert.match(r.out, /block\.pt on float32\[2, 8, 32\], float32\[2, 8, 1\]: medians of 3 interleaved runs/);
    const rows = runRows(r.out);
    assert.deepEqual([...rows.keys()].sort(), ['eager', 'fused', 'inductor', 'optimized', 'original', 'unfused']);
    for (const [name, [, ratio, , diff]] of rows) {
      assert.ok(Number.isFinite(Number(ratio)) && Number(ratio) > 0, `${name}: x original ${ratio}`);
      if (name !== 'original') assert.ok(Number(diff) <= 1e-5, `${name}: max abs diff ${diff}`);
    }
    // eager is the very file in the same torch: the same inputs give the same outputs.
    assert.equal(rows.get('eager')![3], '0.0e+0');
    assert.match(r.out, /eager: torch\.jit\.load, executor optimizations off, inference mode/);
    assert.match(r.out, /inductor: torch\.compile \(inductor\) of the module TS2EPConverter makes of torch\.jit\.load/);
    assert.match(r.out, /machine peak: float32 GEMM 2048x2048 at \d+ GFLOP\/s/);
  });

  it('.pt2 --anchor-modes eager --json: torch.export.load(...).module() on the same inputs, no targets', () => {
    const r = runCli(['bench', path.join(tmp, 'block.pt2'), ...inputs, '--anchor-modes', 'eager', '--warmup', '0', '--repeat', '2', '--json', '--quiet']);
    assert.equal(r.code, 0, r.err + r.out);
    const report = JSON.parse(r.out) as BenchReport;
    assert.equal(report.targets, undefined);
    assert.equal(report.passed, true);
    const [c] = report.cases;
    assert.deepEqual(c.inputs.map((i) => i.shape), [[2, 8, 32], [2, 8, 1]]);
    assert.equal(c.comparison.external!.eager.samples.length, 2);
    assert.ok(c.anchors!.maxAbsDiffs!.eager <= 1e-5, `eager max abs diff ${c.anchors!.maxAbsDiffs!.eager}`);
    assert.match(c.anchors!.routes!.eager, /torch\.export\.load\(\.\.\.\)\.module\(\)/);
  });
});

describe('npm run bench (scripts/bench.ts)', function () {
  this.timeout(600_000);

  it('keeps the project\'s targets: a miss is exit 1', () => {
    const r = spawnSync(process.execPath, ['--require', 'tsx/cjs', path.join(ROOT, 'scripts', 'bench.ts'), 'mha_demo', '--json'], {
      cwd: ROOT, encoding: 'utf8', maxBuffer: 64 << 20,
    });
    const report = JSON.parse(r.stdout) as BenchReport;
    assert.deepEqual(report.targets!.map((t) => t.name), ['mha_demo: addon overhead over the libtorch forward']);
    assert.equal(r.status, report.passed ? 0 : 1, r.stderr);
  });
});

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
