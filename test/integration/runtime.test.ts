// Original, unfused and fused graphs: agreement, fused lowering, measured peak memory.
import { strict as assert } from 'assert';
import { Module, Tensor, runtimeInfo } from '../../lib';
import { ensureModel, type ModelName } from '../../lib/app/models';
import { prepareGraphs } from '../../lib/pipeline/prepare';
import { compareGraphs } from '../../lib/pipeline/compare';
import { describeSlowerOps, profileOps, slowerOps } from '../../lib/pipeline/slower-ops';
import { nativeOf } from '../../lib/torchscript/tensor';
import { partitionGraph } from '../../lib/analysis';
import { binding } from '../../lib/torchscript/binding';
import { randomTensor } from '../../lib/torchscript/random';
import { tensorInfo } from '../../lib/core/value-info';
import { tensorFromFile } from '../support/tensors';

describe('runtime: original, unfused and fused', function () {
  this.timeout(900_000);

  for (const [name, variant] of [['mha_demo', 'traced'], ['mha_demo', 'scripted'], ['vit_b_16', 'traced'], ['encoder_pre_norm', 'traced'], ['seq2seq', 'traced_grad']] as [ModelName, 'traced' | 'scripted' | 'traced_grad'][]) {
    it(`${name} ${variant}: all three graphs agree within 1e-5, attention cores lowered to SDPA`, async () => {
      const fx = await ensureModel(name);
      const m = await Module.load(fx.variants[variant]!);
      const prepared = await prepareGraphs(m, fx.inputs.map((i) => ({ shape: i.shape, dtype: i.dtype })));
      const inputs = fx.inputs.map(tensorFromFile);
      const cmp = await compareGraphs(m, { unfused: prepared.decomposed, fused: prepared.fused }, inputs, { warmup: 1, repetitions: 1 });
      assert.ok(cmp.runs.unfused.maxAbsDiff !== null && cmp.runs.unfused.maxAbsDiff <= 1e-5, `unfused ${cmp.runs.unfused.maxAbsDiff}`);
      assert.ok(cmp.runs.fused.maxAbsDiff !== null && cmp.runs.fused.maxAbsDiff <= 1e-5, `fused ${cmp.runs.fused.maxAbsDiff}`);
      const lowered = prepared.lowering.attentionCores.filter((o) => o.lowered).length;
      assert.equal(lowered, prepared.decomposition.report.decomposed.length, JSON.stringify(prepared.lowering.attentionCores.filter((o) => !o.lowered)));
      const sdpa = prepared.fused.allNodes().filter((n) => n.kind === 'aten::scaled_dot_product_attention').length;
      assert.equal(sdpa, lowered);
      assert.equal(prepared.decomposed.allNodes().filter((n) => n.kind === 'aten::scaled_dot_product_attention').length, 0);
      m.dispose();
    });
  }

  // These two measure the projection and _addmm_activation lowerings themselves: without oneDNN's
  // reordered linears (packed-linear.test.ts), which take their place on CPU by default.
  it('ViT-B/16: the 12 packed Q/K/V projections become one linear each (a view of in_proj_weight, no copy)', async () => {
    const fx = await ensureModel('vit_b_16');
    const m = await Module.load(fx.variants.traced!);
    const prepared = await prepareGraphs(m, [{ shape: [1, 3, 224, 224], dtype: 'float32' }], { packedLinears: false });
    assert.equal(prepared.lowering.projections.filter((o) => o.lowered).length, 12);
    const count = (g: typeof prepared.fused, kind: string) => g.allNodes().filter((n) => n.kind === kind).length;
    // 12 x (q, k, v) -> 12 packed linears; and the 12 MLP fc1 + GELU -> _addmm_activation.
    assert.equal(count(prepared.fused, 'aten::_addmm_activation'), 12);
    assert.equal(count(prepared.decomposed, 'aten::linear') - count(prepared.fused, 'aten::linear'), 24 + 12);
    m.dispose();
  });

  it('ViT-B/16: linear + GELU runs as _addmm_activation, equal, and the MLP no longer holds two buffers', async () => {
    const fx = await ensureModel('vit_b_16');
    const m = await Module.load(fx.variants.traced!);
    const prepared = await prepareGraphs(m, [{ shape: [1, 3, 224, 224], dtype: 'float32' }], { packedLinears: false });
    assert.equal(prepared.lowering.linearActs.filter((o) => o.lowered).length, 12);
    const cmp = await compareGraphs(m, { unfused: prepared.decomposed, fused: prepared.fused }, fx.inputs.map(tensorFromFile), { warmup: 1, repetitions: 1 });
    assert.ok(cmp.runs.fused.maxAbsDiff! <= 1e-5);
    // Batch 1 peaks in the MLP: fc1 output and GELU output (197 x 3072 floats each) at once, unless fused.
    const mlp = 197 * 3072 * 4;
    assert.ok(cmp.runs.original.peakBytes - cmp.runs.fused.peakBytes >= 0.6 * mlp, `${cmp.runs.original.peakBytes} -> ${cmp.runs.fused.peakBytes}`);
    m.dispose();
  });

  it('3-D attention (batch*heads, L, hd), as in PyTorch\'s weights path: SDPA gets 4-D operands, so its flash kernel runs', async () => {
    const fx = await ensureModel('mha_demo');
    const m = await Module.load(fx.variants.traced_grad!);
    const prepared = await prepareGraphs(m, fx.inputs.map((i) => ({ shape: i.shape, dtype: i.dtype })));
    const sdpa = prepared.fused.allNodes().filter((n) => n.kind === 'aten::scaled_dot_product_attention');
    assert.equal(sdpa.length, 1);
    assert.deepEqual(sdpa[0].inputs.slice(0, 3).map((v) => tensorInfo(v)?.shape.length), [4, 4, 4]);
    const cmp = await compareGraphs(m, { unfused: prepared.decomposed, fused: prepared.fused }, fx.inputs.map(tensorFromFile), { warmup: 1, repetitions: 1 });
    assert.ok(cmp.runs.fused.maxAbsDiff! <= 1e-5);
    // The math kernel would hold the (48, 196, 196) scores and probabilities: above the unfused peak.
    assert.ok(cmp.runs.fused.peakBytes < 0.8 * cmp.runs.unfused.peakBytes, `${cmp.runs.fused.peakBytes} vs ${cmp.runs.unfused.peakBytes}`);
    m.dispose();
  });

  for (const variant of ['traced', 'traced_grad', 'scripted'] as const) {
    it(`hand-written attention (${variant}): scale after the scores (constant or known at run time), masks before and after it, causal masked_fill(-inf), GPT-2's where(causal, scores, finfo.min), masked_fill(finfo.min): all 5 cores become SDPA and agree`, async () => {
      const fx = await ensureModel('handwritten_attention');
      const m = await Module.load(fx.variants[variant]!);
      const prepared = await prepareGraphs(m, fx.inputs.map((i) => ({ shape: i.shape, dtype: i.dtype })));
      assert.deepEqual(prepared.lowering.attentionCores.map((o) => o.lowered), [true, true, true, true, true], JSON.stringify(prepared.lowering.attentionCores));
      assert.equal(prepared.fused.allNodes().filter((n) => n.kind === 'aten::scaled_dot_product_attention').length, 5);
      const cmp = await compareGraphs(m, { unfused: prepared.decomposed, fused: prepared.fused }, fx.inputs.map(tensorFromFile), { warmup: 1, repetitions: 1 });
      assert.ok(cmp.runs.fused.maxAbsDiff !== null && cmp.runs.fused.maxAbsDiff <= 1e-5, `fused ${cmp.runs.fused.maxAbsDiff}`);
      assert.ok(cmp.runs.fused.peakBytes < cmp.runs.unfused.peakBytes, `${cmp.runs.fused.peakBytes} vs ${cmp.runs.unfused.peakBytes}`);
      m.dispose();
    });
  }

  describe('separate projection weights (separate q/k/v nn.Linear, MHA with kdim/vdim, gate/up)', () => {
    // Per group: weights (rows x in) and biases, float32. q/k/v: 3 x 96x96; cross k/v: 2 x 96x40; gate/up: 2 x 192x96.
    const heldBytes = 4 * (3 * (96 * 96 + 96) + 2 * (96 * 40 + 96) + 2 * (192 * 96 + 192));
    for (const variant of ['traced', 'traced_grad', 'scripted'] as const) {
      it(`${variant}: concatenated once into one GEMM per group, held bytes reported, all three graphs agree`, async () => {
        const fx = await ensureModel('separate_projections');
        const m = await Module.load(fx.variants[variant]!);
        const prepared = await prepareGraphs(m, fx.inputs.map((i) => ({ shape: i.shape, dtype: i.dtype })), { concatenateProjections: true, packedLinears: false });
        assert.deepEqual(prepared.lowering.projections.map((p) => p.lowered), [true, true, true], JSON.stringify(prepared.lowering.projections));
        assert.equal(prepared.lowering.heldWeightBytes, heldBytes);
        const count = (g: typeof prepared.fused, kind: string) => g.allNodes().filter((n) => n.kind === kind).length;
        // 11 linears -> 7: q/k/v (3 -> 1), cross k/v (2 -> 1), gate/up (2 -> 1).
        assert.equal(count(prepared.decomposed, 'aten::linear') - count(prepared.fused, 'aten::linear'), 4);
        const cmp = await compareGraphs(m, { unfused: prepared.decomposed, fused: prepared.fused }, fx.inputs.map(tensorFromFile), { warmup: 1, repetitions: 1 });
        assert.ok(cmp.runs.unfused.maxAbsDiff !== null && cmp.runs.unfused.maxAbsDiff <= 1e-5, `unfused ${cmp.runs.unfused.maxAbsDiff}`);
        assert.ok(cmp.runs.fused.maxAbsDiff !== null && cmp.runs.fused.maxAbsDiff <= 1e-5, `fused ${cmp.runs.fused.maxAbsDiff}`);
        m.dispose();
      });
    }

    it('traced cross-attention: column slices that a later view cannot take are made contiguous, the others stay views', async () => {
      const fx = await ensureModel('separate_projections');
      const m = await Module.load(fx.variants.traced!);
      const prepared = await prepareGraphs(m, fx.inputs.map((i) => ({ shape: i.shape, dtype: i.dtype })), { concatenateProjections: true, packedLinears: false });
      const contiguousIn = (id: string) => prepared.fused.allNodes().filter((n) => n.kind === 'aten::contiguous' && (n.meta.fused as { id?: string } | undefined)?.id === id).length;
      // MHA's slow path views k as (S, N*H, hd): merging N with the heads needs k's rows contiguous.
      assert.equal(contiguousIn('cross'), 2);
      // q/k/v of the hand-written attention are viewed as (B, L, H, hd): a slice can.
      assert.equal(contiguousIn('group 2'), 0);
      m.dispose();
    });

    it('on CPU the default leaves them unfused, saying why', async () => {
      const fx = await ensureModel('separate_projections');
      const m = await Module.load(fx.variants.traced!);
      const prepared = await prepareGraphs(m, fx.inputs.map((i) => ({ shape: i.shape, dtype: i.dtype })), { packedLinears: false });
      assert.ok(prepared.lowering.projections.length === 3 && prepared.lowering.projections.every((p) => !p.lowered && /on CPU/.test(p.reason!)), JSON.stringify(prepared.lowering.projections));
      assert.equal(prepared.lowering.heldWeightBytes, 0);
      m.dispose();
    });
  });

  it('when attention weights are returned the core stays unfused, and says why', async () => {
    const fx = await ensureModel('mha_demo');
    const m = await Module.load(fx.variants.scripted!);
    const prepared = await prepareGraphs(m, [{ shape: [4, 196, 768], dtype: 'float32' }]);
    // mha_demo discards the weights, so its core is fused; construct the returned-weights case:
    const core = prepared.decomposed.clone();
    const softmax = core.allNodes().find((n) => n.kind === 'aten::softmax')!;
    core.setOutputs([...core.outputs, softmax.output]);
    const p = partitionGraph(core, { writeMeta: false });
    assert.equal(p.attentionCores.filter((g) => g.core).length, 0, 'no core group forms around returned weights');
    const why = p.notFused.find((w) => w.subject === 'attention_core');
    assert.match(why?.message ?? '', /graph output, so it must be materialised/);
    m.dispose();
  });

  describe('measured peak memory', () => {
    it('the unfused attention core peaks at its L x S terms; SDPA does not', async () => {
      const fx = await ensureModel('attention_core_512');
      const m = await Module.load(fx.variants.traced!);
      const specs = fx.inputs.map((i) => ({ shape: i.shape, dtype: i.dtype }));
      const prepared = await prepareGraphs(m, specs);
      const inputs = specs.map((s, i) => randomTensor(s.shape, s.dtype, i));
      const cmp = await compareGraphs(m, { unfused: prepared.decomposed, fused: prepared.fused }, inputs, { warmup: 1, repetitions: 1 });
      const H = 12, L = 512, hd = 64;
      const scores = H * L * L * 4;
      const qkv = H * L * hd * 4;
      // Scores and their softmax are alive together at the softmax; the scaled q and the output are (B, H, L, hd).
      const { unfused, fused } = cmp.runs;
      assert.ok(unfused.peakBytes >= 2 * scores && unfused.peakBytes <= 2 * scores + 4 * qkv, `unfused peak ${unfused.peakBytes}, expected ~${2 * scores}`);
      assert.ok(fused.peakBytes < scores / 4, `fused peak ${fused.peakBytes} should not hold the ${scores} B scores`);
      assert.ok(fused.peakBytes >= qkv, `fused peak ${fused.peakBytes} holds at least the output (${qkv} B)`);
      m.dispose();
    });

    it('a known allocation is counted exactly', async () => {
      const before = binding().memoryStats().cpuLiveBytes;
      const t = Tensor.empty([3, 1000, 7], 'float64');
      assert.equal(binding().memoryStats().cpuLiveBytes - before, 3 * 1000 * 7 * 8);
      t.dispose();
    });
  });

  it('cuda: a clear error without a GPU (CUDA checks run on a GPU machine: scripts/cuda-check.sh)', async function () {
    if (runtimeInfo().cudaAvailable) this.skip();
    const fx = await ensureModel('mha_demo');
    await assert.rejects(Module.load(fx.variants.traced!, { device: 'cuda' }), (e: Error & { code?: string }) => e.code === 'ERR_NO_DEVICE');
  });
  it('slowerOps: profiles both graphs per op kind and names the lowering behind each op that grew (SDPA from the attention cores)', async () => {
    const fx = await ensureModel('mha_demo');
    const m = await Module.load(fx.variants.traced!);
    const prepared = await prepareGraphs(m, fx.inputs.map((i) => ({ shape: i.shape, dtype: i.dtype })));
    const inputs = fx.inputs.map(tensorFromFile);
    const args = m._resolveInputs(inputs.map(nativeOf));
    const fused = m._native.buildGraph(prepared.fused.toData());
    const unfused = m._native.buildGraph(prepared.decomposed.toData());
    try {
      const all = await profileOps({ fused, unfused }, prepared.fused, args, { runs: 2 });
      // Every kind of the fused graph, with its calls per run (the report's time per op kind).
      assert.equal(all.find((o) => o.kind === 'aten::scaled_dot_product_attention')?.calls, 1);
      assert.ok(all.every((o, i) => i === 0 || all[i - 1].fusedMs >= o.fusedMs), 'slowest first');
      const ops = slowerOps(all, { top: 50 });
      const sdpa = ops.find((o) => o.kind === 'aten::scaled_dot_product_attention');
      assert.ok(sdpa, JSON.stringify(ops));
      assert.equal(sdpa.unfusedMs, 0);
      assert.ok(sdpa.fusedMs > 0);
      assert.deepEqual(sdpa.loweredBy, ['attention_core']);
      assert.ok(ops.every((o) => o.fusedMs > o.unfusedMs));
      assert.match(describeSlowerOps(ops), /aten::scaled_dot_product_attention \+\d+\.\d+ ms \(.*from the attention_core lowering\)/);
    } finally {
      fused.dispose();
      unfused.dispose();
      inputs.forEach((t) => t.dispose());
      m.dispose();
    }
  });
});
