// torchgraph::max_pool2d (native/fused_ops.cc) against aten::max_pool2d, run through the addon in
// one built graph: channels-last inputs of odd sizes (channel counts around the kernel's block of
// 64, odd spatial sizes), asymmetric kernels, strides, padding, dilation and ceil mode, NaN and
// -inf in the windows; inputs the fast path leaves to ATen (contiguous, float64) and arguments ATen
// refuses, with ATen's own error. Then the lowering (lib/fusion/max-pool.ts) on torchvision's
// ResNet from the corpus: the pool after the stem's convolution becomes ours, the fused graph
// equals the original, off by its switch, and optimize() runs it while save() writes the ATen op.
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Module, optimize, Tensor } from '../../lib';
import { ClassType, Graph, TensorType, type Value } from '../../lib/core/ir';
import { OWN_OP_SCHEMAS, MAX_POOL_KIND } from '../../lib/core/ops/own-schemas';
import { ensureModel } from '../../lib/app/models';
import { loadCorpus } from '../../lib/app/corpus';
import { prepareGraphs } from '../../lib/pipeline/prepare';
import { compareGraphs } from '../../lib/pipeline/compare';
import { exportView } from '../../lib/transforms/module-views';
import { randomTensor } from '../../lib/torchscript/random';
import { readNpy } from '../../lib/torchscript/npy';
import { flattenTensors } from '../../lib/torchscript/tensor';
import type { TypedArray } from '../../lib/torchscript/binding';
import { runGraph } from '../support/graphs';
import { maxAbsDiff } from '../support/tensors';

const T = [{ kind: 'Tensor' as const }];

interface PoolCase { shape: [number, number, number, number]; k: number[]; s: number[]; p: number[]; d: number[]; ceil: boolean }

/** Equal element for element, NaN where the other has NaN. */
function assertSameValues(got: Tensor, want: Tensor, what: string): void {
  assert.deepEqual(got.shape, want.shape, `${what}: shape`);
  const a = got.data(), b = want.data();
  for (let i = 0; i < a.length; i++) {
    const x = Number(a[i]), y = Number(b[i]);
    if (!(x === y || (Number.isNaN(x) && Number.isNaN(y)))) assert.fail(`${what}: element ${i} is ${x}, ATen's ${y}`);
  }
}

/** A float32 tensor of random values with NaN and -inf planted at a few places. */
function withSpecials(shape: number[], seed: number): Tensor {
  const r = randomTensor(shape, 'float32', seed);
  const data = Float32Array.from(r.data() as Float32Array);
  r.dispose();
  for (let i = 0; i < data.length; i += 97) data[i] = Number.NaN;
  for (let i = 13; i < data.length; i += 89) data[i] = -Infinity;
  return Tensor.from(data, shape, 'float32');
}

describe('torchgraph::max_pool2d against aten::max_pool2d', function () {
  this.timeout(600_000);
  let m: Module;
  before(async () => { m = await Module.load((await ensureModel('mha_demo')).variants.traced!); });
  after(() => m.dispose());

  /** [ours, ATen's] on x, made channels last in the graph first unless `layout` says contiguous. */
  async function pools(x: Tensor, c: PoolCase, layout: 'channels_last' | 'contiguous' = 'channels_last'): Promise<Tensor[]> {
    const g = new Graph();
    g.addInput(ClassType(m.tree().type), 'self');
    let xv: Value = g.addInput(TensorType, 'x');
    if (layout === 'channels_last') xv = g.createNode('aten::contiguous', [xv, g.insertConstant(2n)], T).output;
    const ints = (xs: number[]) => g.createNode('prim::ListConstruct', xs.map((v) => g.insertConstant(BigInt(v))),
      [{ kind: 'List', elem: { kind: 'Int' } }]).output;
    const args = () => [xv, ints(c.k), ints(c.s), ints(c.p), ints(c.d), g.insertConstant(c.ceil)];
    const ours = g.createNode(MAX_POOL_KIND, args(), T, {}, { schema: OWN_OP_SCHEMAS[MAX_POOL_KIND] }).output;
    const atens = g.createNode('aten::max_pool2d', args(), T).output;
    g.setOutputs([g.createNode('prim::TupleConstruct', [ours, atens], [{ kind: 'Tuple', elems: [T[0], T[0]] }]).output]);
    return runGraph(m, g, [x]);
  }

  const cases: PoolCase[] = [
    { shape: [2, 64, 112, 112], k: [3, 3], s: [2, 2], p: [1, 1], d: [1, 1], ceil: false }, // ResNet's stem pool
    { shape: [1, 3, 7, 9], k: [2], s: [2], p: [0], d: [1], ceil: true },
    { shape: [3, 17, 11, 13], k: [3, 2], s: [2, 1], p: [1, 0], d: [1, 2], ceil: false },
    { shape: [2, 65, 10, 10], k: [3, 3], s: [1, 1], p: [1, 1], d: [1, 1], ceil: false },
    { shape: [1, 130, 9, 9], k: [5, 5], s: [3, 3], p: [2, 2], d: [1, 1], ceil: true },
    { shape: [2, 1, 8, 8], k: [2, 2], s: [], p: [0], d: [1], ceil: false }, // stride left out: the kernel size
    { shape: [1, 16, 5, 5], k: [3, 3], s: [2, 2], p: [1, 1], d: [2, 2], ceil: true },
    { shape: [2, 128, 6, 7], k: [6, 7], s: [1, 1], p: [0, 0], d: [1, 1], ceil: false }, // a global max
  ];
  for (const c of cases) {
    it(`${c.shape.join('x')}, kernel ${c.k}, stride ${c.s.length ? c.s : 'default'}, padding ${c.p}, dilation ${c.d}${c.ceil ? ', ceil mode' : ''}: equal, NaN and -inf included`, async () => {
      const x = withSpecials(c.shape, c.shape.reduce((a, b) => a + b, 0));
      try {
        const [ours, atens] = await pools(x, c);
        assertSameValues(ours, atens, 'channels last');
      } finally {
        x.dispose();
      }
    });
  }

  it('inputs the fast path leaves to ATen: a contiguous (NCHW) input and float64', async () => {
    const c = cases[2];
    const x = withSpecials(c.shape, 5);
    const [a, b] = await pools(x, c, 'contiguous');
    assertSameValues(a, b, 'contiguous');
    const x64 = randomTensor(c.shape, 'float64', 6);
    const [p, q] = await pools(x64, c);
    assert.equal(maxAbsDiff(p, q), 0);
    x.dispose(); x64.dispose();
  });

  it('arguments ATen refuses get ATen\'s own error, not a crash', async () => {
    const x = randomTensor([1, 8, 6, 6], 'float32', 1);
    await assert.rejects(pools(x, { shape: [1, 8, 6, 6], k: [2, 2], s: [1, 1], p: [2, 2], d: [1, 1], ceil: false }),
      /pad should be at most half of effective kernel size/);
    await assert.rejects(pools(x, { shape: [1, 8, 6, 6], k: [9, 9], s: [1, 1], p: [0, 0], d: [1, 1], ceil: false }), /Output size is too small/);
    x.dispose();
  });
});

