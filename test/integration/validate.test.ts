// The main job end to end with the real pipeline: `torchgraph validate` on the built-in models.
import { strict as assert } from 'assert';
import { runCli, ROOT, type CliResult } from '../support/cli';
import * as path from 'path';
import { validateReportJson } from '../../lib/report/json';
import type { ValidationReport } from '../../lib/report/types';
import { ensureModel, type ModelName } from '../../lib/app/models';

function cli(...args: string[]): CliResult {
  return runCli(args);
}

describe('torchgraph validate (real pipeline)', function () {
  this.timeout(900_000);

  for (const model of ['mha_demo', 'vit_b_16']) {
    it(`${model}: --json matches the contract, every check passes, estimates within 10% of measured peaks`, () => {
      const r = cli('validate', model, '--json');
      assert.equal(r.code, 0, r.err + r.out.slice(0, 2000));
      const report = JSON.parse(r.out) as ValidationReport;
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
      // The HTML report's extras: a core diff per attention, the fused graph with SDPA, time per op kind.
      assert.ok(report.attentions!.every((a) => typeof a.maxAbsDiff === 'number' && a.maxAbsDiff < 1e-4), JSON.stringify(report.attentions));
      assert.ok(report.fusedDrawing!.nodes.some((n) => n.lowered === 'attention_core' && /^\[/.test(n.shape ?? '')));
      const sdpa = report.timing!.opTimes!.find((o) => o.kind === 'aten::scaled_dot_product_attention');
      assert.equal(sdpa?.calls, report.attention.found);
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
      assert.equal(r.code, 0, r.err + r.out.slice(0, 2000));
      const report = JSON.parse(r.out) as ValidationReport;
      for (const run of ['unfused', 'fused'] as const) {
        const x = report.runs[run];
        const rel = Math.abs(x.estimatedPeakBytes - x.peakBytes) / x.peakBytes;
        console.log(`      ${model} scripted ${run}: estimated ${x.estimatedPeakBytes} B, measured ${x.peakBytes} B (${(rel * 100).toFixed(1)}%)`);
        assert.ok(rel <= 0.1, `${run}: estimate ${x.estimatedPeakBytes} vs measured ${x.peakBytes}`);
      }
      // Timed after warming up until successive runs agree, and said so.
      for (const run of ['original', 'unfused', 'fused'] as const) assert.ok(report.timing!.warmUp[run].runs >= 2, JSON.stringify(report.timing));
      if (model === 'encoder_pre_norm') {
        // A scripted nn.TransformerEncoderLayer holds PyTorch's fast path and its slow path:
        // two sites, one attention, counted once.
        assert.equal(report.attention.found, 2 * report.attention.modules!.found, JSON.stringify(report.attention));
        assert.equal(report.attention.modules!.decomposed, report.attention.modules!.found);
        assert.match(report.checks!.find((c) => c.name === 'attention-decomposed')!.detail, new RegExp(`^${report.attention.modules!.found} of ${report.attention.modules!.found} attentions decomposed \\(`));
      }
    });
  }

  // validate, bench and inspect (every view: the fused one, and the standard one, which used to
  // type an int64 input it would never run) check the inputs on the unmodified model first.
  for (const spec of ['2x3', '4x196x768:int64']) {
    for (const args of [['validate'], ['bench', '--repeat', '1'], ['inspect', '--view', 'fused'], ['inspect']]) {
      it(`${args.join(' ')}: inputs the model rejects (${spec}) are bad input: exit 2, one line with torch's reason`, () => {
        const r = cli(args[0], 'mha_demo', ...args.slice(1), '--input', spec, '--quiet');
        assert.equal(r.code, 2, r.err);
        assert.equal(r.err.trim().split('\n').length, 1, r.err);
        assert.match(r.err, /the model rejects these inputs: RuntimeError: /);
      });
    }
  }

  it('a model file without --input is a usage error (exit 2, one line)', () => {
    const r = cli('validate', path.join(ROOT, 'package.json'));
    assert.equal(r.code, 2);
    assert.equal(r.err.trim().split('\n').length, 1, r.err);
  });
});
