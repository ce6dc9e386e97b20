// torchgraph's own ops (native/fused_ops.cc) against the ATen ops they replace, run through the
// addon in one built graph: residual add + layer_norm / rms_norm, bias + GELU (erf and tanh), on
// random shapes with odd row lengths, with and without affine parameters, and the inputs the fast
// path refuses (float64, broadcasting, strided). Then the lowerings (fusion/add-norm.ts,
// bias-gelu.ts) on real models: the fused graph within 1e-5 of the unfused one, switchable, and
// optimize() running them while save() writes plain ATen ops.
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Module, optimize, Tensor } from '../../lib';
import { ClassType, Graph, TensorType, type Value } from '../../lib/core/ir';
import type { DType } from '../../lib/core/ir/serialized';
import { randomTensor } from '../../lib/torchscript/random';
import { propagateShapes } from '../../lib/torchscript/propagate-shapes';
import { ensureModel, type ModelFixture } from '../../lib/app/models';
import { prepareGraphs } from '../../lib/pipeline/prepare';
import { exportView } from '../../lib/transforms/module-views';
import { OWN_OP_SCHEMAS, ADD_NORM_KINDS } from '../../lib/core/ops/own-schemas';
import { lowerBiasGelus } from '../../lib/fusion/bias-gelu';
import { flattenTensors } from '../../lib/torchscript/tensor';
import { runGraph } from '../support/graphs';
import { maxAbsDiff, tensorFromFile } from '../support/tensors';

const TOL = 1e-5;

/** A graph over `m`'s class with tensor inputs named as given. */
function graphOver(m: Module, names: string[]): { g: Graph; ins: Value[] } {
  const g = new Graph();
  g.addInput(ClassType(m.tree().type), 'self');
  return { g, ins: names.map((n) => g.addInput(TensorType, n)) };
}

const T = [{ kind: 'Tensor' as const }];

/** An int[] argument, as TorchScript builds one. */
function ints(g: Graph, xs: bigint[]): Value {
  return g.createNode('prim::ListConstruct', xs.map((x) => g.insertConstant(x)), [{ kind: 'List', elem: { kind: 'Int' } }]).output;
}

/** A built graph returns one value: several outputs as a tuple. */
function returnAll(g: Graph, vs: readonly Value[]): void {
  g.setOutputs([g.createNode('prim::TupleConstruct', vs, [{ kind: 'Tuple', elems: vs.map(() => T[0]) }]).output]);
}

