// optimize()'s faster-form check (lib/pipeline/faster-form.ts, optimize-rewrite.ts) where the
// rewrite loses: given original times no rewritten run can beat, the rewrite keeps the original
// model's own graph, its weights loaded again from its file (torchvision-style ResNet and the
// built-in attention block), equal to the original; and where that file is gone, the rewritten
// graph stays, with the reason. The original's runs are timed before the rewrite exists and the
// rewritten graph's after the weights moved, so neither runs beside the other's memory.
import { strict as assert } from 'assert';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Module } from '../../lib/torchscript/module';
import { rewriteModel } from '../../lib/pipeline/optimize-rewrite';
import { ensureModel, type ModelName } from '../../lib/app/models';
import { randomTensor } from '../../lib/torchscript/random';
import { flattenTensors } from '../../lib/torchscript/tensor';
import type { DType } from '../../lib/core/ir/serialized';
import { runGraph } from '../support/graphs';
import { maxAbsDiff } from '../support/tensors';

/** Original times no run can beat: every rewritten run is slower. */
const UNBEATABLE = [1e-6, 1e-6, 1e-6, 1e-6, 1e-6];

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
        assert.match(r.report.form.reason, /ran slower: .* every run slower; the original graph is kept/);
        assert.ok(r.report.timings['load the original again'] > 0);
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
});
