// The graph a shape run executes (lib/torchscript/shape-run.ts), on IR literals: no libtorch.
import { strict as assert } from 'assert';
import { BoolType, ClassType, Graph, IntType, OptionalType, StringType, TensorType, type GraphData } from '../../lib/core/ir';
import { planShapeRun } from '../../lib/torchscript/shape-run';

/** y = relu(x); if c: t = neg(y) else: t = mul(y, y), u = exp(t) (nested in the else branch). */
function ifData(): GraphData {
  return {
    inputs: [{ id: 0, name: 'x', type: TensorType }, { id: 1, name: 'c', type: BoolType }],
    nodes: [
      { kind: 'aten::relu', inputs: [0], outputs: [{ id: 2, name: 'y', type: TensorType }], attrs: {}, blocks: [] },
      { kind: 'prim::If', inputs: [1], outputs: [{ id: 3, name: 't', type: TensorType }], attrs: {}, blocks: [
        { inputs: [], nodes: [
          { kind: 'aten::neg', inputs: [2], outputs: [{ id: 4, name: 'a', type: TensorType }], attrs: {}, blocks: [] },
        ], outputs: [4] },
        { inputs: [], nodes: [
          { kind: 'aten::mul', inputs: [2, 2], outputs: [{ id: 5, name: 'b', type: TensorType }], attrs: {}, blocks: [] },
          { kind: 'prim::If', inputs: [1], outputs: [{ id: 6, name: 'e', type: OptionalType(TensorType) }], attrs: {}, blocks: [
            { inputs: [], nodes: [
              { kind: 'aten::exp', inputs: [5], outputs: [{ id: 7, name: 'u', type: TensorType }], attrs: {}, blocks: [] },
            ], outputs: [7] },
            { inputs: [], nodes: [
              { kind: 'prim::Constant', inputs: [], outputs: [{ id: 8, name: 'none', type: OptionalType(TensorType) }], attrs: {}, blocks: [] },
            ], outputs: [8] },
          ] },
        ], outputs: [5] },
      ] },
      { kind: 'prim::Constant', inputs: [], outputs: [{ id: 9, name: 's', type: StringType }], attrs: { value: { kind: 's', value: 'hi' } }, blocks: [] },
    ],
    outputs: [3],
  };
}

/** for i in range(n): acc = acc * x; k = size(acc, 0) at the top level. */
function loopData(): GraphData {
  return {
    inputs: [{ id: 0, name: 'self', type: ClassType('__torch__.M') }, { id: 1, name: 'x', type: TensorType }, { id: 2, name: 'n', type: IntType }],
    nodes: [
      { kind: 'prim::Constant', inputs: [], outputs: [{ id: 3, name: 'true', type: BoolType }], attrs: { value: { kind: 'i', value: 1n } }, blocks: [] },
      { kind: 'prim::Loop', inputs: [2, 3, 1], outputs: [{ id: 4, name: 'acc', type: TensorType }], attrs: {}, blocks: [
        { inputs: [{ id: 5, name: 'i', type: IntType }, { id: 6, name: 'acc.1', type: TensorType }], nodes: [
          { kind: 'aten::mul', inputs: [6, 1], outputs: [{ id: 7, name: 'acc.2', type: TensorType }], attrs: {}, blocks: [] },
        ], outputs: [3, 7] },
      ] },
    ],
    outputs: [4],
  };
}

describe('torchscript/shape-run: the graph a shape run executes', () => {
  it('a straight-line graph runs node by node on meta and returns every reported value, strings left out', () => {
    const g = new Graph();
    const x = g.addInput(TensorType, 'x');
    const r = g.createNode('aten::relu', [x], [TensorType]);
    const s = g.createNode('prim::Constant', [], [StringType], { value: { kind: 's', value: 'mean' } });
    g.setOutputs([r.outputs[0]]);
    const plan = planShapeRun(g, { onMeta: true });
    assert.equal(plan.executor, 'nodes');
    assert.equal(plan.metaParameters, false);
    assert.deepEqual(plan.reportedIds, [r.outputs[0].id]);
    assert.notEqual(s.outputs[0].id, plan.reportedIds[0]);
    const out = plan.graph.outputs;
    assert.equal(out.length, 1);
    assert.equal(out[0].node!.kind, 'prim::TupleConstruct');
    assert.deepEqual(out[0].type, { kind: 'Tuple', elems: [TensorType] });
    plan.graph.verify();
    assert.equal(g.outputs[0], r.outputs[0], 'the analysed graph is left as it was');
  });

  it('If: tensors of both branches surface, nested ones level by level; the branch not taken returns Uninitialized', () => {
    const g = Graph.fromData(ifData());
    const plan = planShapeRun(g, { onMeta: true });
    assert.equal(plan.executor, 'graph');
    plan.graph.verify();
    // y, t, then the exposed a (then branch), b, the nested If's e, and its u and none (else branch).
    assert.deepEqual([...plan.reportedIds].sort((p, q) => p - q), [2, 3, 4, 5, 6, 7, 8]);
    const outer = plan.graph.nodes().find((n) => n.kind === 'prim::If')!;
    assert.equal(outer.outputs.length, 1 + 1 + 4);
    const [thenB, elseB] = outer.blocks;
    assert.deepEqual(thenB.outputs.slice(1).map((v) => v.node?.kind), ['aten::neg', ...Array(4).fill('prim::Uninitialized')]);
    assert.equal(elseB.outputs[1].node!.kind, 'prim::Uninitialized');
    assert.deepEqual(outer.outputs.slice(1).map((o) => o.type.kind), ['Tensor', 'Tensor', 'Optional', 'Tensor', 'Optional']);
    assert.equal(g.nodes()[1].outputs.length, 1, 'the analysed graph is left as it was');
  });

  it('Loop: an inner tensor is carried out from an uninitialized start; parameters are meta on a whole-graph meta run', () => {
    const g = Graph.fromData(loopData());
    const plan = planShapeRun(g, { onMeta: true });
    assert.equal(plan.executor, 'graph');
    assert.equal(plan.metaParameters, true);
    plan.graph.verify();
    const loop = plan.graph.nodes().find((n) => n.kind === 'prim::Loop')!;
    assert.equal(loop.inputs.length, 4);
    assert.equal(loop.inputs[3].node!.kind, 'prim::Uninitialized');
    assert.equal(loop.blocks[0].inputs.length, 3);
    assert.equal(loop.blocks[0].outputs[2].id, 7);
    assert.deepEqual(plan.reportedIds, [3, 4, 7], 'true, acc, and acc.2 through the extra slot; not the stand-in');
  });

  it('a real run (not on meta) runs the whole graph with the real parameters', () => {
    const plan = planShapeRun(Graph.fromData(loopData()), { onMeta: false });
    assert.deepEqual([plan.executor, plan.metaParameters], ['graph', false]);
  });
});