describe('fused ops (native/fused_ops.cc) against ATen', function () {
  this.timeout(600_000);
  let fx: ModelFixture;
  let m: Module;
  before(async () => {
    fx = await ensureModel('mha_demo');
    m = await Module.load(fx.variants.traced!);
  });
  after(() => m.dispose());

  /** [fused out, fused sum, ATen out, ATen sum] for input + residual -> norm. */
  async function addNorm(rms: boolean, x: Tensor, r: Tensor, hidden: number, affine: boolean, prep?: 'transpose'): Promise<Tensor[]> {
    const { g, ins } = graphOver(m, ['x', 'r', 'w', 'b']);
    let [xv] = ins;
    const [, rv, wv, bv] = ins;
    if (prep === 'transpose') xv = g.createNode('aten::transpose', [xv, g.insertConstant(0n), g.insertConstant(1n)], T).output;
    const ns = ints(g, [BigInt(hidden)]);
    const w = affine ? wv : g.insertConstant(null), b = affine ? bv : g.insertConstant(null);
    const eps = g.insertConstant(1e-5);
    const fused = rms
      ? g.createNode('torchgraph::add_rms_norm', [xv, rv, ns, w, eps, g.insertConstant(true)], [...T, ...T], {}, { schema: OWN_OP_SCHEMAS['torchgraph::add_rms_norm'] })
      : g.createNode('torchgraph::add_layer_norm', [xv, rv, ns, w, b, eps, g.insertConstant(true)], [...T, ...T], {},
          { schema: OWN_OP_SCHEMAS['torchgraph::add_layer_norm'] });
    const sum = g.createNode('aten::add', [xv, rv, g.insertConstant(1n)], T).output;
    const ref = rms
      ? g.createNode('aten::rms_norm', [sum, ns, w, eps], T).output
      : g.createNode('aten::layer_norm', [sum, ns, w, b, eps, g.insertConstant(false)], T).output;
    returnAll(g, [...fused.outputs, ref, sum]);
    const dtype = x.dtype as DType;
    return runGraph(m, g, [x, r, randomTensor([hidden], dtype, 7), randomTensor([hidden], dtype, 8)]);
  }

  const shapes: [number, number][] = [[1, 1], [3, 7], [5, 33], [2, 769], [197, 768], [1, 16], [64, 4096]];
  for (const rms of [false, true]) {
    for (const [rows, hidden] of shapes) {
      for (const affine of [true, false]) {
        it(`add + ${rms ? 'rms_norm' : 'layer_norm'}: ${rows} rows of ${hidden}${affine ? ', affine' : ''}`, async () => {
          const x = randomTensor([rows, hidden], 'float32', rows + hidden), r = randomTensor([rows, hidden], 'float32', 3 * hidden);
          const [out, sum, ref, refSum] = await addNorm(rms, x, r, hidden, affine);
          assert.deepEqual(out.shape, [rows, hidden]);
          assert.ok(maxAbsDiff(out, ref) <= TOL, `norm differs by ${maxAbsDiff(out, ref)}`);
          assert.equal(maxAbsDiff(sum, refSum), 0);
        });
      }
    }
  }

  it('add + layer_norm over a 3-D batch, and the sum left out when not asked for', async () => {
    const { g, ins: [x, r] } = graphOver(m, ['x', 'r']);
    const n = g.createNode('torchgraph::add_layer_norm', [x, r, ints(g, [48n]), g.insertConstant(null), g.insertConstant(null),
      g.insertConstant(1e-6), g.insertConstant(false)], [...T, ...T], {}, { schema: OWN_OP_SCHEMAS['torchgraph::add_layer_norm'] });
    const ref = g.createNode('aten::layer_norm', [g.createNode('aten::add', [x, r, g.insertConstant(1n)], T).output,
      ints(g, [48n]), g.insertConstant(null), g.insertConstant(null), g.insertConstant(1e-6), g.insertConstant(false)], T);
    returnAll(g, [...n.outputs, ref.output]);
    const [out, sum, want] = await runGraph(m, g, [randomTensor([2, 7, 48], 'float32', 1), randomTensor([2, 7, 48], 'float32', 2)]);
    assert.ok(maxAbsDiff(out, want) <= TOL);
    assert.deepEqual(sum.shape, [0]);
  });

  it('inputs the fast path refuses run the ATen ops: float64, a broadcast residual, a strided view', async () => {
    const f64 = await addNorm(false, randomTensor([4, 9], 'float64', 1), randomTensor([4, 9], 'float64', 2), 9, true);
    assert.ok(maxAbsDiff(f64[0], f64[2]) <= 1e-12);
    const bc = await addNorm(false, randomTensor([4, 9], 'float32', 1), randomTensor([9], 'float32', 2), 9, true);
    assert.deepEqual(bc[0].shape, [4, 9]);
    assert.equal(maxAbsDiff(bc[0], bc[2]), 0);
    const strided = await addNorm(true, randomTensor([9, 4], 'float32', 1), randomTensor([4, 9], 'float32', 2), 9, true, 'transpose');
    assert.equal(maxAbsDiff(strided[0], strided[2]), 0);
  });

  for (const approximate of ['none', 'tanh']) {
    for (const [rows, n] of [[1, 1], [3, 7], [5, 33], [2, 769], [128, 3072]] as [number, number][]) {
      it(`bias + GELU (${approximate}): ${rows} rows of ${n}`, async () => {
        const { g, ins: [x, b] } = graphOver(m, ['x', 'b']);
        const a = g.insertConstant(approximate);
        const fused = g.createNode('torchgraph::bias_gelu', [x, b, a], T, {}, { schema: OWN_OP_SCHEMAS['torchgraph::bias_gelu'] });
        const ref = g.createNode('aten::gelu', [g.createNode('aten::add', [x, b, g.insertConstant(1n)], T).output, a], T);
        returnAll(g, [fused.output, ref.output]);
        const [got, want] = await runGraph(m, g, [randomTensor([rows, n], 'float32', n), randomTensor([n], 'float32', rows)]);
        assert.ok(maxAbsDiff(got, want) <= TOL, `differs by ${maxAbsDiff(got, want)}`);
      });
    }
  }

  it('bias + GELU refuses an unknown approximation with a clear error', async () => {
    const { g, ins: [x, b] } = graphOver(m, ['x', 'b']);
    returnAll(g, [g.createNode('torchgraph::bias_gelu', [x, b, g.insertConstant('erf')], T, {}, { schema: OWN_OP_SCHEMAS['torchgraph::bias_gelu'] }).output]);
    await assert.rejects(runGraph(m, g, [randomTensor([2, 3]), randomTensor([3])]), /approximate must be 'none' or 'tanh'/);
  });

  it('the bias + GELU lowering: linear, addmm and add of a bias before a tanh GELU, within 1e-5', async () => {
    const { g, ins: [x, w, b] } = graphOver(m, ['x', 'w', 'b']);
    const tanh = g.insertConstant('tanh');
    const one = g.insertConstant(1n);
    const l = g.createNode('aten::linear', [x, w, b], T).output;
    const y1 = g.createNode('aten::gelu', [l, tanh], T).output;
    const mm = g.createNode('aten::addmm', [b, g.createNode('aten::reshape', [x, ints(g, [-1n, 16n])], T).output,
      g.createNode('aten::t', [w], T).output, one, one], T).output;
    const y2 = g.createNode('aten::gelu', [mm, g.insertConstant('none')], T).output;
    const y3 = g.createNode('aten::gelu', [g.createNode('aten::add', [x, b, one], T).output, tanh], T).output;
    returnAll(g, [y1, y2, y3]);
    const specs = [{ shape: [2, 5, 16], dtype: 'float32' as const }, { shape: [16, 16], dtype: 'float32' as const },
      { shape: [16], dtype: 'float32' as const }];
    const inputs = specs.map((s, i) => randomTensor(s.shape, s.dtype, i));
    const want = await runGraph(m, g, inputs);
    await propagateShapes(g, m, specs);
    const outcomes = lowerBiasGelus(g, 'cpu');
    assert.deepEqual(outcomes.map((o) => o.lowered), [true, true, true]);
    assert.equal(g.allNodes().filter((n) => n.kind === 'torchgraph::bias_gelu').length, 3);
    const got = await runGraph(m, g, inputs);
    for (let i = 0; i < 3; i++) assert.ok(maxAbsDiff(got[i], want[i]) <= TOL, `output ${i}: ${maxAbsDiff(got[i], want[i])}`);
  });
});

