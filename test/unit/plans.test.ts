// The lowerings' plans on small hand-built graphs (no libtorch): which groups or ops each plan
// takes, and the reason it gives for each one it refuses. planBatchNormFolds, planConvPointwise,
// planPackedLinears (lib/fusion/*) and planConcatenations (more in concat-weights.test.ts).
import { strict as assert } from 'assert';
import type { Node, Value } from '../../lib/core/ir';
import { planBatchNormFolds } from '../../lib/fusion/fold-batch-norm';
import { planConvPointwise } from '../../lib/fusion/conv-pointwise';
import { planPackedLinears } from '../../lib/fusion/linear-packed';
import { planConcatenations } from '../../lib/fusion/concat-weights';
import { GB } from '../support/graph-builder';

const group = (id: string, ...vs: Value[]) => ({ kind: 'conv_bn_act', id, nodes: vs.map((v) => v.node!) });
const refusals = (p: { refused: Map<string, string> }) => Object.fromEntries(p.refused);

describe('planBatchNormFolds', () => {
  function convBn(b: GB, o: { training?: boolean; wDtype?: 'float16'; weightFromInput?: boolean } = {}) {
    const x = b.input('x', [1, 3, 8, 8]);
    const w = o.weightFromInput ? b.relu(b.input('w_in', [4, 3, 3, 3])) : b.weight('w', [4, 3, 3, 3], o.wDtype);
    const conv = b.conv2d(x, w, null, 1, 1);
    const p = (n: string) => b.weight(`bn.${n}`, [4]);
    const bn = b.fresh('aten::batch_norm', [conv, p('weight'), p('bias'), p('mean'), p('var'), b.bool(o.training ?? false), b.float(0.1), b.float(1e-5), b.bool(true)], [1, 4, 8, 8]);
    return { conv, bn };
  }

  it('plans an eval batch norm over module weights; refuses training mode, a conv read twice, float16 and input-dependent weights, with reasons', () => {
    const b = new GB();
    const ok = convBn(b), training = convBn(b, { training: true }), twice = convBn(b), half = convBn(b, { wDtype: 'float16' }), computed = convBn(b, { weightFromInput: true });
    b.out(ok.bn, training.bn, twice.bn, twice.conv, half.bn, computed.bn);
    const plan = planBatchNormFolds(b.g, [group('ok', ok.conv, ok.bn), group('training', training.conv, training.bn), group('twice', twice.conv, twice.bn),
      group('half', half.conv, half.bn), group('computed', computed.conv, computed.bn), { kind: 'linear_act', id: 'other', nodes: [] }]);
    assert.deepEqual(plan.requests.map((r) => r.id), ['ok']);
    assert.ok(plan.requests[0].conv === ok.conv.node && plan.requests[0].bn === ok.bn.node, 'the conv and bn of the group');
    assert.deepEqual(refusals(plan), {
      training: 'the batch norm is not in eval mode (training is not the constant False)',
      twice: 'the convolution output is read by more than the batch norm',
      half: 'the convolution weight is not a float32 tensor of known shape',
      computed: 'the weights depend on the inputs, so they cannot be folded once ahead of the runs',
    });
  });
});

describe('planConvPointwise', () => {
  it('takes conv + relu and conv + residual add + relu groups, and a convolution in no group; refuses an unfolded batch norm and non-constant geometry', () => {
    const b = new GB();
    const x = b.input('x', [1, 4, 8, 8]);
    const conv = b.conv2d(x, b.weight('w1', [4, 4, 3, 3]), null, 1, 1);
    const act = b.relu(conv);
    const conv2 = b.conv2d(act, b.weight('w2', [4, 4, 1, 1]), b.weight('b2', [4]), 1, 0);
    const add = b.add(conv2, act);
    const act2 = b.relu(add);
    const alone = b.conv2d(act2, b.weight('w3', [4, 4, 1, 1]), null, 1, 0);
    const withBn = b.batchNorm(b.conv2d(alone, b.weight('w4', [4, 4, 1, 1]), null, 1, 0), 4);
    const stride = b.g.addInput({ kind: 'List', elem: { kind: 'Int' } }, 'stride');
    const runtime = b.fresh('aten::conv2d', [withBn, b.weight('w5', [4, 4, 1, 1]), b.none(), stride, b.ints([0, 0]), b.ints([1, 1]), b.int(1)], [1, 4, 8, 8]);
    b.out(runtime);
    const plan = planConvPointwise(b.g, [group('a', conv, act), group('b', conv2, add, act2), group('bn', withBn.node!.inputs[0], withBn),
      group('runtime', runtime)]);
    const aloneId = `aten::conv2d -> %${alone.debugName}`;
    assert.deepEqual(plan.requests.map((r) => [r.id, r.unary?.attr, r.add ? 'add' : '', r.last.kind]),
      [['a', 'relu', '', 'aten::relu'], ['b', 'relu', 'add', 'aten::relu'], [aloneId, undefined, '', 'aten::conv2d']]);
    assert.deepEqual(plan.requests.map((r) => [r.padding, r.stride, r.dilation, r.groups, r.bias ? 'bias' : '']),
      [[[1, 1], [1, 1], [1, 1], 1, ''], [[0, 0], [1, 1], [1, 1], 1, 'bias'], [[0, 0], [1, 1], [1, 1], 1, '']]);
    // 4 input channels: a stem's kernel may take them, but not with a residual add.
    assert.deepEqual(plan.requests.map((r) => r.stem), [true, false, true]);
    assert.deepEqual(refusals(plan), {
      bn: 'its batch norm is not folded',
      runtime: 'padding, stride, dilation or groups is not a constant (or padding is a string)',
    });
  });
});

