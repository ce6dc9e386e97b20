// The analyses on real TorchScript models: FLOPs against hand-computed ViT-B/16 numbers, the
// attention cores and Q/K/V projections found, and estimated peaks against measured ones.
import { strict as assert } from 'assert';
import type { Graph } from '../../lib/core/ir';
import { ensureModel, type ModelFixture } from '../../lib/app/models';
import { Module } from '../../lib/torchscript/module';
import { runtimeInfo } from '../../lib/torchscript/runtime-info';
import { randomTensor } from '../../lib/torchscript/random';
import { propagateShapes, type InputSpec } from '../../lib/torchscript/propagate-shapes';
import { exportView } from '../../lib/transforms/module-views';
import { decomposeModelGraph } from '../../lib/transforms/decompose-model';
import { prepareGraphs } from '../../lib/pipeline/prepare';
import { compareGraphs } from '../../lib/pipeline/compare';
import {
  analyzeGraph, cpuFlashAttentionWorkspace, sdpaFlops, withMeasuredPeaks, type GraphAnalysis,
} from '../../lib/analysis';

const specs = (fx: ModelFixture): InputSpec[] => fx.inputs.map((i) => ({ shape: i.shape, dtype: i.dtype as InputSpec['dtype'] }));

async function fixtureOrSkip(ctx: Mocha.Context, name: 'vit_b_16' | 'mha_demo' | 'seq2seq'): Promise<ModelFixture> {
  try {
    return await ensureModel(name);
  } catch (e) {
    console.log(`      skipped: ${(e as Error).message.split('\n')[0]}`);
    ctx.skip();
    throw e;
  }
}

async function inlined(fx: ModelFixture, variant: 'traced' | 'traced_grad'): Promise<{ m: Module; graph: Graph }> {
  const m = await Module.load(fx.variants[variant]!);
  const { graph } = exportView(m, 'inlined');
  await propagateShapes(graph, m, specs(fx));
  return { m, graph };
}

// ViT-B/16 at 224x224, batch 1.
const E = 768, H = 12, hd = 64, L = 197, F = 3072, LAYERS = 12, CLASSES = 1000;
const linear = (rows: number, inF: number, outF: number) => 2 * rows * inF * outF + rows * outF;
const VIT = {
  conv: 2 * (E * 196) * (3 * 16 * 16) + E * 196,
  linear: LAYERS * (linear(L, E, 3 * E) + linear(L, E, E) + linear(L, E, F) + linear(L, F, E)) + linear(1, E, CLASSES),
  sdpa: LAYERS * sdpaFlops({ batch: H, L, S: L, E: hd, Ev: hd }),
  norm: (2 * LAYERS + 1) * (6 + 2) * L * E,
  elementwise: LAYERS * 5 * L * F /* gelu */ + 2 * LAYERS * L * E /* residual adds */ + L * E /* + pos_embedding */,
};

