// Where channels-last values leave their region (lib/fusion/channels-last.ts), on graphs built
// by hand: which readers get a contiguous copy, and which in-place writes are refused. Dunder
// ops such as aten::__getitem__ end in '_' but write nothing.
import { strict as assert } from 'assert';
import { Graph, ListType, TensorType, isInPlaceKind, outOfPlaceKind, type Node, type Value } from '../../lib/core/ir';
import { baseName } from '../../lib/core/ops/classes';
import { restoreLayouts } from '../../lib/fusion/channels-last';
import { GB } from '../support/graph-builder';

/** y = a pointwise convolution of x (where the channels-last region starts); y.chunk(2, 1). */
function chunkedConvolution(): { g: Graph; y: Value; chunk: Node } {
  const g = new Graph();
  const x = g.addInput(TensorType, 'x');
  const y = g.createNode('mkldnn::_convolution_pointwise', [x], [TensorType]).output;
  const chunk = g.createNode('aten::chunk', [y, g.insertConstant(2), g.insertConstant(1)], [ListType(TensorType)]);
  return { g, y, chunk };
}

/** y = a pointwise convolution of x, and `kind` of y (and of the further inputs named in `others`). */
function convolutionThen(kind: string, ...others: string[]): { g: Graph; y: Value; user: Node } {
  const g = new Graph();
  const y = g.createNode('mkldnn::_convolution_pointwise', [g.addInput(TensorType, 'x')], [TensorType]).output;
  const user = g.createNode(kind, [y, ...others.map((name) => g.addInput(TensorType, name))], [TensorType]);
  g.setOutputs([user.output]);
  return { g, y, user };
}

describe('channels-last', () => {
  it('aten::__getitem__ of a chunk of a channels-last value is a read: the chunk reads a contiguous copy', () => {
    const { g, y, chunk } = chunkedConvolution();
    g.setOutputs([g.createNode('aten::__getitem__', [chunk.output, g.insertConstant(0)], [TensorType]).output]);
    assert.equal(restoreLayouts(g, [y]), 1);
    assert.equal(chunk.inputs[0].node?.kind, 'aten::contiguous');
    assert.equal(chunk.inputs[0].node?.inputs[0], y);
  });

  it('an in-place write to an element of a chunk of a channels-last value is refused (a copy would take the write)', () => {
    const byIndex = chunkedConvolution();
    const first = byIndex.g.createNode('aten::__getitem__', [byIndex.chunk.output, byIndex.g.insertConstant(0)], [TensorType]).output;
    byIndex.g.setOutputs([byIndex.g.createNode('aten::relu_', [first], [TensorType]).output]);
    assert.throws(() => restoreLayouts(byIndex.g, [byIndex.y]), /aten::chunk of a channels-last value is written in place later/);
    const unpacked = chunkedConvolution();
    const [a] = unpacked.g.createNode('prim::ListUnpack', [unpacked.chunk.output], [TensorType, TensorType]).outputs;
    unpacked.g.setOutputs([unpacked.g.createNode('aten::relu_', [a], [TensorType]).output]);
    assert.throws(() => restoreLayouts(unpacked.g, [unpacked.y]), /aten::chunk of a channels-last value is written in place later/);
  });

  it('aten::__and__ of a channels-last value is a read; aten::exp_ of one is a refused write', () => {
    const and = convolutionThen('aten::__and__', 'mask');
    assert.equal(restoreLayouts(and.g, [and.y]), 1);
    assert.equal(and.user.inputs[0].node?.kind, 'aten::contiguous');
    const exp = convolutionThen('aten::exp_');
    assert.throws(() => restoreLayouts(exp.g, [exp.y]), /aten::exp_ writes a channels-last value in place/);
  });

  it('in-place kinds by name: aten ops ending in one underscore, not dunders', () => {
    assert.deepEqual(['aten::add_', 'aten::__getitem__', 'aten::__and__', 'aten::__iand__', 'aten::add', 'prim::foo_'].map(isInPlaceKind),
      [true, false, false, false, false, false]);
    assert.deepEqual(['aten::relu_', 'aten::__and__', 'aten::relu'].map(outOfPlaceKind), ['aten::relu', 'aten::__and__', 'aten::relu']);
    assert.deepEqual(['aten::relu_', 'aten::__getitem__'].map(baseName), ['relu', '__getitem__']);
  });
});

