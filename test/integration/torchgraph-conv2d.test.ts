// torchgraph::conv2d (native/packed_linear.cc, native/gemm_kernel.h) against aten::conv2d and
// ATen's activations, run through the addon in one built graph: image stems (RGB, 7x7 stride 2
// and 4x4 patches) and odd geometries (1 to 5 input channels, kernels wider than tall, strides
// and paddings per axis, output widths around the tile of 6 or 12 pixels, output channels around
// the panel of 16, no bias), NCHW and channels-last inputs; the output is channels last; each
// post-op activation; the packed weight unpacked back bit for bit; and the errors a wrong operand gets.
import { strict as assert } from 'assert';
import { Module, Tensor } from '../../lib';
import { ClassType, Graph, TensorType, type Value } from '../../lib/core/ir';
import { CONV2D_KIND, OWN_OP_SCHEMAS, PACK_CONV2D_KIND, UNPACK_CONV2D_KIND } from '../../lib/core/ops/own-schemas';
import { ensureModel } from '../../lib/app/models';
import { randomTensor } from '../../lib/torchscript/random';
import { runGraph } from '../support/graphs';
import { maxAbsDiff } from '../support/tensors';
import { ACTS, largest, type Act } from '../support/post-op-activations';

const T = [{ kind: 'Tensor' as const }];

interface Case { x: number[]; out: number; kernel: [number, number]; stride: [number, number]; padding: [number, number] }

