// Batch norm folded into the convolution before it (lib/fusion/fold-batch-norm.ts): on the
// built-in CNNs, traced and scripted, every eval batch norm after a convolution goes, the fused
// graph equals the original, and the folded weights are counted as held weights; pairs that
// cannot be folded say why.
import { strict as assert } from 'assert';
import { ensureModel, type ModelName } from '../../lib/app/models';
import { Module } from '../../lib/torchscript/module';
import { prepareGraphs } from '../../lib/pipeline/prepare';
import { compareGraphs } from '../../lib/pipeline/compare';
import { randomTensor } from '../../lib/torchscript/random';
import { planBatchNormFolds } from '../../lib/fusion/fold-batch-norm';
import { partitionForLowering } from '../../lib/fusion/lower-groups';
import { Graph, IntType, ListType, OptionalType, TensorType } from '../../lib/core/ir';
import { setValueInfo } from '../../lib/core/value-info';

const count = (g: Graph, kind: string) => g.allNodes().filter((n) => n.kind === kind).length;

describe('fold batch norm into convolutions', function () {
  this.timeout(600_000);

  for (const name of ['small_cnn_resnet', 'small_cnn_mbconv'] as ModelName[]) {
    for (const variant of ['traced', 'scripted'] as const) {
      it(`${name} ${variant}: every batch norm after a convolution folded, outputs equal`, async () => {
        const fx = await ensureModel(name);
        const m = await Module.load(fx.variants[variant]!);
        const specs = fx.inputs.map((i) => ({ shape: i.shape, dtype: i.dtype }));
        const inputs = specs.map((s, i) => randomTensor(s.shape, s.dtype, 7 + i));
        try {
          // Folding alone: the pointwise kernels (conv-pointwise.test.ts) would repack the folded
          // weights, and packed linears (packed-linear.test.ts) hold weights of their own.
          const p = await prepareGraphs(m, specs, { pointwiseConvolutions: false, packedLinears: false });
          const before = count(p.decomposed, 'aten::batch_norm');
          assert.ok(before > 0, 'the fixture has batch norms');
          const folded = p.lowering.foldedBatchNorms!.filter((o) => o.lowered);
          assert.equal(count(p.fused, 'aten::batch_norm'), before - folded.length);
          assert.ok(folded.length >= before - 1, `${folded.length} of ${before} folded: ${JSON.stringify(p.lowering.foldedBatchNorms)}`);
          assert.equal(p.lowering.heldWeightBytes, folded.reduce((a, o) => a + o.heldBytes!, 0));
          const off = await prepareGraphs(m, specs, { foldBatchNorms: false });
          assert.equal(count(off.fused, 'aten::batch_norm'), before, 'foldBatchNorms: false keeps them');
          const cmp = await compareGraphs(m, { unfused: p.decomposed, fused: p.fused }, inputs, { warmup: 1, repetitions: 1 });
          assert.ok(cmp.runs.fused.maxAbsDiff !== null && cmp.runs.fused.maxAbsDiff <= 1e-5, `fused max abs diff ${cmp.runs.fused.maxAbsDiff}`);
        } finally {
          inputs.forEach((t) => t.dispose());
          m.dispose();
        }
      });
    }
  }

  it('a batch norm in training mode, or a convolution output read twice, is refused with the reason', () => {
    const build = (training: boolean, readTwice: boolean) => {
      const g = new Graph();
      const self = g.addInput({ kind: 'Class', name: '__torch__.Net' }, 'self');
      const x = g.addInput(TensorType, 'x');
      const attr = (name: string) => g.createNode('prim::GetAttr', [self], [TensorType], { name: { kind: 's', value: name } }).output;
      const [w, gamma, beta, mean, v] = ['w', 'gamma', 'beta', 'mean', 'var'].map(attr);
      setValueInfo(w, { kind: 'Tensor', shape: [4, 3, 3, 3], strides: [27, 9, 3, 1], dtype: 'float32', bytes: 432, storageBytes: 432 });
      const none = g.insertConstant(null);
      const ints = g.createNode('prim::ListConstruct', [g.insertConstant(1n), g.insertConstant(1n)], [ListType(IntType)]).output;
      const conv = g.createNode('aten::conv2d', [x, w, none, ints, ints, ints, g.insertConstant(1n)], [TensorType]);
      none.type = OptionalType(TensorType);
      const bn = g.createNode('aten::batch_norm', [conv.output, gamma, beta, mean, v, g.insertConstant(training), g.insertConstant(0.1), g.insertConstant(1e-5), g.insertConstant(true)], [TensorType]);
      const relu = g.createNode('aten::relu', [bn.output], [TensorType]);
      g.setOutputs(readTwice ? [relu.output, conv.output] : [relu.output]);
      return planBatchNormFolds(g, partitionForLowering(g));
    };
    const ok = build(false, false);
    assert.equal(ok.requests.length, 1, JSON.stringify([...ok.refused]));
    assert.match([...build(true, false).refused.values()].join(), /not in eval mode/);
    const twice = build(false, true);
    assert.equal(twice.requests.length, 0);
    assert.match([...twice.refused.values()].join() || 'not grouped', /read by more than the batch norm|not grouped/);
  });
});
