// canonicalize (lib/transforms/canonicalize.ts) on small hand-built graphs (no libtorch): each
// rewrite it makes, with its count, and the look-alikes it must leave as they are.
import { strict as assert } from 'assert';
import { ListType, TensorType, type Node, type Value } from '../../lib/core/ir';
import { constOf } from '../../lib/core/constants';
import { canonicalize } from '../../lib/transforms/canonicalize';
import { setValueInfo } from '../../lib/core/value-info';
import { GB, contiguous, numel } from '../support/graph-builder';

const kinds = (b: GB) => b.g.nodes().map((n) => n.kind).filter((k) => k !== 'prim::Constant' && k !== 'prim::GetAttr');
/** Identity of graph objects (assert.equal would print the whole graph on a failure). */
const same = (a: unknown, b: unknown, what: string) => assert.ok(a === b, what);
/** The constants of a prim::ListConstruct's elements. */
const listOf = (v: Value) => v.node!.inputs.map((x) => constOf(x));

/** einsum as TorchScript records it: with its schema (the op table has none). */
function einsum(b: GB, equation: string, operands: Value[], shape: number[]): Value {
  const list = b.g.createNode('prim::ListConstruct', operands, [ListType(TensorType)]).output;
  const n = b.g.createNode('aten::einsum', [b.str(equation), list, b.none()], [TensorType], {},
    { schema: 'aten::einsum(str equation, Tensor[] tensors, *, int[]? path=None) -> Tensor' });
  setValueInfo(n.output, { kind: 'Tensor', shape, strides: contiguous(shape), dtype: 'float32', bytes: 4 * numel(shape), storageBytes: 4 * numel(shape) });
  return n.output;
}

/** A cast x.to(dtype) recorded with the output dtype `out`. */
function to(b: GB, x: Value, out: 'float32' | 'float16', copy = false): Value {
  return b.fresh('aten::to', [x, b.int(out === 'float32' ? 6 : 5), b.bool(false), b.bool(copy), b.none()], b.shape(x), out);
}

