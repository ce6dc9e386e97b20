// The graph as it ran (lib/transforms/taken-branches.ts): what estimates of scripted models follow.
import { strict as assert } from 'assert';
import { BoolType, Graph, IntType, TensorType, type Node } from '../../lib/core/ir';
import { setValueInfo } from '../../lib/core/value-info';
import { inlineTakenBranches } from '../../lib/transforms/taken-branches';

const info = { kind: 'Tensor' as const, shape: [4], strides: [1], dtype: 'float32' as const, bytes: 16, storageBytes: 16 };

/** x -> If(cond) { relu(x) } else { neg(x) } -> output; `recorded` says which branch's tensor has shapes. */
function ifGraph(cond: boolean | 'unknown', recorded: 0 | 1 | null): { g: Graph; branch: Node[] } {
  const g = new Graph();
  const x = g.addInput(TensorType, 'x');
  const c = cond === 'unknown' ? g.addInput(BoolType, 'c') : g.insertConstant(cond);
  const n = g.createNode('prim::If', [c], [TensorType]);
  const branch = ['aten::relu', 'aten::neg'].map((kind, i) => {
    const b = n.addBlock();
    const m = g.create(kind, [x], [TensorType]);
    b.appendNode(m);
    b.registerOutput(m.output);
    if (recorded === i) setValueInfo(m.output, info);
    return m;
  });
  g.registerOutput(n.output);
  return { g, branch };
}

describe('taken branches: the graph as it ran', () => {
  it('a constant condition picks its branch; the original graph is left alone', () => {
    const { g } = ifGraph(false, null);
    const r = inlineTakenBranches(g);
    assert.deepEqual(r.graph.nodes().map((n) => n.kind), ['prim::Constant', 'aten::neg']);
    assert.equal(r.unresolved, 0);
    assert.ok(g.nodes().some((n) => n.kind === 'prim::If'));
  });

  it('an unknown condition: the branch whose tensors have recorded shapes ran', () => {
    const r = inlineTakenBranches(ifGraph('unknown', 0).g);
    assert.deepEqual(r.graph.nodes().map((n) => n.kind), ['aten::relu']);
    assert.equal(r.graph.outputs[0].node!.kind, 'aten::relu');
  });

  it('no evidence either way: the If stays and is counted as unresolved', () => {
    const r = inlineTakenBranches(ifGraph('unknown', null).g);
    assert.deepEqual(r.graph.nodes().map((n) => n.kind), ['prim::If']);
    assert.equal(r.unresolved, 1);
  });

  it('a loop becomes one iteration: iteration 0, carried values from their initial inputs', () => {
    const g = new Graph();
    const x = g.addInput(TensorType, 'x');
    const trips = g.insertConstant(3n);
    const go = g.insertConstant(true);
    const loop = g.createNode('prim::Loop', [trips, go, x], [TensorType]);
    const body = loop.addBlock();
    body.addInput(IntType, 'i');
    const h = body.addInput(TensorType, 'h');
    const t = g.create('aten::tanh', [h], [TensorType]);
    body.appendNode(t);
    body.registerOutput(go);
    body.registerOutput(t.output);
    g.registerOutput(loop.output);
    const r = inlineTakenBranches(g);
    assert.deepEqual(r.graph.nodes().map((n) => n.kind), ['prim::Constant', 'prim::Constant', 'prim::Constant', 'aten::tanh']);
    const tanh = r.graph.nodes()[3];
    assert.equal(tanh.inputs[0], r.graph.inputs[0]);
    assert.equal(r.graph.outputs[0], tanh.output);
  });

  it('a graph without blocks is returned as it is', () => {
    const g = new Graph();
    g.registerOutput(g.createNode('aten::relu', [g.addInput(TensorType, 'x')], [TensorType]).output);
    assert.equal(inlineTakenBranches(g).graph, g);
  });
});

describe('value info and clones', () => {
  it('a shape written into a clone does not reach the graph it was cloned from', () => {
    const g = new Graph();
    const n = g.createNode('aten::relu', [g.addInput(TensorType, 'x')], [TensorType]);
    g.registerOutput(n.output);
    setValueInfo(n.output, info);
    const c = g.clone();
    setValueInfo(c.nodes()[0].output, { ...info, shape: [8], bytes: 32, storageBytes: 32 });
    assert.deepEqual((n.meta.outputInfo as { shape: number[] }[])[0].shape, [4]);
  });
});
