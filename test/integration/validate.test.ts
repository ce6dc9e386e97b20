// The main job end to end with the real pipeline: `torchgraph validate` on the built-in models.
import { strict as assert } from 'assert';
import { spawnSync } from 'child_process';
import * as path from 'path';
import { validateReportJson } from '../../lib/report/json';
import type { ValidationReport } from '../../lib/report/types';
import { ensureModel, type ModelName } from '../../lib/models';

const ROOT = path.resolve(__dirname, '..', '..');

function cli(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, ['--require', 'tsx/cjs', path.join(ROOT, 'lib', 'cli', 'main.ts'), ...args], { cwd: ROOT, encoding: 'utf8', timeout: 600_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

describe('torchgraph validate (real pipeline)', function () {
  this.timeout(900_000);

  for (const model of ['mha_demo', 'vit_b_16']) {
    it(`${model}: --json matches the contract, every check passes, estimates within 10% of measured peaks`, () => {
      const r = cli('validate', model, '--json');
      assert.equal(r.status, 0, r.stderr + r.stdout.slice(0, 2000));
      const report = JSON.parse(r.stdout) as ValidationReport;
      assert.deepEqual(validateReportJson(report), []);
      assert.equal(report.passed, true);
      assert.equal(report.attention.decomposed, report.attention.found);
      assert.equal(report.attention.found, model === 'vit_b_16' ? 12 : 1);
      for (const run of ['unfused', 'fused'] as const) {
        const x = report.runs[run];
        assert.ok(x.maxAbsDiff !== null && x.maxAbsDiff <= 1e-5, `${run} diff ${x.maxAbsDiff}`);
        const rel = Math.abs(x.estimatedPeakBytes - x.peakBytes) / x.peakBytes;
        console.log(`      ${model} ${run}: estimated ${x.estimatedPeakBytes} B, measured ${x.peakBytes} B (${(rel * 100).toFixed(1)}%)`);
        assert.ok(rel <= 0.1, `${run}: estimate ${x.estimatedPeakBytes} vs measured ${x.peakBytes}`);
      }
      assert.ok(report.graphs.fused.ops['aten::scaled_dot_product_attention'] === report.attention.found);
      assert.equal(report.graphs.decomposed.ops['aten::scaled_dot_product_attention'], undefined);
      assert.ok(report.checks!.some((c) => c.name === 'estimate-vs-measured' && c.passed));
    });
  }

  // Scripted models keep run-time checks as prim::If and loops as prim::Loop: the estimates must
  // follow the branch taken and one iteration, or they count every path at once (seq2seq was
  // 226% over), and early returns of tuples must not break the shape run.
  for (const [model, inputs] of [['seq2seq', ['2x7x30', '2x5x30']], ['control_flow', ['2x16']], ['encoder_pre_norm', null]] as [ModelName, string[] | null][]) {
    it(`${model} scripted: runs, and estimates follow the branches taken (within 10% of measured)`, async () => {
      const fx = await ensureModel(model);
      const specs = inputs ?? fx.inputs.map((i) => i.shape.join('x'));
      const r = cli('validate', fx.variants.scripted!, ...specs.flatMap((s) => ['--input', s]), '--json');
      assert.equal(r.status, 0, r.stderr + r.stdout.slice(0, 2000));
      const report = JSON.parse(r.stdout) as ValidationReport;
      for (const run of ['unfused', 'fused'] as const) {
        const x = report.runs[run];
        const rel = Math.abs(x.estimatedPeakBytes - x.peakBytes) / x.peakBytes;
        console.log(`      ${model} scripted ${run}: estimated ${x.estimatedPeakBytes} B, measured ${x.peakBytes} B (${(rel * 100).toFixed(1)}%)`);
        assert.ok(rel <= 0.1, `${run}: estimate ${x.estimatedPeakBytes} vs measured ${x.peakBytes}`);
      }
    });
  }

  for (const spec of ['2x3', '4x196x768:int64']) {
    it(`inputs the model rejects (${spec}) are bad input: exit 2, one line with torch's reason`, () => {
      const r = cli('validate', 'mha_demo', '--input', spec);
      assert.equal(r.status, 2, r.stderr);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, /the model rejects these inputs: RuntimeError: /);
    });
  }

  it('a model file without --input is a usage error (exit 2, one line)', () => {
    const r = cli('validate', path.join(ROOT, 'package.json'));
    assert.equal(r.status, 2);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  });
});