describe('restoreLayouts on shaped graphs', () => {
  /** y: a pointwise convolution's output (N, C, H, W), where the channels-last region starts. */
  function start(): { b: GB; y: Value } {
    const b = new GB();
    return { b, y: b.fresh('mkldnn::_convolution_pointwise', [b.input('x', [1, 4, 8, 8])], [1, 4, 8, 8]) };
  }
  const same = (a: unknown, b: unknown, what: string) => assert.ok(a === b, what);
  /** The copy `n` reads at input `i`: aten::contiguous of `of`. */
  const readsCopyOf = (n: Node, i: number, of: Value) => {
    const c = n.inputs[i].node!;
    assert.equal(c.kind, 'aten::contiguous');
    same(c.inputs[0], of, `${n.kind} reads a contiguous copy of the region value`);
  };

  it('activations, broadcast arithmetic and pooling stay channels last; a view and the graph output get one copy each', () => {
    const { b, y } = start();
    const r = b.relu(y);
    const biased = b.add(r, b.input('bias', [4, 1, 1])); // a broadcast operand
    const pooled = b.fresh('aten::max_pool2d', [biased, b.ints([2, 2])], [1, 4, 4, 4]);
    const flat = b.reshape(pooled, [1, 64], 'aten::view');
    b.out(flat, pooled);
    assert.equal(restoreLayouts(b.g, [y]), 2);
    same(r.node!.inputs[0], y, 'relu reads y itself');
    same(biased.node!.inputs[0], r, 'the broadcast add reads relu itself');
    same(pooled.node!.inputs[0], biased, 'pooling reads the add itself');
    readsCopyOf(flat.node!, 0, pooled);
    readsCopyOf(b.g.block.returnNode, 1, pooled);
  });

  it('an add with a full-shape operand from outside the region leaves it (a copy); shape reads do not, stride reads do', () => {
    const { b, y } = start();
    const sum = b.add(y, b.input('other', [1, 4, 8, 8]));
    const size = b.g.createNode('aten::size', [y, b.int(1)], [{ kind: 'Int' }]).output;
    const stride = b.g.createNode('aten::stride', [y, b.int(1)], [{ kind: 'Int' }]).output;
    b.out(sum);
    b.g.registerOutput(size);
    b.g.registerOutput(stride);
    assert.equal(restoreLayouts(b.g, [y]), 2);
    readsCopyOf(sum.node!, 0, y);
    same(size.node!.inputs[0], y, 'aten::size reads y');
    readsCopyOf(stride.node!, 0, y);
  });

  it('a prim::If branch returning a region value returns a copy made in that branch', () => {
    const { b, y } = start();
    const iff = b.ifElse(b.g.addInput({ kind: 'Bool' }, 'c'), () => b.relu(y), () => b.input('z', [1, 4, 8, 8]));
    b.out(iff.output);
    assert.equal(restoreLayouts(b.g, [y]), 1);
    const inThen = iff.then.nodes().filter((n) => n.kind !== 'prim::Constant');
    assert.deepEqual(inThen.map((n) => n.kind), ['aten::relu', 'aten::contiguous']);
    const [relu, copy] = inThen;
    same(copy.inputs[0], relu.output, 'the copy is of the branch\'s relu');
    same(iff.then.outputs[0], copy.output, 'the branch returns the copy');
    same(b.g.outputs[0], iff.output, 'the If itself is not copied again');
  });

  it('refuses a view of a region value that is written in place later', () => {
    const { b, y } = start();
    const t = b.transpose(y, 2, 3);
    b.out(b.unary('aten::mul_', t, b.float(2)));
    const before = b.text();
    assert.throws(() => restoreLayouts(b.g, [y]), /^Error: aten::transpose of a channels-last value is written in place later$/);
    assert.equal(b.text(), before, 'nothing inserted before the refusal');
  });
});
