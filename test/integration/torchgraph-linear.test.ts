// torchgraph::linear (native/packed_linear.cc, native/gemm_kernel.h) against aten::linear and
// ATen's activations, run through the addon in one built graph: row counts around the GEMM's
// tile (6 rows on AVX2, 12 on AVX-512) and row block (192), depths around its passes (one up to
// 768, else 512 each), output widths around its panel (16), 1-D and 3-D inputs, no input features
// at all, a strided input, no bias; each of oneDNN's post-op activations the lowering hands it;
// the packed weight unpacked back bit for bit; and the errors a wrong operand gets.
import { strict as assert } from 'assert';
import { Module, Tensor } from '../../lib';
import { ClassType, Graph, TensorType, type Value } from '../../lib/core/ir';
import { OWN_OP_SCHEMAS, LINEAR_KIND, PACK_LINEAR_KIND, UNPACK_LINEAR_KIND } from '../../lib/core/ops/own-schemas';
import { ensureModel } from '../../lib/app/models';
import { randomTensor } from '../../lib/torchscript/random';
import { runGraph } from '../support/graphs';
import { maxAbsDiff } from '../support/tensors';
import { ACTS, largest, type Act } from '../support/post-op-activations';

const T = [{ kind: 'Tensor' as const }];

describe('torchgraph::linear against aten::linear', function () {
  this.timeout(600_000);
  let m: Module;
  before(async () => { m = await Module.load((await ensureModel('mha_demo')).variants.traced!); });
  after(() => m.dispose());

  /** A graph of (self, x, w, b): [ours, ATen's] for `act`, x transposed on its last two dims first where `strided`. */
  function graphOf(act: Act, opts: { bias: boolean; strided?: boolean; outFeatures?: number; n: number }): Graph {
    const g = new Graph();
    g.addInput(ClassType(m.tree().type), 'self');
    let x: Value = g.addInput(TensorType, 'x');
    const w = g.addInput(TensorType, 'w');
    const b = opts.bias ? g.addInput(TensorType, 'b') : g.insertConstant(null);
    if (opts.strided) x = g.createNode('aten::transpose', [x, g.insertConstant(-1n), g.insertConstant(-2n)], T).output;
    const packed = g.createNode(PACK_LINEAR_KIND, [w], T, {}, { schema: OWN_OP_SCHEMAS[PACK_LINEAR_KIND] }).output;
    const scalars = g.createNode('prim::ListConstruct', act.scalars.map((s) => g.insertConstant(s)),
      [{ kind: 'List', elem: { kind: 'Optional', elem: { kind: 'Number' } } }]).output;
    const ours = g.createNode(LINEAR_KIND, [x, packed, b, g.insertConstant(BigInt(opts.outFeatures ?? opts.n)), g.insertConstant(act.attr),
      scalars, g.insertConstant(act.algorithm)], T, {}, { schema: OWN_OP_SCHEMAS[LINEAR_KIND] }).output;
    const atens = act.aten(g, g.createNode('aten::linear', [x, w, b], T).output);
    g.setOutputs([g.createNode('prim::TupleConstruct', [ours, atens], [{ kind: 'Tuple', elems: [T[0], T[0]] }]).output]);
    return g;
  }

  /** Weights scaled by 1/sqrt(k), so outputs are O(1): 1e-5 of the largest output is a float32 GEMM's own rounding
   * (another summation order), while a wrong tile, pass or panel is off by O(1). */
  function operands(xShape: number[], k: number, n: number, seed: number): Tensor[] {
    const w = randomTensor([n, k], 'float32', seed + 1);
    const scaled = Tensor.from(Float32Array.from(w.data() as Float32Array, (v) => v / Math.sqrt(k)), [n, k], 'float32');
    w.dispose();
    return [randomTensor(xShape, 'float32', seed), scaled, randomTensor([n], 'float32', seed + 2)];
  }

  // [x shape, n]: K is x's last dim.
  const shapes: [number[], number][] = [
    [[1, 1], 1], [[5, 7], 3], [[13, 33], 17], [[6, 64], 16], [[12, 40], 32], [[197, 768], 768],
    [[7, 769], 40], [[200, 1030], 31], [[2, 3, 50], 130], [[385, 96], 48], [[33], 17], [[3, 0], 5],
  ];
  for (const [xs, n] of shapes) {
    it(`x ${xs.join('x')}, ${n} outputs: equals aten::linear with and without a bias`, async () => {
      const [x, w, b] = operands(xs, xs[xs.length - 1], n, xs.length * 7 + n);
      for (const bias of [true, false]) {
        const [ours, want] = await runGraph(m, graphOf(ACTS[0], { bias, n }), bias ? [x, w, b] : [x, w]);
        assert.deepEqual(ours.shape, want.shape);
        const d = maxAbsDiff(ours, want);
        assert.ok(d <= 1e-5 * largest(want), `bias ${bias}: max abs diff ${d}, largest output ${largest(want)}`);
        [ours, want].forEach((t) => t.dispose());
      }
      [x, w, b].forEach((t) => t.dispose());
    });
  }

  it('applies each post-op activation as ATen does, across the partial panel and a second pass over the depth', async () => {
    const [x, w, b] = operands([37, 800], 800, 45, 11);
    for (const act of ACTS) {
      const [ours, want] = await runGraph(m, graphOf(act, { bias: true, n: 45 }), [x, w, b]);
      const d = maxAbsDiff(ours, want);
      assert.ok(d <= 1e-5 * largest(want), `${act.attr} ${act.algorithm ?? ''}: max abs diff ${d}`);
      [ours, want].forEach((t) => t.dispose());
    }
    [x, w, b].forEach((t) => t.dispose());
  });

  it('reads a strided (transposed) input as its values', async () => {
    const [x, w, b] = operands([3, 24, 10], 24, 20, 5); // transposed in the graph to 3 x 10 x 24
    const [ours, want] = await runGraph(m, graphOf(ACTS[1], { bias: true, strided: true, n: 20 }), [x, w, b]);
    assert.deepEqual(ours.shape, [3, 10, 20]);
    assert.ok(maxAbsDiff(ours, want) <= 1e-5);
    [x, w, b, ours, want].forEach((t) => t.dispose());
  });

  it('unpacks the packed weight back bit for bit', async () => {
    const g = new Graph();
    g.addInput(ClassType(m.tree().type), 'self');
    const w = g.addInput(TensorType, 'w');
    const packed = g.createNode(PACK_LINEAR_KIND, [w], T, {}, { schema: OWN_OP_SCHEMAS[PACK_LINEAR_KIND] }).output;
    const back = g.createNode(UNPACK_LINEAR_KIND, [packed, g.insertConstant(37n)], T, {}, { schema: OWN_OP_SCHEMAS[UNPACK_LINEAR_KIND] }).output;
    g.setOutputs([g.createNode('prim::TupleConstruct', [packed, back], [{ kind: 'Tuple', elems: [T[0], T[0]] }]).output]);
    const wt = randomTensor([37, 29], 'float32', 3);
    const [p, got] = await runGraph(m, g, [wt]);
    assert.deepEqual(p.shape, [3, 29, 16]);
    assert.deepEqual([...got.data() as Float32Array], [...wt.data() as Float32Array]);
    [wt, p, got].forEach((t) => t.dispose());
  });

  it('refuses a wrong input width, dtype or out_features with a clear error', async () => {
    const [x, w] = operands([4, 8], 8, 5, 1);
    const wide = randomTensor([4, 9], 'float32', 2);
    await assert.rejects(runGraph(m, graphOf(ACTS[0], { bias: false, n: 5 }), [wide, w]), /does not match the weight's 8 input features/);
    const doubles = randomTensor([4, 8], 'float64', 2);
    await assert.rejects(runGraph(m, graphOf(ACTS[0], { bias: false, n: 5 }), [doubles, w]), /expected a float32 input/);
    await assert.rejects(runGraph(m, graphOf(ACTS[0], { bias: false, n: 5, outFeatures: 17 }), [x, w]), /does not fit 1 panels/);
    [x, w, wide, doubles].forEach((t) => t.dispose());
  });
});