describe('planPackedLinears', () => {
  it('takes float32 linears over module weights big enough; refuses tiny GEMMs, float16, weights from the inputs, and an addmm with beta != 1', () => {
    const b = new GB();
    const x = b.input('x', [64, 256]);
    const big = b.linear(x, b.weight('w', [256, 256]), b.weight('bias', [256]));
    const tiny = b.linear(b.input('t', [2, 16]), b.weight('wt', [32, 16]));
    const half = b.linear(b.input('h', [64, 256], 'float16'), b.weight('wh', [256, 256], 'float16'));
    const computed = b.linear(x, b.relu(b.input('w_in', [256, 256])));
    const addmm = b.fresh('aten::addmm', [b.weight('ab', [256]), x, b.weight('aw', [256, 256]), b.int(2), b.int(1)], [64, 256]);
    const act = b.fresh('aten::_addmm_activation', [b.weight('gb', [256]), x, b.weight('gw', [256, 256]), b.int(1), b.int(1), b.bool(true)], [64, 256]);
    b.out(big, tiny, half, computed, addmm, act);
    const id = (v: Value) => `${v.node!.kind} -> %${v.debugName}`;
    const plain = planPackedLinears(b.g);
    assert.deepEqual(plain.requests.map((r) => [r.id, r.rows, r.transposed, r.bias ? 'bias' : '']), [[id(big), 64, false, 'bias']]);
    assert.deepEqual(refusals(plain), {
      [id(tiny)]: 'a GEMM of fewer than 65536 multiply-adds: oneDNN\'s per-call setup outweighs it',
      [id(half)]: 'not float32',
      [id(computed)]: 'the weight is computed from the inputs',
      [id(addmm)]: 'an addmm with beta or alpha other than 1',
    });
    const withActs = planPackedLinears(b.g, true);
    const gelu = withActs.requests.find((r) => r.id === id(act));
    assert.deepEqual(gelu && [gelu.transposed, gelu.rows, gelu.postOp], [true, 64, { attr: 'gelu', scalars: [], algorithm: 'none' }]);
  });
});

describe('planConcatenations', () => {
  it('skips projections over row slices of one packed weight and ones reading different inputs; refuses input-dependent weights', () => {
    const b = new GB();
    const x = b.input('x', [2, 8]), y = b.input('y', [2, 8]);
    const packed = b.weight('in_proj', [16, 8]);
    const rows = (i: number) => b.view('aten::slice', [packed, b.int(0), b.int(8 * i), b.int(8 * (i + 1)), b.int(1)], [8, 8], [8, 1]);
    const sliced = [b.linear(x, rows(0)), b.linear(x, rows(1))];
    const apart = [b.linear(x, b.weight('a', [8, 8])), b.linear(y, b.weight('b', [8, 8]))];
    const separate = [b.linear(x, b.weight('q', [8, 8])), b.linear(x, b.weight('k', [8, 8]))];
    const computed = [b.linear(x, b.relu(b.input('wq', [8, 8]))), b.linear(x, b.weight('wk', [8, 8]))];
    b.out(...sliced, ...apart, ...separate, ...computed);
    const pp = (id: string, vs: Value[]) => ({ kind: 'parallel_projection', id, nodes: vs.map((v) => v.node!) as Node[] });
    const plan = planConcatenations(b.g, [pp('sliced', sliced), pp('apart', apart), pp('separate', separate), pp('computed', computed)]);
    assert.deepEqual(plan.requests.map((r) => r.id), ['separate']);
    assert.deepEqual(refusals(plan), { computed: 'the weights depend on the inputs, so they cannot be concatenated once ahead of the runs' });
  });
});
