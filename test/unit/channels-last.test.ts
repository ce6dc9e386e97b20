// Where channels-last values leave their region (lib/fusion/channels-last.ts), on graphs built
// by hand: which readers get a contiguous copy, and which in-place writes are refused. Dunder
// ops such as aten::__getitem__ end in '_' but write nothing.
import { strict as assert } from 'assert';
import { Graph, ListType, TensorType, isInPlaceKind, outOfPlaceKind, type Node, type Value } from '../../lib/core/ir';
import { baseName } from '../../lib/core/ops/classes';
import { restoreLayouts } from '../../lib/fusion/channels-last';

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
