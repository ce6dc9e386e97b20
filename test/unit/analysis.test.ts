// Fusion partitioner, FLOPs and the liveness memory estimate on small hand-built graphs (no libtorch).
import { strict as assert } from 'assert';
import { BoolType, Graph, TensorType, type Value } from '../../lib/core/ir';
import type { DType } from '../../lib/core/ir/serialized';
import { setValueInfo, tensorInfo } from '../../lib/core/value-info';
import {
  analyzeGraph, canView, countFlops, estimateMemory, mergeWouldCycle, partitionGraph, sdpaFlops, withMeasuredPeaks,
  type FusionGroup, type Partition,
} from '../../lib/analysis';
import { GB, contiguous, numel } from '../support/graph-builder';

const kinds = (g: FusionGroup) => g.nodes.map((n) => n.kind.replace('aten::', ''));
const groupsOf = (p: Partition, kind?: string) => p.groups.filter((g) => !kind || g.kind === kind);
const roleOf = (g: FusionGroup, role: string) => g.nodes.filter((_, i) => g.roles[i] === role);

/** q, k, v in (B, H, L, hd) from x (B, L, E) through three projections. */
function projections(b: GB, x: Value, H: number, opts: { kvFrom?: Value; packed?: boolean; kDtype?: DType } = {}) {
  const [B, L, E] = b.shape(x);
  const hd = E / H;
  let wq: Value, wk: Value, wv: Value;
  if (opts.packed) {
    const w = b.weight('in_proj_weight', [3 * E, E]);
    const slice = (i: number) => b.view('aten::slice', [w, b.int(0), b.int(i * E), b.int((i + 1) * E), b.int(1)], [E, E], [E, 1]);
    [wq, wk, wv] = [slice(0), slice(1), slice(2)];
  } else {
    [wq, wk, wv] = [b.weight('q_proj.weight', [E, E]), b.weight('k_proj.weight', [E, E], opts.kDtype), b.weight('v_proj.weight', [E, E])];
  }
  const src = opts.kvFrom ?? x;
  const S = b.shape(src)[1];
  const split = (t: Value, N: number) => b.transpose(b.reshape(t, [B, N, H, hd], 'aten::view'), 1, 2);
  const q = b.linear(x, wq), k = b.linear(src, wk), v = b.linear(src, wv);
  return { q: split(q, L), k: split(k, S), v: split(v, S), lin: { q: q.node!, k: k.node!, v: v.node! } };
}

interface CoreOpts {
  preScale?: boolean;
  post?: 'mul' | 'div' | null;
  mask?: 'add' | 'masked_fill' | 'where' | null;
  dropout?: boolean;
  merge?: 'transpose_reshape' | 'permute_view_contiguous';
}

/** The explicit attention core on (B, H, L, hd) inputs, merged back to (B, L, E). */
function core(b: GB, q: Value, k: Value, v: Value, o: CoreOpts = {}, mask?: Value): Value {
  const [B, H, L, hd] = b.shape(q);
  const S = b.shape(k)[2];
  if (o.preScale) q = b.mulScalar(q, 1 / Math.sqrt(hd));
  let s = b.matmul(q, b.transpose(k, -2, -1));
  if (o.post === 'mul') s = b.mulScalar(s, 1 / Math.sqrt(hd));
  if (o.post === 'div') s = b.divScalar(s, Math.sqrt(hd));
  if (o.mask === 'add') s = b.add(s, mask ?? b.input('mask', [B, 1, 1, S]));
  if (o.mask === 'masked_fill') s = b.unary('aten::masked_fill', s, mask ?? b.input('pad', [B, 1, 1, S], 'bool'), b.float(-Infinity));
  if (o.mask === 'where') {
    const m = mask ?? b.input('keep', [B, 1, 1, S], 'bool');
    s = b.fresh('aten::where', [m, s, b.float(-Infinity)], b.shape(s));
  }
  let p = b.softmax(s, -1);
  if (o.dropout) p = b.dropout(p, 0.1, true);
  const c = b.matmul(p, v);
  if (o.merge === 'permute_view_contiguous') return b.reshape(b.contiguous(b.permute(c, [0, 2, 1, 3])), [B, L, H * hd], 'aten::view');
  return b.reshape(b.transpose(c, 1, 2), [B, L, H * hd]);
}

// ---------------------------------------------------------------------------------------------