describe('analysis on real models (integration)', function () {
  this.timeout(600_000);

  describe('vit_b_16 traced with grad (slow path: linear, view, transpose, SDPA), inlined', () => {
    let m: Module;
    let a: GraphAnalysis;
    before(async function () {
      const fx = await fixtureOrSkip(this, 'vit_b_16');
      const r = await inlined(fx, 'traced_grad');
      m = r.m;
      a = analyzeGraph(r.graph);
    });
    after(() => m?.dispose());

    it('FLOPs: every category equals the hand count; ~17.56 GMACs of matmul/conv', () => {
      const b = a.flops.byCategory;
      assert.equal(b.conv, VIT.conv);
      assert.equal(b.matmul, VIT.linear);
      assert.equal(b.attention, VIT.sdpa);
      assert.equal(b.norm, VIT.norm);
      assert.equal(b.elementwise, VIT.elementwise);
      assert.equal(a.flops.total, VIT.conv + VIT.linear + VIT.sdpa + VIT.norm + VIT.elementwise);
      assert.deepEqual(a.flops.noFormula, {});
      assert.deepEqual(a.flops.missingShapes, {});
      // The well-known figure: 17.56 G multiply-adds in the convolution and the matrix products.
      const macs = (VIT.conv - E * 196) / 2 + (VIT.linear - LAYERS * L * (3 * E + E + F + E) - CLASSES) / 2 + LAYERS * 2 * H * L * L * hd;
      assert.ok(Math.abs(macs - 17.5638e9) < 0.001e9, `${macs}`);
      assert.ok(a.flops.total > 35.2e9 && a.flops.total < 35.3e9, `${a.flops.total}`);
    });

    it('12 attention cores (the SDPA ops with their head merge) and 12 packed Q/K/V projections', () => {
      assert.deepEqual(a.summary.attentionCores, { explicit: 0, opaque: 12 });
      assert.equal(a.partition.attentionCores.length, 12);
      for (const g of a.partition.attentionCores) assert.equal(g.nodes[0].kind, 'aten::scaled_dot_product_attention');
      assert.deepEqual(a.summary.projections, { qkvFused: 0, kvFused: 0, packed: 12, notFused: 0 });
      assert.deepEqual(a.partition.notFused, []);
      assert.deepEqual(a.partition.refused, []);
    });

    it('peak memory: the MLP of a block (fc1 output, GELU output, residual), weights = parameters', () => {
      assert.equal(a.memory.unfused.peakBytes, (2 * L * F + L * E) * 4);
      assert.equal(a.summary.weightBytes, m.parameterBytes);
      assert.ok(a.summary.peakBytes.fused < a.summary.peakBytes.unfused);
      assert.equal(a.memory.unfused.unknownTensors, 0);
    });
  });

  describe('vit_b_16 traced (fast path), attention decomposed', () => {
    let a: GraphAnalysis;
    let sdpaTotal: number;
    before(async function () {
      const fx = await fixtureOrSkip(this, 'vit_b_16');
      const m = await Module.load(fx.variants.traced!);
      const { graph } = exportView(m, 'inlined');
      await decomposeModelGraph(m, graph, specs(fx));
      await propagateShapes(graph, m, specs(fx));
      a = analyzeGraph(graph);
      const ref = await inlined(fx, 'traced_grad');
      sdpaTotal = analyzeGraph(ref.graph).flops.total;
      ref.m.dispose();
      m.dispose();
    });

    it('all 12 attention cores explicit and fused as one group each, all 12 Q/K/V triples fused', () => {
      assert.deepEqual(a.summary.attentionCores, { explicit: 12, opaque: 0 });
      assert.deepEqual(a.summary.projections, { qkvFused: 12, kvFused: 0, packed: 0, notFused: 0 });
      const qkv = a.partition.groups.filter((g) => g.kind === 'qkv_projection');
      assert.equal(qkv.length, 12);
      for (const g of qkv) assert.equal(g.nodes.filter((n) => n.kind === 'aten::linear').length, 3);
      for (const g of a.partition.attentionCores) {
        for (const role of ['scores', 'softmax', 'context']) assert.equal(g.roles.filter((r) => r === role).length, 1, role);
      }
      assert.deepEqual(a.partition.notFused, []);
    });

    it('FLOPs equal the SDPA graph except where the scale is applied (q, not the scores)', () => {
      assert.equal(a.flops.total, sdpaTotal - LAYERS * H * L * L + LAYERS * H * L * hd);
    });

    it('the fused estimate drops the L x L score matrices', () => {
      assert.ok(a.summary.memoryReduction > 0.2, `${a.summary.memoryReduction}`);
      const scores = H * L * L * 4;
      const coreSteps = a.memory.fused.timeline.filter((e) => e.group !== undefined && a.partition.groups[e.group].kind === 'attention');
      assert.equal(coreSteps.length, 12);
      for (const e of coreSteps) assert.ok(e.allocatedBytes + e.workspaceBytes < scores / 2);
    });
  });

  describe('mha_demo traced with grad (explicit math path)', () => {
    let a: GraphAnalysis;
    before(async function () {
      const fx = await fixtureOrSkip(this, 'mha_demo');
      const r = await inlined(fx, 'traced_grad');
      a = analyzeGraph(r.graph);
      r.m.dispose();
    });

    it('its core (mul, bmm, softmax, bmm, head merge) is one group; FLOPs by hand', () => {
      assert.deepEqual(a.summary.attentionCores, { explicit: 1, opaque: 0 });
      const g = a.partition.attentionCores[0];
      assert.deepEqual(g.nodes.slice(0, 4).map((n) => n.kind), ['aten::mul', 'aten::bmm', 'aten::softmax', 'aten::bmm']);
      assert.equal(a.summary.projections.packed, 1);
      const [B, T] = [4, 196];
      const rows = B * T, bh = B * H;
      const expected = linear(rows, E, 3 * E) + linear(rows, E, E) /* projections */ + 8 * rows * E /* layer norm */
        + bh * T * hd /* scale q */ + 2 * (2 * bh * T * T * hd) + 5 * bh * T * T /* core */ + rows * E /* residual */;
      assert.equal(a.flops.total, expected);
    });
  });

  describe('seq2seq (nn.Transformer: self, causal self and cross-attention)', () => {
    it('every core found; the cross-attention K/V are one GEMM (packed or fused), none left unexplained', async function () {
      const fx = await fixtureOrSkip(this, 'seq2seq');
      for (const variant of ['traced', 'traced_grad'] as const) {
        const m = await Module.load(fx.variants[variant]!);
        const { graph } = exportView(m, 'inlined');
        await decomposeModelGraph(m, graph, specs(fx));
        await propagateShapes(graph, m, specs(fx));
        const a = analyzeGraph(graph);
        m.dispose();
        assert.equal(a.partition.attentionCores.length, 6, variant);
        const kv = a.partition.projections.filter((p) => p.status === 'kv_fused' || p.status === 'packed_kv');
        assert.equal(kv.length, 2, `${variant}: ${a.partition.projections.map((p) => p.status)}`);
        assert.equal(a.partition.projections.filter((p) => p.status === 'not_fused' || p.status === 'unknown').length, 0);
        assert.deepEqual(a.partition.notFused, []);
      }
    });
  });

  describe('estimated vs measured peak (CPU, lib/pipeline)', () => {
    // libtorch's intra-op threads: OMP_NUM_THREADS, else one per core (the CPU flash kernel's tiles are per thread).
    let threads = 0;
    before(() => { threads = runtimeInfo().threads; });
    let worst = 0;
    after(() => { if (worst) console.log(`      worst |estimate - measured| / measured: ${(worst * 100).toFixed(2)}% (${threads} threads assumed)`); });

    for (const name of ['vit_b_16', 'mha_demo'] as const) {
      it(`${name}: original, unfused and fused estimates within 10% of the measured peaks`, async function () {
        const fx = await fixtureOrSkip(this, name);
        const m = await Module.load(fx.variants.traced!);
        try {
          const prep = await prepareGraphs(m, specs(fx));
          // Fused: the groups the runtime lowers to one kernel; the others still run op by op.
          const lowered = ['attention', 'qkv_projection', 'kv_projection', 'linear_act'] as const;
          const a = analyzeGraph(prep.decomposed, { memory: { sdpaWorkspace: cpuFlashAttentionWorkspace(threads), fusedKinds: lowered } });
          // The original graph (opaque attention ops), estimated on the inlined traced view.
          const orig = exportView(m, 'inlined').graph;
          await propagateShapes(orig, m, specs(fx));
          const origPeak = analyzeGraph(orig, { memory: { sdpaWorkspace: cpuFlashAttentionWorkspace(threads) } }).memory.unfused.peakBytes;
          const inputs = specs(fx).map((s, i) => randomTensor(s.shape, s.dtype, i));
          const cmp = await compareGraphs(m, { unfused: prep.decomposed, fused: prep.fused }, inputs, { warmup: 1, repetitions: 1 });
          inputs.forEach((t) => t.dispose());
          assert.ok(cmp.runs.unfused.peakBytes > 0, `no measured peak for the unfused run: ${cmp.runs.unfused.peakBytes} bytes`);
          const c = withMeasuredPeaks(a, { unfused: cmp.runs.unfused.peakBytes, fused: cmp.runs.fused.peakBytes, source: cmp.device });
          worst = Math.max(worst, c.worstRelError);
          console.log(`      ${name}: unfused ${c.unfused!.estimated} est vs ${c.unfused!.measured} measured (${(c.unfused!.relError * 100).toFixed(2)}%), `
            + `fused ${c.fused!.estimated} vs ${c.fused!.measured} (${(c.fused!.relError * 100).toFixed(2)}%)`);
          const origErr = (origPeak - cmp.runs.original.peakBytes) / cmp.runs.original.peakBytes;
          worst = Math.max(worst, Math.abs(origErr));
          console.log(`      ${name}: original ${origPeak} est vs ${cmp.runs.original.peakBytes} measured (${(origErr * 100).toFixed(2)}%)`);
          assert.ok(Math.abs(origErr) <= 0.1, `original: ${origPeak} vs ${cmp.runs.original.peakBytes}`);
          assert.ok(Math.abs(c.unfused!.relError) <= 0.1, `unfused: ${JSON.stringify(c.unfused)}`);
          assert.ok(Math.abs(c.fused!.relError) <= 0.1, `fused: ${JSON.stringify(c.fused)}`);
        } finally {
          m.dispose();
        }
      });
    }
  });
});