describe('the add + norm lowering on real models', function () {
  this.timeout(900_000);

  for (const name of ['encoder_pre_norm', 'vit_b_16'] as const) {
    it(`${name}: every residual add before a layer norm is one op, within 1e-5 of the unfused graph; off by its switch`, async () => {
      const fx = await ensureModel(name);
      const m = await Module.load(fx.variants.traced!);
      try {
        const inputs = fx.inputs.map(tensorFromFile);
        const specs = inputs.map((t) => ({ shape: t.shape, dtype: t.dtype as DType }));
        const p = await prepareGraphs(m, specs);
        const lowered = (p.lowering.addNorms ?? []).filter((o) => o.lowered);
        assert.ok(lowered.length > 0, JSON.stringify(p.lowering.addNorms));
        assert.equal(p.fused.allNodes().filter((n) => n.kind === 'torchgraph::add_layer_norm').length, lowered.length);
        const [fused] = await runGraph(m, p.fused, inputs);
        const [unfused] = await runGraph(m, p.decomposed, inputs);
        assert.ok(maxAbsDiff(fused, unfused) <= TOL, `fused differs from unfused by ${maxAbsDiff(fused, unfused)}`);
        assert.ok(p.estimates.fused.peakBytes <= p.estimates.unfused.peakBytes);
        const off = await prepareGraphs(m, specs, { addNorms: false });
        assert.equal(off.fused.allNodes().filter((n) => ADD_NORM_KINDS.has(n.kind)).length, 0);
        assert.equal(off.lowering.addNorms, undefined);
      } finally {
        m.dispose();
      }
    });
  }

  it('optimize() runs the fused ops; save() writes plain ATen ops that load without the addon\'s', async () => {
    const fx = await ensureModel('encoder_pre_norm');
    const inputs = fx.inputs.map(tensorFromFile);
    const original = await Module.load(fx.variants.traced!);
    const want = flattenTensors(await original.forward(...inputs));
    const model = await optimize(original, inputs.map((t) => ({ shape: t.shape, dtype: t.dtype as DType })), { worker: false, keepFaster: false });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tg-fused-ops-'));
    try {
      assert.ok((model.report.lowering.addNorms ?? []).some((o) => o.lowered), JSON.stringify(model.report.lowering.addNorms));
      const got = flattenTensors(await model.forward(...inputs));
      assert.ok(maxAbsDiff(got[0], want[0]) <= TOL, `optimized differs by ${maxAbsDiff(got[0], want[0])}`);
      const file = path.join(dir, 'saved.pt');
      await model.save(file);
      const saved = await Module.load(file);
      const kinds = exportView(saved, 'inlined').graph.allNodes().map((n) => n.kind);
      assert.ok(kinds.includes('aten::layer_norm') && !kinds.some((k) => k.startsWith('torchgraph::')));
      saved.dispose();
    } finally {
      model.dispose();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