describe('analysis: partition rules', () => {
  it('conv -> batch_norm -> relu is one conv_bn_act group; conv -> relu too', () => {
    const b = new GB();
    const x = b.input('x', [1, 3, 8, 8]);
    const y = b.relu(b.batchNorm(b.conv2d(x, b.weight('w', [4, 3, 3, 3]), null, 1, 1), 4));
    const z = b.relu(b.conv2d(y, b.weight('w2', [4, 4, 1, 1]), null, 1, 0));
    b.out(z);
    const p = partitionGraph(b.g);
    const gs = groupsOf(p, 'conv_bn_act');
    assert.equal(gs.length, 2);
    assert.deepEqual(kinds(gs[0]), ['conv2d', 'batch_norm', 'relu']);
    assert.deepEqual(gs[0].roles, ['conv', 'bn', 'act']);
    assert.deepEqual(kinds(gs[1]), ['conv2d', 'relu']);
    assert.equal(y.node!.meta.group, gs[0].id);
    assert.equal(y.node!.meta.groupKind, 'conv_bn_act');
  });

  it('linear -> gelu -> dropout is one group, seeing through views; a linear read twice is left alone', () => {
    const b = new GB();
    const x = b.input('x', [2, 5, 8]);
    const h = b.linear(x, b.weight('w1', [16, 8]), b.weight('b1', [16]));
    const y = b.dropout(b.gelu(b.reshape(h, [10, 16], 'aten::view')), 0.1, false);
    const h2 = b.linear(y, b.weight('w2', [16, 16]));
    const z = b.add(b.relu(h2), h2); // h2 is read twice: linear_act must not take relu
    b.out(z);
    const p = partitionGraph(b.g);
    const la = groupsOf(p, 'linear_act');
    assert.equal(la.length, 1);
    assert.deepEqual(kinds(la[0]), ['linear', 'view', 'gelu', 'dropout']);
    assert.deepEqual(la[0].roles, ['linear', 'through', 'act', 'dropout']);
    assert.equal(p.groupOf(h2.node!)?.kind === 'linear_act', false);
    assert.equal(la[0].outputs.length, 1);
    assert.equal(la[0].outputs[0], y);
  });

  it('an intermediate that is also a graph output is not fused away', () => {
    const b = new GB();
    const x = b.input('x', [2, 8]);
    const h = b.linear(x, b.weight('w', [8, 8]));
    const y = b.gelu(h);
    b.out(y, h);
    const p = partitionGraph(b.g);
    assert.equal(p.groups.length, 0);
  });

  it('layernorm -> linear is norm_linear only when the norm output has no other reader', () => {
    const b = new GB();
    const x = b.input('x', [2, 4, 8]);
    const n1 = b.layerNorm(x, b.weight('ln.w', [8]), b.weight('ln.b', [8]));
    const y = b.linear(n1, b.weight('w', [8, 8]));
    const n2 = b.layerNorm(y, null, null);
    const z = b.add(b.linear(n2, b.weight('w2', [8, 8])), n2);
    b.out(z);
    const p = partitionGraph(b.g);
    const nl = groupsOf(p, 'norm_linear');
    assert.equal(nl.length, 1);
    assert.deepEqual(kinds(nl[0]), ['layer_norm', 'linear']);
    assert.equal(p.groupOf(n2.node!)?.rule === 'layernorm_linear', false);
  });

  it('elementwise chains group while each result has one reader', () => {
    const b = new GB();
    const x = b.input('x', [4, 4]);
    const a = b.unary('aten::exp', b.unary('aten::neg', b.mulScalar(x, 2)));
    const c = b.binary('aten::mul', a, b.unary('aten::sqrt', a)); // a has two readers: the chain stops at a
    b.out(c);
    const p = partitionGraph(b.g);
    const ew = groupsOf(p, 'elementwise');
    assert.deepEqual(ew.map(kinds), [['mul', 'neg', 'exp'], ['sqrt', 'mul']]);
    assert.deepEqual(ew[1].roles, ['op', 'op']);
  });

  it('residual add joins the group of the branch it closes, not a broadcast add', () => {
    const b = new GB();
    const x = b.input('x', [2, 4, 8]);
    const h = b.dropout(b.linear(x, b.weight('w', [8, 8]), b.weight('b', [8])), 0.1, false);
    const y = b.add(h, x);
    const z = b.add(b.linear(y, b.weight('w2', [8, 8])), b.weight('bias_like', [8]));
    b.out(z);
    const p = partitionGraph(b.g);
    const g = p.groupOf(y.node!)!;
    assert.equal(g.kind, 'linear_act');
    assert.deepEqual(g.rules, ['linear_act', 'residual_add']);
    assert.deepEqual(kinds(g), ['linear', 'dropout', 'add']);
    assert.equal(p.groupOf(z.node!)?.rule === 'residual_add', false);
  });

  for (const [name, o] of [
    ['matmul -> div -> softmax -> dropout -> matmul', { post: 'div', dropout: true }],
    ['mul(q, 1/s) before matmul, no mask', { preScale: true }],
    ['mul by 1/s after matmul, additive mask', { post: 'mul', mask: 'add' }],
    ['masked_fill mask', { preScale: true, mask: 'masked_fill' }],
    ['where mask, permute + contiguous + view merge', { preScale: true, mask: 'where', merge: 'permute_view_contiguous' }],
  ] as [string, CoreOpts][]) {
    it(`attention core as ONE group: ${name}`, () => {
      const b = new GB();
      const x = b.input('x', [2, 6, 16]);
      const { q, k, v } = projections(b, x, 4);
      const out = core(b, q, k, v, o);
      b.out(b.linear(out, b.weight('out_proj.weight', [16, 16])));
      const p = partitionGraph(b.g);
      assert.equal(p.attentionCores.length, 1);
      const g = p.attentionCores[0];
      assert.equal(g.rule, 'attention_core');
      assert.equal(roleOf(g, 'scores').length, 1);
      assert.equal(roleOf(g, 'softmax').length, 1);
      assert.equal(roleOf(g, 'context').length, 1);
      assert.equal(roleOf(g, 'dropout').length, o.dropout ? 1 : 0);
      assert.equal(roleOf(g, 'scale').length, o.preScale || o.post ? 1 : 0);
      assert.equal(roleOf(g, 'mask').length, o.mask ? 1 : 0);
      assert.ok(roleOf(g, 'merge').length >= 2, 'head merge absorbed');
      assert.equal(g.outputs.length, 1);
      assert.deepEqual(tensorInfo(g.outputs[0])!.shape, [2, 6, 16]);
      assert.deepEqual(p.notFused, []);
    });
  }

  it('an attention core inside a prim::If branch (a scripted fast-path check) is one group of that block; the other branch is partitioned on its own', () => {
    const b = new GB();
    const x = b.input('x', [2, 6, 16]);
    const cond = b.g.addInput(BoolType, 'fast');
    const iff = b.g.createNode('prim::If', [cond], [TensorType]);
    const [then, other] = [iff.addBlock(), iff.addBlock()];
    const inThen = b.g.withInsertPoint(then, () => {
      const { q, k, v } = projections(b, x, 4);
      return core(b, q, k, v, { post: 'div' });
    });
    then.registerOutput(inThen);
    const inOther = b.g.withInsertPoint(other, () => b.relu(b.linear(x, b.weight('w', [16, 16]), b.weight('bias', [16]))));
    other.registerOutput(inOther);
    setValueInfo(iff.output, tensorInfo(inThen)!);
    b.out(b.add(iff.output, x));
    const p = partitionGraph(b.g);
    assert.equal(p.attentionCores.length, 1);
    assert.ok(p.attentionCores[0].nodes.every((n) => n.owningBlock === then), 'the core stays in its block');
    assert.equal(p.attentionCores[0].outputs[0], inThen, 'what the block returns leaves the group');
    const act = groupsOf(p, 'linear_act');
    assert.equal(act.length, 1);
    assert.ok(act[0].nodes.every((n) => n.owningBlock === other));
    assert.equal(new Set(p.groups.map((g) => g.id)).size, p.groups.length, 'ids are unique across blocks');
    assert.equal(partitionGraph(b.g, { nestedBlocks: false }).groups.length, 0, 'the top block alone has nothing to fuse');
  });

  it('attention core over bmm and views ((B*H, L, hd) layout), additive mask between views', () => {
    const b = new GB();
    const [B, H, L, hd] = [2, 3, 5, 4];
    const q = b.input('q', [B * H, L, hd]), k = b.input('k', [B * H, L, hd]), v = b.input('v', [B * H, L, hd]);
    let s = b.matmul(b.mulScalar(q, 0.5), b.transpose(k, 1, 2), 'aten::bmm');
    s = b.reshape(s, [B, H, L, L], 'aten::view');
    s = b.add(s, b.input('mask', [B, 1, 1, L]));
    s = b.reshape(s, [B * H, L, L], 'aten::view');
    const c = b.matmul(b.softmax(s, 2), v, 'aten::bmm');
    b.out(c);
    const p = partitionGraph(b.g);
    assert.equal(p.attentionCores.length, 1);
    assert.deepEqual(kinds(p.attentionCores[0]), ['mul', 'bmm', 'view', 'add', 'view', 'softmax', 'bmm']);
  });

  it('a causal mask built from the scores with new_ones/triu does not block the core (metadata read)', () => {
    const b = new GB();
    const q = b.input('q', [1, 2, 4, 8]), k = b.input('k', [1, 2, 4, 8]), v = b.input('v', [1, 2, 4, 8]);
    const s = b.matmul(b.mulScalar(q, 0.35), b.transpose(k, -2, -1));
    const ones = b.fresh('aten::new_ones', [s, b.ints([4, 4]), b.int(11), b.none(), b.none(), b.none()], [4, 4], 'bool');
    const causal = b.fresh('aten::triu', [ones, b.int(1)], [4, 4], 'bool');
    const m = b.unary('aten::masked_fill', s, causal, b.float(-Infinity));
    b.out(b.matmul(b.softmax(m), v));
    const p = partitionGraph(b.g);
    assert.equal(p.attentionCores.length, 1);
    assert.equal(p.groupOf(ones.node!), undefined);
    assert.equal(p.groupOf(m.node!), p.attentionCores[0]);
  });

  it('an opaque attention op is an attention group (with the head merge after it)', () => {
    const b = new GB();
    const q = b.input('q', [1, 2, 4, 8]), k = b.input('k', [1, 2, 4, 8]), v = b.input('v', [1, 2, 4, 8]);
    const o = b.reshape(b.transpose(b.sdpa(q, k, v), 1, 2), [1, 4, 16]);
    b.out(o);
    const p = partitionGraph(b.g);
    assert.equal(p.attentionCores.length, 1);
    assert.equal(p.attentionCores[0].rule, 'attention_op');
    assert.deepEqual(kinds(p.attentionCores[0]), ['scaled_dot_product_attention', 'transpose', 'reshape']);
  });

  it('Q/K/V projections sharing the input: one qkv_projection group (packed weight slices too)', () => {
    for (const packed of [false, true]) {
      const b = new GB();
      const x = b.input('x', [2, 6, 16]);
      const { q, k, v, lin } = projections(b, x, 4, { packed });
      b.out(core(b, q, k, v, { preScale: true }));
      const p = partitionGraph(b.g);
      const qkv = groupsOf(p, 'qkv_projection');
      assert.equal(qkv.length, 1, `packed=${packed}`);
      assert.deepEqual(new Set(qkv[0].nodes), new Set([lin.q, lin.k, lin.v]));
      assert.equal(p.projections.length, 1);
      assert.equal(p.projections[0].status, 'fused');
      assert.equal(p.projections[0].group, qkv[0]);
    }
  });

  it('cross-attention: K/V sharing the memory are one kv_projection group; q stays alone', () => {
    const b = new GB();
    const x = b.input('x', [2, 6, 16]);
    const mem = b.input('memory', [2, 9, 16]);
    const { q, k, v, lin } = projections(b, x, 4, { kvFrom: mem });
    b.out(core(b, q, k, v, { preScale: true }));
    const p = partitionGraph(b.g);
    const kv = groupsOf(p, 'kv_projection');
    assert.equal(kv.length, 1);
    assert.deepEqual(new Set(kv[0].nodes), new Set([lin.k, lin.v]));
    assert.equal(p.groupOf(lin.q)?.rule === 'parallel_projection', false);
    assert.equal(p.projections[0].status, 'kv_fused');
    assert.equal(p.attentionCores.length, 1);
    assert.deepEqual(p.notFused, []);
  });

  it('projections of the same tensor through identical view chains share the input; different tensors do not', () => {
    const b = new GB();
    const x = b.input('x', [6, 2, 16]); // (L, B, E)
    const xq = b.transpose(x, 0, 1), xk = b.transpose(x, 0, 1), xv = b.transpose(x, 0, 1);
    const ws = ['q', 'k', 'v'].map((n) => b.weight(`${n}.weight`, [16, 16]));
    const ls = [xq, xk, xv].map((t, i) => b.linear(t, ws[i]));
    b.out(...ls);
    const p = partitionGraph(b.g);
    assert.equal(groupsOf(p, 'parallel_linear').length, 1);
    assert.equal(groupsOf(p, 'parallel_linear')[0].nodes.length, 3);
  });

  it('the head merge spelled permute/contiguous/view and transpose/reshape is absorbed alike', () => {
    for (const merge of ['transpose_reshape', 'permute_view_contiguous'] as const) {
      const b = new GB();
      const x = b.input('x', [2, 6, 16]);
      const { q, k, v } = projections(b, x, 4);
      const o = core(b, q, k, v, { preScale: true, merge });
      b.out(b.linear(o, b.weight('o.weight', [16, 16])));
      const p = partitionGraph(b.g);
      assert.equal(p.attentionCores[0].outputs[0], o, merge);
    }
  });
});

