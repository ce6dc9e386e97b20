// Planning the concatenation of separate projection weights, and what happens when libtorch
// cannot do it (the groups stay unfused, saying why; preparation goes on).
import { strict as assert } from 'assert';
import { ClassType, Graph, TensorType, type Node, type Value } from '../../lib/core/ir';
import { concatenateWeights, planConcatenations } from '../../lib/fusion/concat-weights';
import type { NativeModule } from '../../lib/torchscript/binding';

/** self.q / self.k weights read by prim::GetAttr, or (inputDependent) weights computed from x. */
function projections(inputDependent = false): { g: Graph; linears: Node[] } {
  const g = new Graph();
  const self = g.addInput(ClassType('__torch__.M'), 'self');
  const x = g.addInput(TensorType, 'x');
  const weight = (name: string): Value => (inputDependent
    ? g.createNode('aten::relu', [x], [TensorType]).output
    : g.createNode('prim::GetAttr', [self], [TensorType], { name: { kind: 's', value: name } }).output);
  const none = g.insertConstant(null);
  const linears = ['q', 'k'].map((n) => g.createNode('aten::linear', [x, weight(n), none], [TensorType]));
  g.setOutputs(linears.map((l) => l.output));
  return { g, linears };
}

describe('concat-weights', () => {
  it('plans module-attribute weights; refuses weights computed from the inputs', () => {
    const a = projections();
    const plan = planConcatenations(a.g, [{ kind: 'parallel_projection', id: 'g1', nodes: a.linears }]);
    assert.deepEqual(plan.requests.map((r) => r.id), ['g1']);
    const b = projections(true);
    const refused = planConcatenations(b.g, [{ kind: 'parallel_projection', id: 'g2', nodes: b.linears }]);
    assert.equal(refused.requests.length, 0);
    assert.match(refused.refused.get('g2')!, /depend on the inputs/);
  });

  it('a libtorch failure leaves the groups unfused with the reason, and does not throw', async () => {
    const a = projections();
    const plan = planConcatenations(a.g, [{ kind: 'parallel_projection', id: 'g1', nodes: a.linears }]);
    const failing = { buildGraph: () => { throw new Error('RuntimeError: no kernel for this device\nmore'); } } as unknown as NativeModule;
    const out = await concatenateWeights(failing, a.g, plan.requests);
    assert.equal(out.get('g1'), 'the weights could not be concatenated: RuntimeError: no kernel for this device');
  });
});