describe('the max pool lowering on a real model (torchvision ResNet-18)', function () {
  this.timeout(900_000);

  it('the pool after the stem\'s convolution is ours, the fused graph equals the original; off by its switch', async () => {
    const corpus = await loadCorpus({ log: () => {} });
    const fx = corpus.byId.torchvision_resnet18;
    if (!fx?.variants.traced) assert.fail(`torchvision_resnet18 not exported: ${JSON.stringify(fx?.errors ?? corpus.skips)}`);
    const m = await Module.load(fx.variants.traced);
    const xs = fx.inputs.map((i) => { const a = readNpy(i.file); return Tensor.from(a.data as TypedArray, a.shape, a.dtype); });
    const specs = fx.inputs.map((i) => ({ shape: i.shape, dtype: i.dtype }));
    try {
      const p = await prepareGraphs(m, specs);
      assert.deepEqual(p.lowering.maxPools?.map((o) => o.lowered), [true], JSON.stringify(p.lowering.maxPools));
      const kinds = p.fused.allNodes().map((n) => n.kind);
      assert.equal(kinds.filter((k) => k === MAX_POOL_KIND).length, 1);
      assert.equal(kinds.filter((k) => k === 'aten::max_pool2d').length, 0);
      const cmp = await compareGraphs(m, { unfused: p.decomposed, fused: p.fused }, xs, { warmup: 1, repetitions: 1 });
      assert.ok(cmp.runs.fused.maxAbsDiff !== null && cmp.runs.fused.maxAbsDiff <= 1e-4, `fused max abs diff ${cmp.runs.fused.maxAbsDiff}`);
      assert.equal(cmp.runs.fused.peakBytes, p.estimates.fused.peakBytes, 'measured peak as estimated');
      const off = await prepareGraphs(m, specs, { maxPools: false });
      assert.equal(off.lowering.maxPools, undefined);
      assert.equal(off.fused.allNodes().filter((n) => n.kind === MAX_POOL_KIND).length, 0);
      // Without the convolutions' lowering the pool's input is contiguous: ATen's kernel stays, with the reason.
      const plain = await prepareGraphs(m, specs, { pointwiseConvolutions: false });
      assert.match(plain.lowering.maxPools?.[0]?.reason ?? '', /not channels last/);
    } finally {
      xs.forEach((x) => x.dispose());
      m.dispose();
    }
  });

  it('optimize() runs ours; save() writes aten::max_pool2d, which plain libtorch loads', async () => {
    const corpus = await loadCorpus({ log: () => {} });
    const fx = corpus.byId.torchvision_resnet18;
    const xs = fx.inputs.map((i) => { const a = readNpy(i.file); return Tensor.from(a.data as TypedArray, a.shape, a.dtype); });
    const original = await Module.load(fx.variants.traced!);
    const want = flattenTensors(await original.forward(...xs));
    const model = await optimize(original, fx.inputs.map((i) => ({ shape: i.shape, dtype: i.dtype })), { worker: false, keepFaster: false });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tg-max-pool-'));
    try {
      assert.deepEqual(model.report.lowering.maxPools?.map((o) => o.lowered), [true], JSON.stringify(model.report.lowering.maxPools));
      const got = flattenTensors(await model.forward(...xs));
      assert.ok(maxAbsDiff(got[0], want[0]) <= 1e-4, `optimized differs by ${maxAbsDiff(got[0], want[0])}`);
      const file = path.join(dir, 'saved.pt');
      await model.save(file);
      const saved = await Module.load(file);
      const kinds = exportView(saved, 'inlined').graph.allNodes().map((n) => n.kind);
      assert.ok(kinds.includes('aten::max_pool2d') && !kinds.some((k) => k.startsWith('torchgraph::')), kinds.join());
      saved.dispose();
    } finally {
      model.dispose();
      xs.forEach((x) => x.dispose());
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