describe('analysis: acyclicity', () => {
  it('mergeWouldCycle finds the path that leaves and re-enters, also through a contracted group', () => {
    const b = new GB();
    const x = b.input('x', [4, 8]);
    const a = b.mulScalar(x, 2);
    const l = b.linear(a, b.weight('w', [8, 8]));
    const c = b.add(a, l);
    const r = b.relu(x);
    const d = b.add(r, c);
    b.out(d);
    assert.equal(mergeWouldCycle(b.g, [a.node!, c.node!]), l.node!);
    assert.equal(mergeWouldCycle(b.g, [a.node!, l.node!, c.node!]), null);
    assert.equal(mergeWouldCycle(b.g, [r.node!, d.node!]), null);
    // With {l, r} contracted into one group, a -> {l, r} -> d and r -> d: merging a with d cycles through the group.
    assert.notEqual(mergeWouldCycle(b.g, [a.node!, d.node!], [[l.node!, r.node!]]), null);
    assert.equal(mergeWouldCycle(b.g, [a.node!, d.node!]), c.node!);
  });

  it('a Q/K/V set whose v_proj bias depends on q_proj is refused, and explained', () => {
    const b = new GB();
    const x = b.input('x', [2, 6, 16]);
    const H = 4, hd = 4;
    const q = b.linear(x, b.weight('q.weight', [16, 16]));
    const k = b.linear(x, b.weight('k.weight', [16, 16]));
    const vb = b.unary('aten::sum', q, b.ints([0, 1]), b.bool(false), b.none()); // bias computed from q
    tensorInfoSet(vb, [16]);
    const v = b.linear(x, b.weight('v.weight', [16, 16]), vb);
    const split = (t: Value) => b.transpose(b.reshape(t, [2, 6, H, hd], 'aten::view'), 1, 2);
    b.out(core(b, split(q), split(k), split(v), { preScale: true }));
    const p = partitionGraph(b.g);
    assert.equal(groupsOf(p, 'qkv_projection').length, 0);
    assert.equal(p.refused.length >= 1, true);
    assert.equal(p.refused[0].rule, 'parallel_projection');
    assert.equal(p.refused[0].culprit, vb.node!);
    assert.match(p.refused[0].message, /cycle/);
    const why = p.notFused.find((w) => w.subject === 'projections')!;
    assert.ok(why);
    assert.equal(why.condition, 'acyclic');
    assert.equal(why.rule, 'parallel_projection');
  });

  function tensorInfoSet(v: Value, shape: number[]) {
    setValueInfo(v, { kind: 'Tensor', shape, strides: contiguous(shape), dtype: 'float32', bytes: numel(shape) * 4, storageBytes: numel(shape) * 4 });
  }
});