describe('canonicalize', () => {
  it('aten::to and type_as to the dtype a tensor has are the tensor', () => {
    const b = new GB();
    const x = b.input('x', [2, 3]), y = b.input('y', [2, 3]);
    const r = b.relu(b.unary('aten::type_as', to(b, x, 'float32'), y));
    b.out(r);
    assert.deepEqual(canonicalize(b.g).rewritten, { 'aten::to (same dtype)': 1, 'aten::type_as (same dtype)': 1 });
    same(r.node!.inputs[0], x, 'relu reads x');
    assert.deepEqual(kinds(b), ['aten::relu']);
  });

  it('leaves a cast to another dtype, and a forced copy, alone', () => {
    const b = new GB();
    const x = b.input('x', [2, 3]);
    b.out(to(b, x, 'float16'), to(b, x, 'float32', true));
    const before = b.text();
    assert.deepEqual(canonicalize(b.g).rewritten, {});
    assert.equal(b.text(), before);
  });

  it('dropout with train=False or p=0 is its input; a training dropout stays', () => {
    const b = new GB();
    const x = b.input('x', [2, 3]);
    const kept = b.dropout(b.dropout(b.dropout(x, 0.1, false), 0, true), 0.1, true);
    b.out(kept);
    assert.deepEqual(canonicalize(b.g).rewritten, { 'aten::dropout (eval or p=0)': 2 });
    assert.deepEqual(kinds(b), ['aten::dropout']);
    same(kept.node!.inputs[0], x, 'the training dropout reads x');
    assert.equal(constOf(kept.node!.inputs[1]), 0.1);
  });

  it('a softmax dtype equal to its input\'s becomes None; one that casts stays', () => {
    const b = new GB();
    const x = b.input('x', [2, 3]), h = b.input('h', [2, 3], 'float16');
    const s = b.fresh('aten::softmax', [x, b.int(-1), b.int(6)], [2, 3]);
    const cast = b.fresh('aten::softmax', [h, b.int(-1), b.int(6)], [2, 3]);
    b.out(s, cast);
    assert.deepEqual(canonicalize(b.g).rewritten, { 'aten::softmax (dtype of its input)': 1 });
    assert.equal(constOf(s.node!.inputs[2]), null);
    assert.equal(constOf(cast.node!.inputs[2]), 6);
  });

  it('an in-place scale of private scores on their way to a softmax is the out-of-place op; a CNN\'s `out += identity` stays in place', () => {
    const b = new GB();
    const q = b.input('q', [2, 4, 8]), k = b.input('k', [2, 4, 8]);
    const s = b.matmul(q, b.transpose(k, 1, 2));
    const scaled = b.unary('aten::div_', s, b.float(2));
    const p = b.softmax(scaled);
    const x = b.input('x', [1, 3, 8, 8]);
    const conv = b.conv2d(x, b.weight('w', [3, 3, 3, 3]), null, 1, 1);
    const residual = b.binary('aten::add_', conv, x, b.int(1));
    b.out(p, b.relu(residual));
    assert.deepEqual(canonicalize(b.g).rewritten, { 'aten::div_ (of a value nothing else reads)': 1 });
    const div = p.node!.inputs[0].node!;
    assert.equal(div.kind, 'aten::div');
    same(div.inputs[0], s, 'div reads the scores');
    assert.equal(constOf(div.inputs[1]), 2);
    assert.ok(kinds(b).includes('aten::add_'), 'the residual add_ is untouched');
    assert.ok(!kinds(b).includes('aten::div_'));
  });

  it('an add_ into a slice of the scores is the scores plus the update zero-padded to their size', () => {
    const b = new GB();
    const q = b.input('q', [1, 2, 4, 8]), k = b.input('k', [1, 2, 4, 8]);
    const s = b.matmul(q, b.transpose(k, -2, -1)); // (1, 2, 4, 4)
    const rows = b.view('aten::slice', [s, b.int(2), b.int(1), b.int(4), b.int(1)], [1, 2, 3, 4], [32, 16, 4, 1]);
    const block = b.view('aten::slice', [rows, b.int(3), b.int(1), b.int(4), b.int(1)], [1, 2, 3, 3], [32, 16, 4, 1]);
    const rel = b.input('rel', [1, 2, 3, 3]);
    b.binary('aten::add_', block, rel, b.int(1)); // attn[:, :, 1:, 1:] += rel (its result unread)
    const p = b.softmax(s);
    b.out(p);
    assert.deepEqual(canonicalize(b.g).rewritten, { 'aten::add_ (into a slice, as a full-size add)': 1 });
    const add = p.node!.inputs[0].node!;
    assert.equal(add.kind, 'aten::add');
    same(add.inputs[0], s, 'the scores');
    const pad = add.inputs[1].node!;
    assert.equal(pad.kind, 'aten::constant_pad_nd');
    assert.deepEqual(listOf(pad.inputs[1]), [1, 0, 1, 0, 0, 0, 0, 0], 'pads from the last dim: one row and one column before');
    const expand = pad.inputs[0].node!;
    assert.equal(expand.kind, 'aten::expand');
    same(expand.inputs[0], rel, 'the update');
    assert.deepEqual(listOf(expand.inputs[1]), [1, 2, 3, 3]);
    assert.ok(!kinds(b).includes('aten::slice') && !kinds(b).includes('aten::add_'), 'the slices and the add_ are gone');
  });

  it('einsum that is one batched matmul becomes matmul with k^T as a transpose', () => {
    const b = new GB();
    const q = b.input('q', [2, 3, 4, 8]), k = b.input('k', [2, 3, 5, 8]);
    const e = einsum(b, 'bhid,bhjd->bhij', [q, k], [2, 3, 4, 5]);
    const r = b.relu(e);
    b.out(r);
    assert.deepEqual(canonicalize(b.g).rewritten, { 'aten::einsum (a batched matmul)': 1 });
    const mm = r.node!.inputs[0].node!;
    assert.equal(mm.kind, 'aten::matmul');
    same(mm.inputs[0], q, 'q as it is');
    const t: Node = mm.inputs[1].node!;
    assert.deepEqual([t.kind, constOf(t.inputs[1]), constOf(t.inputs[2])], ['aten::transpose', -2, -1]);
    same(t.inputs[0], k, 'k transposed');
    assert.ok(!kinds(b).includes('aten::einsum'));
  });

  it('einsum that is not one matmul (three operands) is left alone', () => {
    const b = new GB();
    const [x, y, z] = ['x', 'y', 'z'].map((n) => b.input(n, [4, 4]));
    b.out(einsum(b, 'ij,jk,kl->il', [x, y, z], [4, 4]));
    const before = b.text();
    assert.deepEqual(canonicalize(b.g).rewritten, {});
    assert.equal(b.text(), before);
  });
});
