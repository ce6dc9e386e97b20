// optimize()'s faster-form check (lib/pipeline/faster-form.ts, optimize-rewrite.ts). Given times
// (no rewritten run can beat the original's apart, and side by side either outcome), the rewrite
// keeps the original model's own graph, its weights loaded again from its file (torchvision-style
// ResNet and the built-in attention block), equal to the original, or keeps the rewrite that won
// side by side; where the file is gone, the rewritten graph stays, with the reason. Through
// optimize() itself, on real times: the original timed on this thread before the worker begins,
// the rewrite in the worker, and whichever form is kept is the one the report says.
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Module } from '../../lib/torchscript/module';
import { rewriteModel, type FormCheck } from '../../lib/pipeline/optimize-rewrite';
import { optimize } from '../../lib/pipeline/optimize';
import { ensureModel, type ModelName } from '../../lib/app/models';
import { randomTensor } from '../../lib/torchscript/random';
import { flattenTensors } from '../../lib/torchscript/tensor';
import type { DType } from '../../lib/core/ir/serialized';
import { runGraph } from '../support/graphs';
import { maxAbsDiff } from '../support/tensors';

const FAST = [1e-6, 1e-6, 1e-6, 1e-6, 1e-6];
const SLOW = [1e6, 1e6, 1e6, 1e6, 1e6];
/** Original times no run can beat, apart and side by side: every rewritten run is slower. */
const UNBEATABLE: FormCheck = { originalMs: FAST, sideBySide: async () => ({ rewritten: SLOW, original: FAST }) };
/** Slower apart (a noisy moment), faster side by side. */
const SLOWER_APART_ONLY: FormCheck = { originalMs: FAST, sideBySide: async () => ({ rewritten: FAST, original: SLOW }) };