describe('analysis: why not fused', () => {
  it('attention weights that are returned keep the core unfused: softmax output is materialised', () => {
    const b = new GB();
    const x = b.input('x', [2, 6, 16]);
    const { q, k, v } = projections(b, x, 4);
    const s = b.matmul(b.mulScalar(q, 0.5), b.transpose(k, -2, -1));
    const w = b.softmax(s);
    const o = b.matmul(w, v);
    const avg = b.unary('aten::mean', w, b.ints([1]), b.bool(false), b.none());
    tensorInfoSet2(avg, [2, 6, 6]);
    b.out(o, avg);
    const p = partitionGraph(b.g);
    assert.equal(groupsOf(p, 'attention').length, 0);
    const why = p.notFused.filter((x) => x.subject === 'attention_core');
    assert.equal(why.length, 1);
    assert.equal(why[0].rule, 'attention_core');
    assert.equal(why[0].condition, 'consumers');
    assert.equal(why[0].nodes[0], w.node!);
    assert.match(why[0].message, /read by 2 nodes \(aten::matmul, aten::mean\).*materialised/);
  });

  it('softmax over another dim is explained by its condition', () => {
    const b = new GB();
    const q = b.input('q', [1, 2, 4, 8]), k = b.input('k', [1, 2, 4, 8]), v = b.input('v', [1, 2, 4, 8]);
    const s = b.matmul(q, b.transpose(k, -2, -1));
    b.out(b.matmul(b.softmax(s, 1), v));
    const p = partitionGraph(b.g);
    assert.equal(p.attentionCores.length, 0);
    assert.equal(p.notFused.length, 1);
    assert.equal(p.notFused[0].condition, 'softmaxLastDim');
    assert.match(p.notFused[0].message, /softmax over dim 1, not the last dim of a rank-4 tensor/);
  });

  it('scores from a weight product are not attention; the message names the weight', () => {
    const b = new GB();
    const x = b.input('x', [4, 8]);
    const s = b.matmul(x, b.transpose(b.weight('w', [8, 8]), 0, 1));
    b.out(b.matmul(b.softmax(s), b.input('v', [8, 3])));
    const p = partitionGraph(b.g);
    assert.equal(p.notFused.length, 1);
    assert.equal(p.notFused[0].condition, 'op');
    assert.match(p.notFused[0].message, /expected adjust \(scale\|mask\) or scores \(matmul\) before aten::softmax, found aten::matmul/);
  });

  it('projections reading different tensors: nearest rule and the failed condition', () => {
    const b = new GB();
    const x = b.input('x', [2, 6, 16]);
    const y = b.input('y', [2, 6, 16]);
    const z = b.input('z', [2, 6, 16]);
    const split = (t: Value) => b.transpose(b.reshape(t, [2, 6, 4, 4], 'aten::view'), 1, 2);
    const q = b.linear(x, b.weight('q.w', [16, 16])), k = b.linear(y, b.weight('k.w', [16, 16])), v = b.linear(z, b.weight('v.w', [16, 16]));
    b.out(core(b, split(q), split(k), split(v), { preScale: true }));
    const p = partitionGraph(b.g);
    assert.equal(p.projections[0].status, 'not_fused');
    const why = p.projections[0].why!;
    assert.equal(why.rule, 'parallel_projection');
    assert.equal(why.condition, 'sameInput');
    assert.match(why.message, /q_proj reads %x but k_proj reads %y/);
    assert.ok(p.notFused.includes(why));
  });

  it('K/V with weights of different dtypes: compatibleWeights', () => {
    const b = new GB();
    const x = b.input('x', [2, 6, 16]);
    const mem = b.input('memory', [2, 9, 16]);
    const { q, k, v } = projections(b, x, 4, { kvFrom: mem, kDtype: 'float16' });
    b.out(core(b, q, k, v, { preScale: true }));
    const p = partitionGraph(b.g);
    const why = p.projections[0].why!;
    assert.equal(p.projections[0].status, 'not_fused');
    assert.equal(why.condition, 'compatibleWeights');
    assert.match(why.message, /k_proj is linear float16 .* but v_proj is linear float32/);
  });

  function tensorInfoSet2(v: Value, shape: number[]) {
    setValueInfo(v, { kind: 'Tensor', shape, strides: contiguous(shape), dtype: 'float32', bytes: numel(shape) * 4, storageBytes: numel(shape) * 4 });
  }
});

