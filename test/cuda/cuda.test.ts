// CUDA checks: run on a GPU machine with scripts/cuda-check.sh (skipped elsewhere, saying why).
import { strict as assert } from 'assert';
import { Module, runtimeInfo } from '../../lib';
import { ensureModel, type ModelName } from '../../lib/app/models';
import { prepareGraphs } from '../../lib/pipeline/prepare';
import { compareGraphs } from '../../lib/pipeline/compare';
import { tensorFromFile, maxAbsDiff } from '../support/tensors';
import type { Tensor } from '../../lib';

describe('cuda', function () {
  this.timeout(600_000);
  before(function () {
    const info = runtimeInfo();
    if (!info.cudaAvailable) {
      console.log(`      SKIP: no CUDA here (libtorch ${info.libtorchHasCuda ? 'with' : 'without'} CUDA, ${info.cudaDevices} devices)`);
      this.skip();
    }
  });

  // separate_projections: on CUDA its separate q/k/v, k/v and gate/up weights are concatenated by default.
  for (const name of ['mha_demo', 'vit_b_16', 'separate_projections'] as ModelName[]) {
    it(`${name}: forward on cuda matches PyTorch's CPU output; all three graphs agree`, async () => {
      const fx = await ensureModel(name);
      const m = await Module.load(fx.variants.traced!, { device: 'cuda' });
      assert.equal(m.device, 'cuda:0');
      const x = fx.inputs.map(tensorFromFile);
      const out = (await m.forward(...x.map((t) => t.to('cuda')))) as Tensor;
      assert.equal(out.device, 'cuda:0');
      const diff = maxAbsDiff(out, fx.outputs[0]);
      console.log(`      ${name} cuda vs cpu reference: max abs diff ${diff.toExponential(2)}`);
      assert.ok(diff <= 1e-3);
      const prepared = await prepareGraphs(m, fx.inputs.map((i) => ({ shape: i.shape, dtype: i.dtype })));
      const cmp = await compareGraphs(m, { unfused: prepared.decomposed, fused: prepared.fused }, x, { warmup: 2, repetitions: 5 });
      for (const r of Object.values(cmp.runs)) console.log(`      ${name} ${r.name}: ${r.medianMs.toFixed(2)} ms, peak ${(r.peakBytes / 2 ** 20).toFixed(2)} MiB, diff ${r.maxAbsDiff}`);
      assert.ok(cmp.runs.unfused.maxAbsDiff! <= 1e-4 && cmp.runs.fused.maxAbsDiff! <= 1e-4);
      assert.ok(cmp.runs.original.peakBytes > 0, 'the CUDA caching allocator reports a peak');
      if (name === 'separate_projections') assert.ok(prepared.lowering.projections.every((p) => p.lowered) && prepared.lowering.heldWeightBytes > 0, JSON.stringify(prepared.lowering.projections));
      m.dispose();
    });
  }

  it('attention core L=2048 on cuda: fused peak is a small fraction of unfused', async () => {
    const fx = await ensureModel('attention_core_2048');
    const m = await Module.load(fx.variants.traced!, { device: 'cuda' });
    const prepared = await prepareGraphs(m, fx.inputs.map((i) => ({ shape: i.shape, dtype: i.dtype })));
    const cmp = await compareGraphs(m, { unfused: prepared.decomposed, fused: prepared.fused }, fx.inputs.map(tensorFromFile), { warmup: 2, repetitions: 5 });
    const { unfused, fused } = cmp.runs;
    console.log(`      L=2048 cuda: unfused ${(unfused.peakBytes / 2 ** 20).toFixed(1)} MiB ${unfused.medianMs.toFixed(2)} ms, fused ${(fused.peakBytes / 2 ** 20).toFixed(1)} MiB ${fused.medianMs.toFixed(2)} ms`);
    assert.ok(fused.peakBytes <= 0.05 * unfused.peakBytes);
    m.dispose();
  });
});