describe('optimize keeps the faster form', function () {
  this.timeout(600_000);
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'tg-form-'));
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  for (const name of ['small_cnn_resnet', 'mha_demo'] as ModelName[]) {
    it(`${name}: a rewrite that ran slower gives way to the original graph, loaded again from the file, equal to the original`, async () => {
      const fx = await ensureModel(name);
      const specs = fx.inputs.map((i) => ({ shape: i.shape, dtype: i.dtype as DType }));
      const xs = specs.map((s, i) => randomTensor(s.shape, s.dtype, 40 + i));
      const original = await Module.load(fx.variants.traced!);
      const want = flattenTensors(await original.forward(...xs));
      const r = await rewriteModel(await Module.load(fx.variants.traced!), specs, {}, 2, UNBEATABLE);
      try {
        assert.equal(r.report.form?.kept, 'original', JSON.stringify(r.report.form));
        assert.match(r.report.form.reason, /ran slower: .*timed side by side\), every run slower; the original graph is kept/);
        assert.ok(r.report.timings['load the original again'] > 0 && r.report.timings['time both side by side'] >= 0);
        assert.deepEqual(r.report.lowering.attentionCores, []);
        const kinds = r.portable.allNodes().map((n) => n.kind);
        assert.ok(!kinds.some((k) => k.startsWith('torchgraph::')), kinds.join());
        const got = await runGraph(r.module, r.run, xs);
        assert.ok(maxAbsDiff(got[0], want[0]) <= 1e-4, `differs by ${maxAbsDiff(got[0], want[0])}`);
      } finally {
        r.module.dispose();
        original.dispose();
        xs.forEach((x) => x.dispose());
      }
    });
  }

  it('where the original\'s file is gone by then, the rewritten graph stays and the report says why', async () => {
    const fx = await ensureModel('mha_demo');
    const file = path.join(tmp, 'gone.pt');
    fs.copyFileSync(fx.variants.traced!, file);
    const m = await Module.load(file);
    fs.rmSync(file);
    const specs = fx.inputs.map((i) => ({ shape: i.shape, dtype: i.dtype as DType }));
    const r = await rewriteModel(m, specs, {}, 2, UNBEATABLE);
    try {
      assert.equal(r.report.form?.kept, 'rewritten');
      assert.match(r.report.form.reason, /ran slower: .*but the original could not be loaded again from .*gone\.pt .*: the rewritten graph is kept/);
    } finally {
      r.module.dispose();
    }
  });

  it('a rewrite slower apart but faster side by side is kept (the original loaded again is let go)', async () => {
    const fx = await ensureModel('mha_demo');
    const specs = fx.inputs.map((i) => ({ shape: i.shape, dtype: i.dtype as DType }));
    const r = await rewriteModel(await Module.load(fx.variants.traced!), specs, {}, 2, SLOWER_APART_ONLY);
    try {
      assert.equal(r.report.form?.kept, 'rewritten', JSON.stringify(r.report.form));
      assert.match(r.report.form.reason, /timed side by side\) \(apart, it had run/);
      assert.ok(r.report.lowering.attentionCores.some((c) => c.lowered));
      assert.ok(r.run.allNodes().some((n) => n.kind.startsWith('torchgraph::') || n.kind === 'aten::scaled_dot_product_attention'));
    } finally {
      r.module.dispose();
    }
  });

  it('side by side on real times (the rewrite lost apart): both graphs run interleaved, and the form kept is the one reported', async () => {
    const fx = await ensureModel('mha_demo');
    const specs = fx.inputs.map((i) => ({ shape: i.shape, dtype: i.dtype as DType }));
    const xs = specs.map((s, i) => randomTensor(s.shape, s.dtype, 60 + i));
    const original = await Module.load(fx.variants.traced!);
    const want = flattenTensors(await original.forward(...xs));
    const r = await rewriteModel(await Module.load(fx.variants.traced!), specs, {}, 2, { originalMs: FAST });
    try {
      assert.ok(r.report.timings['time both side by side'] > 0, JSON.stringify(r.report.timings));
      const form = r.report.form!;
      assert.match(form.reason, /timed side by side/);
      assert.ok(form.rewrittenMs > 0 && form.originalMs > 0 && form.rewrittenMs < 1e5, JSON.stringify(form));
      const kinds = r.run.allNodes().map((n) => n.kind);
      assert.equal(kinds.includes('aten::scaled_dot_product_attention'), form.kept === 'rewritten', `${form.kept}: ${kinds.join()}`);
      const got = await runGraph(r.module, r.run, xs);
      assert.ok(maxAbsDiff(got[0], want[0]) <= 1e-4, `differs by ${maxAbsDiff(got[0], want[0])}`);
    } finally {
      r.module.dispose();
      original.dispose();
      xs.forEach((x) => x.dispose());
    }
  });

  it('optimize() on real times: the original timed before the worker, the rewrite in it (side by side where it lost apart); the kept form is the one reported', async () => {
    const fx = await ensureModel('mha_demo');
    const specs = fx.inputs.map((i) => ({ shape: i.shape, dtype: i.dtype as DType }));
    const xs = specs.map((s, i) => randomTensor(s.shape, s.dtype, 50 + i));
    const original = await Module.load(fx.variants.traced!);
    const want = flattenTensors(await original.forward(...xs));
    const o = await optimize(await Module.load(fx.variants.traced!), specs);
    try {
      const form = o.report.form;
      assert.ok(form && form.rewrittenMs > 0 && form.originalMs > 0, JSON.stringify(form));
      assert.ok(o.report.timings['time the original'] > 0 && o.report.timings['time the rewritten graph'] > 0, JSON.stringify(o.report.timings));
      const lowered = o.report.lowering.attentionCores.some((c) => c.lowered);
      // Whichever form the times chose, the model runs that one and equals the original.
      assert.equal(lowered, form.kept === 'rewritten', JSON.stringify(form));
      const got = flattenTensors(await o.forward(...xs));
      assert.ok(maxAbsDiff(got[0], want[0]) <= 1e-4, `differs by ${maxAbsDiff(got[0], want[0])}`);
      got.forEach((t) => t.dispose());
    } finally {
      o.dispose();
      original.dispose();
      xs.forEach((x) => x.dispose());
      want.forEach((t) => t.dispose());
    }
  });
});