describe('analysis: FLOPs', () => {
  const flopsOf = (b: GB, v: Value) => countFlops(b.g).perNode[b.g.allNodes().indexOf(v.node!)];

  it('linear on N-D inputs: 2*prod(batch)*in*out plus the bias', () => {
    const b = new GB();
    const x = b.input('x', [2, 5, 8]);
    const y = b.linear(x, b.weight('w', [16, 8]), b.weight('b', [16]));
    const z = b.linear(x, b.weight('w2', [16, 8]));
    b.out(y, z);
    assert.equal(flopsOf(b, y), 2 * 10 * 8 * 16 + 10 * 16);
    assert.equal(flopsOf(b, z), 2 * 10 * 8 * 16);
    assert.equal(y.node!.meta.flops, 2720);
  });

  it('matmul with batch broadcasting, bmm, and matmul folding a weight', () => {
    const b = new GB();
    const a1 = b.matmul(b.input('a', [3, 1, 4, 5]), b.input('b', [2, 5, 6]));
    const a2 = b.matmul(b.input('c', [4, 3, 5]), b.input('d', [4, 5, 2]), 'aten::bmm');
    const a3 = b.matmul(b.input('e', [7, 5]), b.input('f', [5]));
    b.fresh('aten::matmul', [], []); // ignored: a node with no inputs and no shape info must not break counting
    b.out(a1, a2, a3);
    assert.deepEqual(b.shape(a1), [3, 2, 4, 6]);
    assert.equal(flopsOf(b, a1), 2 * 3 * 2 * 4 * 5 * 6);
    assert.equal(flopsOf(b, a2), 2 * 4 * 3 * 5 * 2);
  });

  it('conv2d: 2 * out elements * Cin/groups * kernel area, plus bias; grouped conv', () => {
    const b = new GB();
    const x = b.input('x', [1, 4, 8, 8]);
    const y = b.conv2d(x, b.weight('w', [6, 4, 3, 3]), b.weight('b', [6]), 1, 1);
    const z = b.conv2d(x, b.weight('dw', [4, 1, 3, 3]), null, 2, 1, 4);
    b.out(y, z);
    assert.deepEqual(b.shape(y), [1, 6, 8, 8]);
    assert.equal(flopsOf(b, y), 2 * 384 * 36 + 384);
    assert.deepEqual(b.shape(z), [1, 4, 4, 4]);
    assert.equal(flopsOf(b, z), 2 * 64 * 9);
  });

  it('attention: the explicit core and the SDPA op count the same (scale on the scores)', () => {
    const [B, H, L, S, E] = [2, 3, 4, 5, 8];
    const hand = 2 * B * H * L * S * E /* QK */ + B * H * L * S /* scale */ + 5 * B * H * L * S /* softmax */ + 2 * B * H * L * S * E /* PV */;
    assert.equal(hand, 4560);
    assert.equal(sdpaFlops({ batch: B * H, L, S, E, Ev: E }), hand);

    const b1 = new GB();
    const q = b1.input('q', [B, H, L, E]), k = b1.input('k', [B, H, S, E]), v = b1.input('v', [B, H, S, E]);
    const c = b1.matmul(b1.softmax(b1.divScalar(b1.matmul(q, b1.transpose(k, -2, -1)), Math.sqrt(E))), v);
    b1.out(c);
    assert.equal(countFlops(b1.g).total, hand);

    const b2 = new GB();
    const o = b2.sdpa(b2.input('q', [B, H, L, E]), b2.input('k', [B, H, S, E]), b2.input('v', [B, H, S, E]));
    b2.out(o);
    const r = countFlops(b2.g);
    assert.equal(r.total, hand);
    assert.equal(r.byCategory.attention, hand);
  });

  it('_native_multi_head_attention: projections, core and output projection', () => {
    const b = new GB();
    const x = b.input('x', [1, 4, 8]);
    const n = b.g.createNode('aten::_native_multi_head_attention', [x, x, x, b.int(8), b.int(2), b.weight('w', [24, 8]), b.weight('bias', [24]),
      b.weight('ow', [8, 8]), b.weight('ob', [8]), b.none(), b.bool(false), b.bool(true), b.none()], [TensorType, TensorType]);
    setValueInfo(n.outputs[0], { kind: 'Tensor', shape: [1, 4, 8], strides: [32, 8, 1], dtype: 'float32', bytes: 128, storageBytes: 128 });
    b.out(n.outputs[0]);
    const proj = 2 * 4 * 8 * 8 + 4 * 8;
    const core = sdpaFlops({ batch: 2, L: 4, S: 4, E: 4, Ev: 4 });
    assert.equal(countFlops(b.g).total, 4 * proj + core);
  });

  it('_transformer_encoder_layer_fwd: attention, two norms, the FFN, its activation, two residual adds', () => {
    const b = new GB();
    const [B, L, E, H, F] = [3, 6, 30, 2, 48];
    const x = b.input('x', [B, L, E]);
    const w = (n: string, s: number[]) => b.weight(n, s);
    const n = b.g.createNode('aten::_transformer_encoder_layer_fwd', [x, b.int(E), b.int(H), w('qkv', [3 * E, E]), w('qkv_b', [3 * E]),
      w('o', [E, E]), w('o_b', [E]), b.bool(false), b.bool(false), b.float(1e-5), w('n1', [E]), w('n1b', [E]), w('n2', [E]), w('n2b', [E]),
      w('f1', [F, E]), w('f1b', [F]), w('f2', [E, F]), w('f2b', [E]), b.none(), b.none()], [TensorType]);
    setValueInfo(n.output, { kind: 'Tensor', shape: [B, L, E], strides: [L * E, E, 1], dtype: 'float32', bytes: B * L * E * 4, storageBytes: B * L * E * 4 });
    b.out(n.output);
    const rows = B * L, N = rows * E;
    const hand = (2 * rows * E * 3 * E + rows * 3 * E) + sdpaFlops({ batch: B * H, L, S: L, E: E / H, Ev: E / H }) + (2 * rows * E * E + N)
      + 2 * 8 * N /* norms with affine */ + (2 * rows * E * F + rows * F) + (2 * rows * F * E + N) + rows * F /* relu */ + 2 * N;
    assert.equal(hand, 261684);
    assert.equal(countFlops(b.g).total, hand);
    // Its CPU path: during the attention, max(6A, 3A + scores, 5A); A = B*L*E*4.
    const A = B * L * E * 4;
    assert.equal(estimateMemory(b.g).peakBytes, Math.max(6 * A, 3 * A + B * H * L * L * 4, 5 * A, 3 * A + B * L * F * 4));
  });

  it('norms, softmax, activations; views and eval dropout cost nothing; shape arithmetic is not counted', () => {
    const b = new GB();
    const x = b.input('x', [2, 4, 8]);
    const ln = b.layerNorm(x, b.weight('w', [8]), b.weight('b', [8]));
    const g = b.gelu(ln);
    const d = b.dropout(b.transpose(g, 0, 1), 0.1, false);
    const sm = b.softmax(d);
    const sz = b.g.createNode('aten::size', [x, b.int(0)], [{ kind: 'Int' }]).output;
    const t = b.g.createNode('prim::NumToTensor', [sz], [TensorType]).output;
    const t2 = b.g.createNode('aten::mul', [t, b.float(2)], [TensorType]).output;
    setValueInfo(t2, { kind: 'Tensor', shape: [], strides: [], dtype: 'int64', bytes: 8, storageBytes: 8 });
    b.out(sm, t2);
    const r = countFlops(b.g);
    assert.equal(r.byCategory.norm, 6 * 64 + 64 + 64);
    assert.equal(r.byCategory.elementwise, 5 * 64);
    assert.equal(r.byCategory.softmax, 5 * 64);
    assert.equal(r.total, 512 + 320 + 320);
    assert.deepEqual(r.noFormula, {});
    assert.equal(t2.node!.meta.flops, undefined);
  });
});

