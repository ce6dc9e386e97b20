// Concurrent runs (issue 14, case 4): results equal sequential ones bit for bit, and a measured
// peak is the run's own whatever else runs or is freed at the same time.
import { strict as assert } from 'assert';
import { ensureModel } from '../../lib/app/models';
import { compareGraphs } from '../../lib/pipeline/compare';
import { prepareGraphs } from '../../lib/pipeline/prepare';
import { Module } from '../../lib/torchscript/module';
import { Tensor } from '../../lib/torchscript/tensor';
import { tensorFromFile } from '../support/tensors';

const sameBits = (a: Tensor, b: Tensor) => Buffer.from((a.data() as Float32Array).buffer).equals(Buffer.from((b.data() as Float32Array).buffer));

describe('concurrent runs (issue 14)', function () {
  this.timeout(600_000);
  let m: Module;
  let x: Tensor;
  let reference: Tensor;
  before(async () => {
    const fx = await ensureModel('mha_demo');
    m = await Module.load(fx.variants.traced!);
    x = tensorFromFile(fx.inputs[0]);
    reference = (await m.forward(x)) as Tensor;
  });
  after(() => { reference.dispose(); x.dispose(); m.dispose(); });

  for (const n of [8, 64]) {
    it(`${n} concurrent forwards equal the sequential one bit for bit`, async () => {
      const outs = (await Promise.all(Array.from({ length: n }, () => m.forward(x)))) as Tensor[];
      outs.forEach((o, i) => assert.ok(sameBits(o, reference), `output ${i}`));
      outs.forEach((o) => o.dispose());
    });
  }

  it('measured peaks of concurrent runs equal sequential ones, with unmeasured runs and frees alongside', async () => {
    const measured = async () => {
      const r = await m.run('forward', [x], { measureMemory: true });
      (r.output as Tensor).dispose();
      return r.peakBytes;
    };
    const sequential: number[] = [];
    for (let i = 0; i < 3; i++) sequential.push(await measured());
    assert.ok(sequential.every((p) => p === sequential[0] && p > 0), `sequential peaks ${sequential}`);
    // Tensors made before and freed on the JS thread while the measured runs go on.
    const held = Array.from({ length: 16 }, () => Tensor.empty([1 << 18]));
    const work: Promise<unknown>[] = [];
    for (let i = 0; i < 8; i++) {
      work.push(measured());
      work.push(m.forward(x).then((o) => { (o as Tensor).dispose(); held.pop()?.dispose(); }));
    }
    const results = await Promise.all(work);
    held.forEach((t) => t.dispose());
    const peaks = results.filter((r): r is number => typeof r === 'number');
    assert.equal(peaks.length, 8);
    assert.deepEqual(peaks, peaks.map(() => sequential[0]), `concurrent peaks ${peaks} vs sequential ${sequential[0]}`);
  });

  it('concurrent compareGraphs report the same peaks as sequential ones', async () => {
    const fx = await ensureModel('mha_demo');
    const prepared = await prepareGraphs(m, fx.inputs.map((t) => ({ shape: t.shape, dtype: t.dtype })));
    const graphs = { unfused: prepared.decomposed, fused: prepared.fused };
    const peaks = async () => {
      const c = await compareGraphs(m, graphs, [x], { warmup: 1, repetitions: 3 });
      return [c.runs.original.peakBytes, c.runs.unfused.peakBytes, c.runs.fused.peakBytes];
    };
    const sequential = await peaks();
    const concurrent = await Promise.all([peaks(), peaks(), peaks()]);
    for (const c of concurrent) assert.deepEqual(c, sequential);
  });
});