describe('torchgraph::conv2d against aten::conv2d', function () {
  this.timeout(600_000);
  let m: Module;
  before(async () => { m = await Module.load((await ensureModel('mha_demo')).variants.traced!); });
  after(() => m.dispose());

  const ints = (g: Graph, xs: number[]) => g.createNode('prim::ListConstruct', xs.map((x) => g.insertConstant(BigInt(x))),
    [{ kind: 'List', elem: { kind: 'Int' } }]).output;

  /** A graph of (self, x, w, b): [ours, ATen's] for `act`, x made channels last first where `channelsLast`. */
  function graphOf(act: Act, c: Case, opts: { bias: boolean; channelsLast?: boolean; outChannels?: number }): Graph {
    const g = new Graph();
    g.addInput(ClassType(m.tree().type), 'self');
    let x: Value = g.addInput(TensorType, 'x');
    const w = g.addInput(TensorType, 'w');
    const b = opts.bias ? g.addInput(TensorType, 'b') : g.insertConstant(null);
    if (opts.channelsLast) x = g.createNode('aten::contiguous', [x, g.insertConstant(2n)], T).output; // torch.channels_last
    const packed = g.createNode(PACK_CONV2D_KIND, [w], T, {}, { schema: OWN_OP_SCHEMAS[PACK_CONV2D_KIND] }).output;
    const scalars = g.createNode('prim::ListConstruct', act.scalars.map((s) => g.insertConstant(s)),
      [{ kind: 'List', elem: { kind: 'Optional', elem: { kind: 'Number' } } }]).output;
    const ours = g.createNode(CONV2D_KIND, [x, packed, b, g.insertConstant(BigInt(opts.outChannels ?? c.out)), ints(g, c.kernel),
      ints(g, c.padding), ints(g, c.stride), g.insertConstant(act.attr), scalars, g.insertConstant(act.algorithm)], T, {},
    { schema: OWN_OP_SCHEMAS[CONV2D_KIND] }).output;
    const conv = g.createNode('aten::conv2d', [x, w, b, ints(g, c.stride), ints(g, c.padding), ints(g, [1, 1]), g.insertConstant(1n)], T).output;
    // A view of (N, H, W, C) as one row exists only where ours is channels last (else the graph raises).
    const nhwc = g.createNode('aten::view', [g.createNode('aten::permute', [ours, ints(g, [0, 2, 3, 1])], T).output, ints(g, [-1])], T).output;
    g.setOutputs([g.createNode('prim::TupleConstruct', [ours, act.aten(g, conv), nhwc], [{ kind: 'Tuple', elems: [T[0], T[0], T[0]] }]).output]);
    return g;
  }

  /** Weights scaled by 1/sqrt(fan-in), so outputs are O(1): 1e-5 of the largest is float32 rounding, a wrong window O(1). */
  function operands(c: Case, seed: number): Tensor[] {
    const shape = [c.out, c.x[1], ...c.kernel];
    const fanIn = c.x[1] * c.kernel[0] * c.kernel[1];
    const w = randomTensor(shape, 'float32', seed + 1);
    const scaled = Tensor.from(Float32Array.from(w.data() as Float32Array, (v) => v / Math.sqrt(fanIn)), shape, 'float32');
    w.dispose();
    return [randomTensor(c.x, 'float32', seed), scaled, randomTensor([c.out], 'float32', seed + 2)];
  }

  async function check(c: Case, act: Act, opts: { bias: boolean; channelsLast?: boolean }, seed: number): Promise<void> {
    const [x, w, b] = operands(c, seed);
    const outs = await runGraph(m, graphOf(act, c, opts), opts.bias ? [x, w, b] : [x, w]);
    const [ours, want, nhwc] = outs;
    try {
      assert.deepEqual(ours.shape, want.shape);
      const d = maxAbsDiff(ours, want);
      assert.ok(d <= 1e-5 * largest(want), `${JSON.stringify(c)} ${act.attr} bias ${opts.bias}: max abs diff ${d}`);
      assert.equal(nhwc.shape[0], ours.shape.reduce((a, v) => a * v, 1));
    } finally {
      [x, w, b, ...outs].forEach((t) => t.dispose());
    }
  }

  const cases: Case[] = [
    { x: [2, 3, 224, 224], out: 64, kernel: [7, 7], stride: [2, 2], padding: [3, 3] }, // ResNet's stem
    { x: [1, 3, 64, 64], out: 48, kernel: [4, 4], stride: [4, 4], padding: [0, 0] }, // patches
    { x: [3, 1, 9, 13], out: 5, kernel: [3, 5], stride: [1, 2], padding: [2, 0] },
    { x: [1, 2, 17, 29], out: 17, kernel: [2, 3], stride: [3, 1], padding: [0, 1] },
    { x: [2, 4, 12, 7], out: 33, kernel: [1, 1], stride: [1, 1], padding: [0, 0] },
    { x: [1, 5, 6, 6], out: 16, kernel: [6, 6], stride: [1, 1], padding: [0, 0] }, // one output pixel
    { x: [1, 3, 5, 40], out: 31, kernel: [3, 3], stride: [1, 1], padding: [1, 1] }, // 40 wide: tiles of 6 and 12 and a rest
  ];
  for (const [i, c] of cases.entries()) {
    it(`x ${c.x.join('x')}, ${c.out} outputs, kernel ${c.kernel}, stride ${c.stride}, padding ${c.padding}: equals aten::conv2d`, async () => {
      for (const bias of [true, false]) await check(c, ACTS[0], { bias }, 10 * i);
      await check(c, ACTS[1], { bias: true, channelsLast: true }, 10 * i + 5);
    });
  }

  it('applies each post-op activation as ATen does, over a partial panel', async () => {
    for (const act of ACTS) await check({ x: [1, 3, 11, 14], out: 21, kernel: [3, 3], stride: [2, 1], padding: [1, 1] }, act, { bias: true }, 7);
  });

  it('unpacks the packed weight back bit for bit', async () => {
    const g = new Graph();
    g.addInput(ClassType(m.tree().type), 'self');
    const w = g.addInput(TensorType, 'w');
    const packed = g.createNode(PACK_CONV2D_KIND, [w], T, {}, { schema: OWN_OP_SCHEMAS[PACK_CONV2D_KIND] }).output;
    const back = g.createNode(UNPACK_CONV2D_KIND, [packed, ints(g, [19, 3, 5, 2])], T, {}, { schema: OWN_OP_SCHEMAS[UNPACK_CONV2D_KIND] }).output;
    g.setOutputs([g.createNode('prim::TupleConstruct', [packed, back], [{ kind: 'Tuple', elems: [T[0], T[0]] }]).output]);
    const wt = randomTensor([19, 3, 5, 2], 'float32', 3);
    const [p, got] = await runGraph(m, g, [wt]);
    assert.deepEqual(p.shape, [2, 30, 16]);
    assert.deepEqual(got.shape, [19, 3, 5, 2]);
    assert.deepEqual([...got.data() as Float32Array], [...wt.data() as Float32Array]);
    [wt, p, got].forEach((t) => t.dispose());
  });

  it('refuses a wrong input, dtype, out_channels or geometry with a clear error', async () => {
    const c: Case = { x: [1, 3, 8, 8], out: 5, kernel: [3, 3], stride: [1, 1], padding: [1, 1] };
    const [x, w] = operands(c, 1);
    const four = randomTensor([1, 4, 8, 8], 'float32', 2);
    await assert.rejects(runGraph(m, graphOf(ACTS[0], c, { bias: false }), [four, w]), /does not match the weight's 27 rows/);
    const doubles = randomTensor([1, 3, 8, 8], 'float64', 2);
    await assert.rejects(runGraph(m, graphOf(ACTS[0], c, { bias: false }), [doubles, w]), /expected a float32 input/);
    await assert.rejects(runGraph(m, graphOf(ACTS[0], c, { bias: false, outChannels: 17 }), [x, w]), /does not fit 1 panels/);
    const small = randomTensor([1, 3, 1, 1], 'float32', 2);
    await assert.rejects(runGraph(m, graphOf(ACTS[0], { ...c, padding: [0, 0] }, { bias: false }), [small, w]), /larger than the padded input/);
    [x, w, four, doubles, small].forEach((t) => t.dispose());
  });
});