describe('analysis: memory estimate', () => {
  const MB = (n: number) => n * 4; // float32 elements -> bytes

  it('frees each value after its last reader; the timeline shows live bytes after each node', () => {
    const b = new GB();
    const x = b.input('x', [10, 10]);
    const a = b.relu(x);          // 400 live
    const c = b.unary('aten::neg', a); // 800 during, a freed after -> 400
    const d = b.unary('aten::exp', c); // 800 during, c freed -> 400
    b.out(d);
    const m = estimateMemory(b.g);
    assert.equal(m.peakBytes, MB(200));
    const steps = m.timeline.filter((e) => e.nodes[0].kind.startsWith('aten::'));
    assert.deepEqual(steps.map((e) => [e.nodes[0].kind, e.peakBytes, e.liveBytes]), [
      ['aten::relu', 400, 400], ['aten::neg', 800, 400], ['aten::exp', 800, 400],
    ]);
    assert.equal(m.outputBytes, 400);
    assert.equal(m.inputBytes, 400);
    assert.equal(estimateMemory(b.g, { includeInputs: true }).peakBytes, 1200);
  });

  it('views share storage: storage is counted once and lives until the last view is read', () => {
    const b = new GB();
    const x = b.input('x', [4, 8]);
    const h = b.linear(x, b.weight('w', [16, 8]));           // 256 B
    const t = b.transpose(b.reshape(h, [4, 4, 4], 'aten::view'), 0, 1); // views of h
    const d = b.dropout(t, 0.1, false);                       // eval dropout: a view
    const c = b.contiguous(d);                                // a copy (non-contiguous): 256 B
    const r = b.relu(c);                                      // 256 B
    b.out(r);
    const m = estimateMemory(b.g);
    // contiguous runs while h is live: 512; relu while c is live (h freed): 512.
    assert.equal(m.peakBytes, 512);
    const step = m.timeline.find((e) => e.nodes[0] === c.node)!;
    assert.equal(step.allocatedBytes, 256);
    assert.equal(step.freedBytes, 256); // h's storage, through all its views
    assert.equal(m.timeline.find((e) => e.nodes[0] === t.node)!.allocatedBytes, 0);
  });

  it('weights are separate: counted once per storage, slices included', () => {
    const b = new GB();
    const x = b.input('x', [2, 8]);
    const w = b.weight('in_proj_weight', [24, 8]);
    const s0 = b.view('aten::slice', [w, b.int(0), b.int(0), b.int(8), b.int(1)], [8, 8], [8, 1]);
    const s1 = b.view('aten::slice', [w, b.int(0), b.int(8), b.int(16), b.int(1)], [8, 8], [8, 1]);
    b.out(b.add(b.linear(x, s0), b.linear(x, s1)));
    const m = estimateMemory(b.g);
    assert.equal(m.weightBytes, 24 * 8 * 4);
    assert.equal(m.peakBytes, 3 * 64);
  });

  it('layer_norm statistics and matmul operand copies are transient workspace', () => {
    const b = new GB();
    const x = b.input('x', [2, 3, 8]);
    const ln = b.layerNorm(x, null, null);
    // k^T from a (B, H, S, hd) tensor with B > 1: matmul must copy it to (B*H, hd, S).
    const k = b.transpose(b.reshape(b.input('k', [2, 3, 4, 8]), [2, 3, 4, 8], 'aten::view'), 1, 2); // (2, 4, 3, 8) non-contiguous
    const kt = b.transpose(k, -2, -1); // (2, 4, 8, 3)
    const s = b.matmul(b.input('q', [2, 4, 5, 8]), kt);
    b.out(ln, s);
    const m = estimateMemory(b.g);
    const lnStep = m.timeline.find((e) => e.nodes[0] === ln.node)!;
    assert.equal(lnStep.workspaceBytes, 2 * 6 * 4);
    const mmStep = m.timeline.find((e) => e.nodes[0] === s.node)!;
    assert.equal(mmStep.workspaceBytes, 2 * 4 * 8 * 3 * 4);
  });

  it('fused attention holds O(L*hd), not O(L*S): the score matrices disappear from the peak', () => {
    const b = new GB();
    const [B, H, L, hd] = [1, 12, 256, 64];
    const x = b.input('x', [B, L, H * hd]);
    const { q, k, v } = projections(b, x, H);
    b.out(core(b, q, k, v, { preScale: true, dropout: true }));
    const p = partitionGraph(b.g);
    assert.equal(p.attentionCores.length, 1);
    assert.equal(groupsOf(p, 'qkv_projection').length, 1);
    const unfused = estimateMemory(b.g);
    const fused = estimateMemory(b.g, { partition: p });
    const scores = B * H * L * L * 4;
    const act = B * L * H * hd * 4;
    // Unfused: at the (training) dropout, the probabilities, the dropout output and v are live.
    assert.equal(unfused.peakBytes, 2 * scores + act);
    // Fused: packed q/k/v (3 act) + output (act) + log-sum-exp (B*H*L floats).
    assert.equal(fused.peakBytes, 4 * act + B * H * L * 4);
    const step = fused.timeline.find((e) => e.group === p.attentionCores[0].id)!;
    assert.equal(step.workspaceBytes, B * H * L * 4);
    assert.equal(estimateMemory(b.g, { partition: p, sdpaKernel: 'math' }).peakBytes, 4 * act + 2 * scores);
    assert.equal(estimateMemory(b.g, { partition: p, sdpaWorkspace: () => 1000 }).peakBytes, 4 * act + B * H * L * 4 + 1000);
  });

  it('a fused parallel projection writes one packed tensor that lives until q, k and v are all read', () => {
    const b = new GB();
    const x = b.input('x', [1, 4, 8]);
    const ws = [0, 1, 2].map((i) => b.weight(`w${i}`, [8, 8]));
    const [q, k, v] = ws.map((w) => b.linear(x, w)); // 128 B each
    const c = b.matmul(q, b.transpose(k, 1, 2)); // 64 B; no rule fuses these
    const d = b.matmul(c, v); // 128 B
    b.out(d);
    const p = partitionGraph(b.g);
    assert.deepEqual(p.groups.map((g) => g.rule), ['parallel_projection']);
    const unfused = estimateMemory(b.g);
    const fused = estimateMemory(b.g, { partition: p });
    // Unfused: q, k, v, then c (448); q and k are freed before d.
    assert.equal(unfused.peakBytes, 448);
    const step = fused.timeline.find((e) => e.group !== undefined)!;
    assert.equal(step.allocatedBytes, 384);
    // Packed: q and k cannot be freed before v is read, so d runs with all of q/k/v, c and d live.
    assert.equal(fused.peakBytes, 384 + 64 + 128);
  });

  it('_native_multi_head_attention on CPU materialises its scores (bmm + softmax), and the weights when returned', () => {
    for (const needWeights of [false, true]) {
      const b = new GB();
      const [B, L, E, H] = [2, 64, 16, 4];
      const x = b.input('x', [B, L, E]);
      const n = b.g.createNode('aten::_native_multi_head_attention', [x, x, x, b.int(E), b.int(H), b.weight('w', [3 * E, E]), b.weight('bias', [3 * E]),
        b.weight('ow', [E, E]), b.weight('ob', [E]), b.none(), b.bool(needWeights), b.bool(true), b.none()], [TensorType, TensorType]);
      const A = B * L * E * 4, scores = B * H * L * L * 4, avg = B * L * L * 4;
      setValueInfo(n.outputs[0], { kind: 'Tensor', shape: [B, L, E], strides: [L * E, E, 1], dtype: 'float32', bytes: A, storageBytes: A });
      if (needWeights) setValueInfo(n.outputs[1], { kind: 'Tensor', shape: [B, L, L], strides: [L * L, L, 1], dtype: 'float32', bytes: avg, storageBytes: avg });
      else setValueInfo(n.outputs[1], { kind: 'Other', repr: 'Tensor' }); // an undefined tensor: not counted
      b.out(...n.outputs);
      const m = estimateMemory(b.g);
      assert.equal(m.unknownTensors, 0);
      // q/k/v (3A) with the scores; with weights returned also the head-merge copy and the output.
      assert.equal(m.peakBytes, needWeights ? 5 * A + scores : 3 * A + scores);
      assert.equal(m.outputBytes, needWeights ? A + avg : A);
    }
  });

  it('alignBytes rounds every allocation (CUDA caching allocator: 512)', () => {
    const b = new GB();
    const x = b.input('x', [10]);
    b.out(b.unary('aten::neg', b.relu(x)));
    assert.equal(estimateMemory(b.g).peakBytes, 80);
    assert.equal(estimateMemory(b.g, { alignBytes: 512 }).peakBytes, 1024);
  });

  it('analyzeGraph: summary numbers, group bytes, and the measured-peak hook', () => {
    const b = new GB();
    const [B, H, L, hd] = [1, 2, 8, 4];
    const x = b.input('x', [B, L, H * hd]);
    const n = b.layerNorm(x, b.weight('ln.w', [8]), b.weight('ln.b', [8]));
    const { q, k, v } = projections(b, n, H);
    const o = core(b, q, k, v, { preScale: true });
    b.out(b.add(b.dropout(b.linear(o, b.weight('out.w', [8, 8]), b.weight('out.b', [8])), 0.1, false), x));
    const a = analyzeGraph(b.g);
    const s = a.summary;
    assert.deepEqual(s.attentionCores, { explicit: 1, opaque: 0 });
    assert.deepEqual(s.projections, { qkvFused: 1, kvFused: 0, packed: 0, notFused: 0 });
    assert.equal(s.fusionGroups, 3); // ln + qkv, core, out_proj + dropout + residual
    assert.equal(s.kernels.fused, 3);
    assert.equal(s.flops, countFlops(b.g).total);
    assert.ok(s.memoryReduction > 0 && s.memoryReduction < 1);
    assert.equal(s.memoryReduction, (s.peakBytes.unfused - s.peakBytes.fused) / s.peakBytes.unfused);
    const coreCost = a.groups.find((g) => g.kind === 'attention')!;
    // Internal: scaled q, scores, probabilities, context (the merge copy is the group's output).
    const actB = B * L * H * hd * 4, scoresB = B * H * L * L * 4;
    assert.equal(coreCost.bytesInternal, actB + scoresB + scoresB + actB);
    assert.equal(coreCost.bytesRead, 3 * actB);
    assert.equal(coreCost.bytesWritten, actB);
    assert.equal(coreCost.arithmeticIntensity, coreCost.flops / (4 * actB));
    const cmp = withMeasuredPeaks(a, { unfused: s.peakBytes.unfused * 1.05, fused: s.peakBytes.fused });
    assert.ok(Math.abs(cmp.unfused!.relError + 0.05 / 1.05) < 1e-12);
    assert.equal(cmp.fused!.relError, 0);
    assert.equal(a.summary.measured, cmp);
  });
});

