// Attention forms real code produces beyond nn.MultiheadAttention's: SDPA with grouped-query
// heads (enable_gqa), and a run-time is_causal (scripted nn.Transformer decides it from the
// mask). Each must decompose, lower back to SDPA and equal the original on random inputs, and
// the run-time flag must be honoured both ways (a decomposition that always took the causal
// mask, or never did, fails the non-causal or the causal case).
import { strict as assert } from 'assert';
import { Module, Tensor } from '../../lib';
import { ensureModel } from '../../lib/app/models';
import { prepareGraphs } from '../../lib/pipeline/prepare';
import { compareGraphs } from '../../lib/pipeline/compare';
import { randomTensor } from '../../lib/torchscript/random';
import { tensorFromFile } from '../support/tensors';

const TOL = 1e-4;

describe('attention forms beyond nn.MultiheadAttention (integration)', function () {
  this.timeout(600_000);

  for (const variant of ['traced', 'scripted'] as const) {
    it(`grouped-query SDPA (enable_gqa=True), ${variant}: decomposed, lowered, equal`, async () => {
      const fx = await ensureModel('gqa_sdpa');
      const m = await Module.load(fx.variants[variant]!);
      try {
        const specs = fx.inputs.map((i) => ({ shape: i.shape, dtype: i.dtype }));
        const p = await prepareGraphs(m, specs);
        const { report } = p.decomposition;
        assert.deepEqual(report.skipped, []);
        assert.ok(report.decomposed.length >= 1);
        assert.ok(p.lowering.attentionCores.length >= 1 && p.lowering.attentionCores.every((c) => c.lowered), JSON.stringify(p.lowering.attentionCores));
        assert.ok(p.decomposed.allNodes().some((n) => n.kind === 'aten::repeat_interleave'), 'K/V heads repeated for the query groups');
        const cmp = await compareGraphs(m, { unfused: p.decomposed, fused: p.fused }, specs.map((s, i) => randomTensor(s.shape, s.dtype, 7 + i)), { warmup: 0, repetitions: 1 });
        assert.ok(cmp.runs.unfused.maxAbsDiff! <= TOL && cmp.runs.fused.maxAbsDiff! <= TOL, `unfused ${cmp.runs.unfused.maxAbsDiff}, fused ${cmp.runs.fused.maxAbsDiff}`);
      } finally {
        m.dispose();
      }
    });
  }

  it('scripted nn.Transformer with a run-time is_causal: decomposed, and right for causal and non-causal masks', async () => {
    const fx = await ensureModel('seq2seq_runtime_causal');
    const m = await Module.load(fx.variants.scripted!);
    try {
      const specs = fx.inputs.map((i) => ({ shape: i.shape, dtype: i.dtype }));
      const p = await prepareGraphs(m, specs);
      const { report } = p.decomposition;
      assert.deepEqual(report.skipped, [], 'no attention left intact');
      assert.ok(report.decomposed.length >= 3);
      const [src, tgt] = [randomTensor(specs[0].shape, 'float32', 1), randomTensor(specs[1].shape, 'float32', 2)];
      const causal = tensorFromFile(fx.inputs[2]);
      // A mask that is not causal: the decoder's flag is false and attn_mask itself must be used.
      const L = specs[2].shape[0];
      const banded = Tensor.from(Float32Array.from({ length: L * L }, (_, i) => (Math.abs(Math.floor(i / L) - (i % L)) > 1 ? -Infinity : 0.25 * (i % 3))), [L, L]);
      for (const [what, mask] of [['causal', causal], ['banded, not causal', banded]] as const) {
        const cmp = await compareGraphs(m, { unfused: p.decomposed, fused: p.fused }, [src, tgt, mask], { warmup: 0, repetitions: 1 });
        assert.ok(cmp.runs.unfused.maxAbsDiff! <= TOL, `${what}: unfused ${cmp.runs.unfused.maxAbsDiff}`);
        assert.ok(cmp.runs.fused.maxAbsDiff! <= TOL, `${what}: fused ${cmp.runs.fused.maxAbsDiff}`);
      }
    } finally {
      m.dispose();
    }
  });
});
