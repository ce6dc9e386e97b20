// Each attention's core diff, fused against unfused, on real models: every decomposed attention
// of a model with several (encoder_pre_norm's layers; seq2seq's self-, cross- and decoder
// attentions) gets a number, small where the fused graph is right, and a core whose fused
// output is perturbed shows up in that attention alone.
import { strict as assert } from 'assert';
import { ensureModel } from '../../lib/app/models';
import { loadModel } from '../../lib/program/load-model';
import { prepareGraphs } from '../../lib/pipeline/prepare';
import { attentionDiffs } from '../../lib/pipeline/attention-diffs';
import { tensorFromFile } from '../support/tensors';
import type { Graph } from '../../lib/core/ir';

describe('attention diffs: each core, fused against unfused (integration)', function () {
  this.timeout(600_000);

  for (const name of ['encoder_pre_norm', 'seq2seq']) {
    it(`${name}: a diff for every decomposed attention, each within 1e-4`, async function () {
      let fx;
      try {
        fx = await ensureModel(name);
      } catch (e) {
        console.log(`      skipped: ${(e as Error).message.split('\n')[0]}`);
        this.skip();
      }
      const m = await loadModel(fx.variants.traced!, { device: 'cpu' });
      const inputs = fx.inputs.map(tensorFromFile);
      try {
        const p = await prepareGraphs(m, inputs.map((t) => ({ shape: t.shape, dtype: t.dtype })));
        const ids = p.decomposition.report.decomposed.map((d) => d.id);
        assert.ok(ids.length >= 2, `several attentions: ${ids}`);
        const diffs = await attentionDiffs(m, { unfused: p.decomposed, fused: p.fused }, inputs);
        assert.deepEqual(Object.keys(diffs).sort(), [...new Set(ids)].sort());
        for (const [id, d] of Object.entries(diffs)) assert.ok(typeof d === 'number' && d >= 0 && d < 1e-4, `${id}: ${d}`);

        // The last core's output scaled by 1.5 in the fused graph: that attention's diff, and no other's, grows.
        const { graph: bad, id: perturbed } = scaleLastCore(p.fused);
        const badDiffs = await attentionDiffs(m, { unfused: p.decomposed, fused: bad }, inputs);
        assert.deepEqual(Object.keys(badDiffs).sort(), Object.keys(diffs).sort());
        for (const [id, d] of Object.entries(badDiffs)) {
          if (id === perturbed) assert.ok(d !== null && d > 1e-2, `${id} perturbed: ${d}`);
          else assert.ok(d !== null && d < 1e-4, `${id}: ${d}`);
        }
      } finally {
        inputs.forEach((t) => t.dispose());
        m.dispose();
      }
    });
  }
});

/** A copy of `fused` whose last attention core output is multiplied by 1.5 (the product carries the core's role). */
function scaleLastCore(fused: Graph): { graph: Graph; id: string } {
  const g = fused.clone();
  const role = (n: { meta: Record<string, unknown> }) => (n.meta.attention as { id: string; role: string } | undefined);
  const core = g.nodes().filter((n) => ['context', 'fused_attention'].includes(role(n)?.role ?? '')).at(-1)!;
  const id = role(core)!.id;
  const v = core.outputs[0];
  const scaled = g.withInsertPoint(core.next ?? g.block, () => g.createNode('aten::mul', [v, g.insertConstant(1.5)], [v.type]));
  v.replaceAllUsesWith(scaled.output);
  scaled.replaceInput(0, v);
  core.meta.attention = { id, role: 'perturbed' };
  scaled.meta.attention = { id, role: 'fused_attention' };
  return { graph: g, id };
}