describe('analysis: helpers', () => {
  it('canView decides reshape-as-view like libtorch', () => {
    assert.equal(canView([2, 3, 4], [12, 4, 1], [6, 4]), true);
    assert.equal(canView([2, 3, 4], [12, 4, 1], [24]), true);
    assert.equal(canView([3, 2], [1, 3], [6]), false); // transposed
    assert.equal(canView([4, 2, 3], [3, 12, 1], [4, 6]), false);
    assert.equal(canView([4, 2, 3], [3, 12, 1], [4, 2, 3, 1]), true);
    assert.equal(canView([197, 1, 768], [768, 151296, 1], [197, 768]), true); // size-1 dims have free strides
    assert.equal(canView([2, 12, 64, 197], [151296, 64, 1, 768], [24, 64, 197]), false);
    assert.equal(canView([1, 12, 64, 197], [151296, 64, 1, 768], [12, 64, 197]), true);
  });
});

describe('analyzeGraph on a graph without shapes', () => {
  it('is ERR_INVALID_ARG saying to propagate shapes, not 0 FLOPs', () => {
    const g = new Graph();
    const x = g.addInput(TensorType, 'x');
    g.registerOutput(g.createNode('aten::relu', [x], [TensorType]).outputs[0]);
    assert.throws(() => analyzeGraph(g), (e: Error & { code?: string }) => e.code === 'ERR_INVALID_ARG' && /no shapes; run propagateShapes/.test(e.message));
  });
});
