import { strict as assert } from 'assert';
import {
  BoolType, ClassType, FloatType, Graph, GraphVerifyError, IntType, ListType, Node, NoneType, OptionalType,
  TensorPlaceholder, TensorType, TupleType, isSubtypeOf, isTensorPlaceholder, tensorDtype, tensorRank, tensorShape,
  typeEquals, typeToString, unshapedType,
  type GraphData, type TensorHandleLike, type TypeData, type Value,
} from '../../lib/core/ir';
import { clearValueInfo, setValueInfo, valueInfo, type ValueInfo } from '../../lib/core/value-info';

// ---- fixtures: graphs written as the native exporter would hand them over ----------------------

const T = (shape?: (number | null)[]): TypeData => (shape ? { kind: 'Tensor', dtype: 'float32', shape } : { kind: 'Tensor' });
const BIG = 2n ** 53n + 1n; // not representable as a JS number
const fcScope = [
  { path: '', cls: '__torch__.Net', method: 'forward' },
  { path: 'fc', cls: '__torch__.torch.nn.modules.linear.Linear', method: 'forward' },
];

/** self.fc(x).relu() + BIG, with an attribute tensor constant and a -inf float constant. */
function linearReluData(tensor: TensorHandleLike = { dtype: 'float32', shape: [3] }): GraphData {
  return {
    inputs: [{ id: 0, name: 'self', type: ClassType('__torch__.Net') }, { id: 1, name: 'x', type: T([2, 4]) }],
    nodes: [
      { kind: 'prim::GetAttr', inputs: [0], outputs: [{ id: 2, name: 'weight', type: T([3, 4]) }],
        attrs: { name: { kind: 's', value: 'weight' } }, blocks: [], scope: fcScope },
      { kind: 'prim::GetAttr', inputs: [0], outputs: [{ id: 3, name: 'bias', type: T([3]) }],
        attrs: { name: { kind: 's', value: 'bias' } }, blocks: [], scope: fcScope },
      { kind: 'aten::linear', schema: 'aten::linear(Tensor input, Tensor weight, Tensor? bias=None) -> Tensor',
        inputs: [1, 2, 3], outputs: [{ id: 4, name: 'y', type: T([2, 3]) }], attrs: {}, blocks: [], scope: fcScope, source: 'model.py:12' },
      { kind: 'aten::relu', inputs: [4], outputs: [{ id: 5, name: 'z', type: T([2, 3]) }], attrs: {}, blocks: [] },
      { kind: 'prim::Constant', inputs: [], outputs: [{ id: 6, name: 'big', type: IntType }], attrs: { value: { kind: 'i', value: BIG } }, blocks: [] },
      { kind: 'prim::Constant', inputs: [], outputs: [{ id: 7, type: IntType }], attrs: { value: { kind: 'i', value: 1n } }, blocks: [] },
      { kind: 'aten::add', schema: 'aten::add.Scalar(Tensor self, Scalar other, Scalar alpha=1) -> Tensor',
        inputs: [5, 6, 7], outputs: [{ id: 8, name: 'out', type: T([2, 3]) }], attrs: {}, blocks: [] },
      { kind: 'prim::Constant', inputs: [], outputs: [{ id: 9, name: 'ninf', type: FloatType }], attrs: { value: { kind: 'f', value: -Infinity } }, blocks: [] },
      { kind: 'prim::Constant', inputs: [], outputs: [{ id: 10, name: 'shift', type: T() }], attrs: { value: { kind: 't', value: tensor } }, blocks: [] },
      { kind: 'prim::Constant', inputs: [], outputs: [{ id: 11, name: 'dims', type: ListType(IntType) }],
        attrs: { value: { kind: 'is', value: [-1n, BIG] } }, blocks: [] },
    ],
    outputs: [8],
  };
}

/** z = relu(x) if c else neg(x); w = z * x */
function ifData(): GraphData {
  return {
    inputs: [{ id: 0, name: 'x', type: T() }, { id: 1, name: 'c', type: BoolType }],
    nodes: [
      { kind: 'prim::If', inputs: [1], outputs: [{ id: 2, name: 'z', type: T() }], attrs: {}, blocks: [
        { inputs: [], nodes: [{ kind: 'aten::relu', inputs: [0], outputs: [{ id: 3, name: 'a', type: T() }], attrs: {}, blocks: [] }], outputs: [3] },
        { inputs: [], nodes: [{ kind: 'aten::neg', inputs: [0], outputs: [{ id: 4, name: 'b', type: T() }], attrs: {}, blocks: [] }], outputs: [4] },
      ] },
      { kind: 'aten::mul', inputs: [2, 0], outputs: [{ id: 5, name: 'w', type: T() }], attrs: {}, blocks: [] },
    ],
    outputs: [5],
  };
}

/** acc = x; for i in range(n): acc = acc * x (carried), plus the iteration count as a second carried int. */
function loopData(): GraphData {
  return {
    inputs: [{ id: 0, name: 'x', type: T() }, { id: 1, name: 'n', type: IntType }],
    nodes: [
      { kind: 'prim::Constant', inputs: [], outputs: [{ id: 2, name: 'true', type: BoolType }], attrs: { value: { kind: 'i', value: 1n } }, blocks: [] },
      { kind: 'prim::Constant', inputs: [], outputs: [{ id: 3, name: 'zero', type: IntType }], attrs: { value: { kind: 'i', value: 0n } }, blocks: [] },
      { kind: 'prim::Loop', inputs: [1, 2, 0, 3], outputs: [{ id: 4, name: 'acc', type: T() }, { id: 5, name: 'count', type: IntType }], attrs: {}, blocks: [
        { inputs: [{ id: 6, name: 'i', type: IntType }, { id: 7, name: 'acc.1', type: T() }, { id: 8, name: 'count.1', type: IntType }],
          nodes: [
            { kind: 'aten::mul', inputs: [7, 0], outputs: [{ id: 9, name: 'acc.2', type: T() }], attrs: {}, blocks: [] },
            { kind: 'aten::add', inputs: [8, 6], outputs: [{ id: 10, name: 'count.2', type: IntType }], attrs: {}, blocks: [] },
          ],
          outputs: [2, 9, 10] },
      ] },
    ],
    outputs: [4, 5],
  };
}

const byKind = (g: Graph, kind: string, nth = 0): Node => {
  const n = g.allNodes().filter((m) => m.kind === kind)[nth];
  assert.ok(n, `no ${kind} #${nth}`);
  return n;
};
const valueNamed = (g: Graph, name: string): Value => {
  const v = g.allValues().find((x) => x.name === name);
  assert.ok(v, `no value %${name}`);
  return v;
};
const useList = (v: Value) => v.uses.map((u) => `${u.node.kind}:${u.index}`);

/** assert.throws for a GraphVerifyError that names `node` (null: graph inputs/outputs) and matches `re`. */
function assertVerifyError(g: Graph, node: Node | null, re: RegExp): void {
  assert.throws(() => g.verify(), (e: unknown) => {
    assert.ok(e instanceof GraphVerifyError, `not a GraphVerifyError: ${String(e)}`);
    assert.match(e.message, re);
    assert.equal(e.node, node, `names ${e.node?.describe()} instead of ${node?.describe()}`);
    if (node) assert.ok(e.message.includes(node.describe()), `message does not name the node: ${e.message}`);
    return true;
  });
}

// ---- types ----------------------------------------------------------------------------------

describe('ir/types', () => {
  it('prints TorchScript annotations', () => {
    assert.equal(typeToString(T([2, null])), 'Tensor');
    assert.equal(typeToString(T([2, null]), { tensorDetails: true }), 'Tensor(float32, [2, ?])');
    assert.equal(typeToString({ kind: 'Tensor', device: 'cuda:0', requiresGrad: true }, { tensorDetails: true }), 'Tensor(cuda:0, requires_grad)');
    assert.equal(typeToString(OptionalType(ListType(IntType))), 'Optional[List[int]]');
    assert.equal(typeToString(TupleType([TensorType, { kind: 'String' }, NoneType])), 'Tuple[Tensor, str, NoneType]');
    assert.equal(typeToString(TupleType([])), 'Tuple[()]');
    assert.equal(typeToString({ kind: 'Dict', key: { kind: 'String' }, value: FloatType }), 'Dict[str, float]');
    assert.equal(typeToString({ kind: 'Device' }), 'Device');
    assert.equal(typeToString({ kind: 'Number' }), 'Scalar');
    assert.equal(typeToString(ClassType('__torch__.torch.nn.modules.linear.___torch_mangle_3.Linear')), 'Linear');
    assert.equal(typeToString(ClassType('__torch__.a.B'), { fullClassNames: true }), '__torch__.a.B');
    assert.equal(typeToString({ kind: 'Other', repr: 'Union[int, str]' }), 'Union[int, str]');
  });

  it('answers subtyping like TorchScript', () => {
    assert.ok(isSubtypeOf(T([2, 3]), TensorType), 'known shape fits unknown');
    assert.ok(!isSubtypeOf(TensorType, T([2, 3])), 'unknown shape does not prove a known one');
    assert.ok(isSubtypeOf(T([2, 3]), { kind: 'Tensor', shape: [2, null] }), 'symbolic dim matches');
    assert.ok(!isSubtypeOf(T([2, 3]), { kind: 'Tensor', shape: [2, 4] }));
    assert.ok(!isSubtypeOf(T([2, 3]), { kind: 'Tensor', dtype: 'int64' }));
    assert.ok(isSubtypeOf(NoneType, OptionalType(TensorType)));
    assert.ok(isSubtypeOf(T([1]), OptionalType(TensorType)));
    assert.ok(!isSubtypeOf(OptionalType(TensorType), TensorType));
    assert.ok(isSubtypeOf(IntType, { kind: 'Number' }) && isSubtypeOf(FloatType, { kind: 'Number' }));
    assert.ok(!isSubtypeOf(BoolType, IntType) && !isSubtypeOf(IntType, FloatType));
    assert.ok(isSubtypeOf(TupleType([T([1]), NoneType]), TupleType([TensorType, OptionalType(IntType)])));
    assert.ok(!isSubtypeOf(TupleType([TensorType]), TupleType([TensorType, TensorType])));
    assert.ok(isSubtypeOf(ClassType('A'), ClassType('A')) && !isSubtypeOf(ClassType('A'), ClassType('B')));
    assert.ok(isSubtypeOf(IntType, { kind: 'Other', repr: 'Any' }));
    // loose: only provable mismatches fail
    assert.ok(isSubtypeOf(TensorType, T([2, 3]), { loose: true }));
    assert.ok(isSubtypeOf(ClassType('A'), ClassType('B'), { loose: true }));
    assert.ok(!isSubtypeOf(IntType, TensorType, { loose: true }));
  });

  it('compares structurally and exposes tensor details', () => {
    assert.ok(typeEquals(ListType(T([2])), ListType(T([2]))));
    assert.ok(!typeEquals(T([2]), T([3])) && !typeEquals(T([2]), TensorType) && !typeEquals(IntType, FloatType));
    assert.deepEqual(unshapedType(OptionalType(T([2]))), OptionalType(TensorType));
    assert.deepEqual(tensorShape(T([2, null])), [2, null]);
    assert.equal(tensorDtype(T([2])), 'float32');
    assert.equal(tensorRank(T([2, 3])), 2);
    assert.equal(tensorShape(IntType), undefined);
  });
});

// ---- graph ----------------------------------------------------------------------------------

describe('ir/graph', () => {
  describe('building from data', () => {
    it('wires values, uses and users', () => {
      const g = Graph.fromData(linearReluData());
      g.verify();
      const [self, x] = g.inputs;
      assert.equal(self.node, null);
      assert.equal(self.owningBlock, g.block);
      assert.deepEqual(useList(self), ['prim::GetAttr:0', 'prim::GetAttr:0']);
      assert.deepEqual(self.users().map((n) => n.attr('name')), ['weight', 'bias']);
      const linear = byKind(g, 'aten::linear');
      assert.deepEqual(linear.inputs.map((v) => v.debugName), ['x', 'weight', 'bias']);
      assert.equal(valueNamed(g, 'y').node, linear);
      assert.deepEqual(useList(x), ['aten::linear:0']);
      // graph outputs are uses by the top block's return node
      assert.deepEqual(useList(valueNamed(g, 'out')), ['prim::Return:0']);
      assert.equal(linear.modulePath, 'fc');
      assert.equal(g.nodes().length, 10);
      assert.equal(g.freshValueId(), 12);
    });

    it('reads constants, with int64 beyond 2^53 as BigInt', () => {
      const g = Graph.fromData(linearReluData());
      const big = valueNamed(g, 'big').node!;
      assert.ok(big.isConstant);
      assert.equal(big.constantValue(), BIG);
      assert.equal(typeof big.constantValue(), 'bigint');
      assert.equal(valueNamed(g, 'ninf').node!.constantValue(), -Infinity);
      assert.deepEqual(valueNamed(g, 'dims').node!.constantValue(), [-1n, BIG]);
      assert.equal(Graph.fromData(loopData()).allNodes()[0].constantValue(), true); // bool stored as i=1
      const g2 = new Graph();
      assert.equal(g2.insertConstant(null).node!.constantValue(), null);
      assert.equal(g2.insertConstant(false).node!.constantValue(), false);
      assert.equal(g2.insertConstant('mean').node!.constantValue(), 'mean');
      assert.equal(g2.insertConstant(0.5).node!.constantValue(), 0.5);
      assert.deepEqual(g2.insertConstant([1n, 2n]).type, ListType(IntType));
      assert.throws(() => byKind(g, 'aten::relu').constantValue(), /not a prim::Constant/);
    });

    it('rejects unknown and duplicate ids in data', () => {
      const d = ifData();
      d.outputs = [99];
      assert.throws(() => Graph.fromData(d), /unknown value id 99/);
      const d2 = ifData();
      d2.nodes[1].outputs[0].id = 0;
      assert.throws(() => Graph.fromData(d2), /duplicate value id 0/);
    });

    it('lists nodes recursively in execution order', () => {
      const g = Graph.fromData(ifData());
      assert.deepEqual(g.nodes().map((n) => n.kind), ['prim::If', 'aten::mul']);
      assert.deepEqual(g.allNodes().map((n) => n.kind), ['prim::If', 'aten::relu', 'aten::neg', 'aten::mul']);
      assert.equal(byKind(g, 'aten::neg').location(), '#0.b1.#0');
      assert.equal(byKind(g, 'aten::neg').owningBlock!.owningNode, byKind(g, 'prim::If'));
    });
  });

  describe('mutation', () => {
    it('creates nodes at the insertion point and restores it', () => {
      const g = Graph.fromData(linearReluData());
      const relu = byKind(g, 'aten::relu');
      const y = valueNamed(g, 'y');
      const sig = g.withInsertPoint(relu, () => g.createNode('aten::sigmoid', [y], [T([2, 3])], {}, { outputNames: ['s'] }));
      assert.equal(sig.next, relu);
      assert.equal(sig.output.id, 12, 'fresh id past the exported ones');
      assert.deepEqual(useList(y), ['aten::relu:0', 'aten::sigmoid:0']);
      const last = g.createNode('aten::detach', [y], [T()]);
      assert.equal(g.block.lastNode, last, 'insertion point restored to the end of the top block');
      const g2 = Graph.fromData(ifData());
      const [b0] = byKind(g2, 'prim::If').blocks;
      g2.setInsertPoint(b0);
      const inner = g2.createNode('aten::abs', [g2.inputs[0]], [T()]);
      assert.equal(b0.lastNode, inner);
      assert.deepEqual(b0.nodes().map((n) => n.kind), ['aten::relu', 'aten::abs']);
      g.verify();
      g2.verify();
    });

    it('moves nodes with insertBefore/insertAfter', () => {
      const g = Graph.fromData(linearReluData());
      const [getW, getB] = g.nodes();
      getW.insertAfter(getB);
      assert.deepEqual(g.nodes().slice(0, 2), [getB, getW]);
      assert.equal(getW.index(), 1);
      g.verify();
      const ninf = valueNamed(g, 'ninf').node!;
      ninf.insertBefore(g.nodes()[0]);
      assert.equal(g.block.firstNode, ninf);
      assert.equal(g.nodes().length, 10, 'moved, not copied');
      assert.ok(ninf.isBefore(getB) && !getB.isBefore(ninf));
      g.verify();
      // into a block and back out again
      const gi = Graph.fromData(ifData());
      const ifn = byKind(gi, 'prim::If');
      const mul = byKind(gi, 'aten::mul');
      const relu = byKind(gi, 'aten::relu');
      relu.insertBefore(ifn);
      assert.equal(relu.owningBlock, gi.block);
      assert.ok(ifn.blocks[0].isEmpty);
      gi.verify(); // %a is still visible to block 0's output
      assert.throws(() => ifn.insertBefore(byKind(gi, 'aten::neg')), /into its own block/);
      mul.insertAfter(relu);
      assertVerifyError(gi, mul, /input 0 %z is used before its definition by prim::If/);
    });

    it('replaceAllUsesWith moves every use, graph outputs included', () => {
      const g = Graph.fromData(linearReluData());
      const y = valueNamed(g, 'y');
      const z = valueNamed(g, 'z');
      const out = valueNamed(g, 'out');
      const clamp = g.createNode('aten::clamp_min', [out], [T([2, 3])]);
      out.replaceAllUsesWith(z);
      assert.deepEqual(g.outputs, [z]);
      assert.equal(clamp.inputs[0], z);
      assert.deepEqual(useList(z).sort(), ['aten::add:0', 'aten::clamp_min:0', 'prim::Return:0']);
      assert.deepEqual(out.uses, []);
      y.replaceAllUsesWith(g.inputs[1]);
      assert.equal(byKind(g, 'aten::relu').inputs[0], g.inputs[1]);
      assert.equal(y.hasUses(), false);
      g.verify();
      assert.throws(() => y.replaceAllUsesWith(Graph.fromData(ifData()).inputs[0]), /another graph/);
    });

    it('replaceInput and removeInput keep use indices right', () => {
      const g = Graph.fromData(linearReluData());
      const add = byKind(g, 'aten::add');
      const [z, big, one] = add.inputs;
      add.replaceInput(1, one);
      assert.deepEqual(useList(big), []);
      assert.deepEqual(one.uses.map((u) => u.index), [2, 1]);
      add.removeInput(0);
      assert.deepEqual(add.inputs, [one, one]);
      assert.deepEqual(one.uses.map((u) => u.index).sort(), [0, 1]);
      assert.deepEqual(useList(z), []);
      g.verify();
    });

    it('erase refuses while outputs are used, then drops input uses', () => {
      const g = Graph.fromData(linearReluData());
      const linear = byKind(g, 'aten::linear');
      assert.throws(() => linear.erase(), (e: Error) => /cannot destroy aten::linear #2.*%y is used by aten::relu/.test(e.message));
      assert.equal(linear.owningBlock, g.block, 'still in place after the refusal');
      const relu = byKind(g, 'aten::relu');
      relu.output.replaceAllUsesWith(valueNamed(g, 'y'));
      relu.erase();
      assert.ok(relu.isDestroyed);
      assert.deepEqual(useList(valueNamed(g, 'y')), ['aten::add:0']);
      assert.equal(g.nodes().includes(relu), false);
      g.verify();
      assert.throws(() => g.block.returnNode.destroy(), /return node/);
    });

    it('destroying a node with blocks drops the uses made inside them', () => {
      const g = Graph.fromData(ifData());
      const ifn = byKind(g, 'prim::If');
      const mul = byKind(g, 'aten::mul');
      g.setOutputs([g.inputs[0]]);
      mul.destroy();
      ifn.destroy();
      assert.deepEqual(g.inputs[0].uses.map((u) => u.node.kind), ['prim::Return']);
      assert.deepEqual(g.inputs[1].uses, []);
      assert.equal(g.allNodes().length, 0);
      g.verify();
    });
  });

  describe('eliminateDeadCode', () => {
    it('removes dead pure nodes, recursively, and keeps effects', () => {
      const g = Graph.fromData(linearReluData());
      const [self, x] = g.inputs;
      const z = valueNamed(g, 'z');
      // dead pure chain
      const t = g.createNode('aten::tanh', [x], [T()]).output;
      g.createNode('aten::exp', [t], [T()]);
      // effects: in-place op, mutable schema, SetAttr, and a warning without outputs
      const inplace = g.createNode('aten::relu_', [z], [T()]);
      const list = g.createNode('prim::ListConstruct', [], [ListType(TensorType)]).output;
      const append = g.createNode('aten::append', [list, x], [ListType(TensorType)], {}, { schema: 'aten::append.t(t[](a!) self, t(c -> *) el) -> t[](a!)' });
      const setattr = g.createNode('prim::SetAttr', [self, x], [], { name: { kind: 's', value: 'cache' } });
      // dunder ops are not in-place
      g.createNode('aten::__and__', [g.insertConstant(true), g.insertConstant(false)], [BoolType]);
      // dead If with pure blocks: goes with its contents
      const c = g.insertConstant(true);
      const deadIf = g.createNode('prim::If', [c], [T()]);
      for (const b of [deadIf.addBlock(), deadIf.addBlock()]) {
        g.withInsertPoint(b, () => b.registerOutput(g.createNode('aten::neg', [x], [T()]).output));
      }
      // dead If whose block raises: stays, but its dead inner node goes
      const raisingIf = g.createNode('prim::If', [c], []);
      const r0 = raisingIf.addBlock();
      raisingIf.addBlock();
      g.withInsertPoint(r0, () => {
        g.createNode('aten::sin', [x], [T()]);
        g.createNode('prim::RaiseException', [g.insertConstant('boom')], []);
      });
      g.verify();

      const before = g.allNodes().length;
      const removed = g.eliminateDeadCode();
      const kinds = g.allNodes().map((n) => n.kind);
      assert.equal(before - g.allNodes().length, removed);
      // tanh, exp, 2 bool consts, __and__, 2 neg + If, sin, dead ninf/shift/dims constants
      assert.equal(removed, 12);
      for (const k of ['aten::tanh', 'aten::exp', 'aten::__and__', 'aten::neg', 'aten::sin']) assert.ok(!kinds.includes(k), k);
      for (const n of [inplace, append, setattr, raisingIf]) assert.ok(!n.isDestroyed && n.owningBlock, n.kind);
      assert.ok(kinds.includes('prim::ListConstruct'), 'kept as input of the effectful append');
      assert.deepEqual(r0.nodes().map((n) => n.kind), ['prim::Constant', 'prim::RaiseException']);
      assert.equal(c.node!.isDestroyed, false, 'condition of the surviving If');
      assert.equal(valueNamed(g, 'big').node!.isDestroyed, false, 'live constant');
      g.verify();
      assert.equal(g.eliminateDeadCode(), 0, 'idempotent');
    });

    it('keeps loops whose results are used, and removes unused ones', () => {
      const g = Graph.fromData(loopData());
      assert.equal(g.eliminateDeadCode(), 0);
      g.setOutputs([g.inputs[0]]);
      assert.equal(g.eliminateDeadCode(), 5); // 2 constants, loop, mul, add
      assert.equal(g.allNodes().length, 0);
      g.verify();
    });
  });

  describe('verify', () => {
    it('accepts the fixtures and sound type refinements', () => {
      for (const d of [linearReluData(), ifData(), loopData()]) Graph.fromData(d).verify();
      // Optional[Tensor] from None | Tensor branches; node output refined beyond a branch type; Other types
      const d = ifData();
      d.nodes[0].outputs[0].type = OptionalType(TensorType);
      d.nodes[0].blocks[1].nodes[0].outputs[0].type = NoneType;
      d.nodes[0].blocks[0].nodes[0].outputs[0].type = T([2, 2]);
      d.nodes[1].inputs = [0, 0];
      Graph.fromData(d).verify();
      const d2 = ifData();
      d2.nodes[0].outputs[0].type = T([7]);
      d2.nodes[0].blocks[1].nodes[0].outputs[0].type = { kind: 'Other', repr: 'Any' };
      Graph.fromData(d2).verify();
    });

    it('use before definition', () => {
      const g = Graph.fromData(linearReluData());
      const relu = byKind(g, 'aten::relu');
      relu.insertBefore(byKind(g, 'aten::linear'));
      assertVerifyError(g, relu, /input 0 %y is used before its definition by aten::linear/);
      const d = linearReluData(); // a forward reference straight from data
      d.nodes[0].inputs = [8];
      d.nodes[0].outputs[0].type = T();
      const gd = Graph.fromData(d);
      assertVerifyError(gd, gd.nodes()[0], /used before its definition/);
    });

    it('a value defined in a block used outside it', () => {
      const g = Graph.fromData(ifData());
      const mul = byKind(g, 'aten::mul');
      mul.replaceInput(1, valueNamed(g, 'a'));
      assertVerifyError(g, mul, /input 1 %a is defined inside a block of prim::If #0/);
      const g2 = Graph.fromData(ifData());
      g2.setOutputs([valueNamed(g2, 'b')]);
      assertVerifyError(g2, null, /graph output 0 %b is defined inside a block/);
      const g3 = Graph.fromData(ifData()); // a sibling block's value
      const ifn = byKind(g3, 'prim::If');
      ifn.blocks[1].setOutputs([valueNamed(g3, 'a')]);
      assertVerifyError(g3, ifn, /block 1 output 0 %a is defined inside a block of prim::If/);
    });

    it('use lists out of sync with inputs', () => {
      const g = Graph.fromData(linearReluData());
      const relu = byKind(g, 'aten::relu');
      const y = valueNamed(g, 'y');
      (y as unknown as { _uses: unknown[] })._uses = [];
      assertVerifyError(g, relu, /use list of %y lacks input 0/);

      const g2 = Graph.fromData(linearReluData());
      const add = byKind(g2, 'aten::add');
      (valueNamed(g2, 'y') as unknown as { _uses: unknown[] })._uses.push({ node: add, index: 1 });
      assertVerifyError(g2, add, /use list of %y names input 1, which holds another value/);

      const g3 = Graph.fromData(linearReluData());
      const relu3 = byKind(g3, 'aten::relu');
      const y3 = valueNamed(g3, 'y') as unknown as { _uses: unknown[] };
      y3._uses.push({ node: relu3, index: 0 });
      assertVerifyError(g3, relu3, /records input 0 twice/);

      const g4 = Graph.fromData(linearReluData());
      const stray = g4.create('aten::abs', [valueNamed(g4, 'y')], [T()]); // never inserted
      assert.equal(stray.owningBlock, null);
      assertVerifyError(g4, byKind(g4, 'aten::linear'), /%y lists a use by aten::abs, which is not in the graph/);
    });

    it('dangling uses', () => {
      const g = Graph.fromData(linearReluData());
      const tmp = g.createNode('aten::zeros_like', [g.inputs[1]], [T()]);
      const v = tmp.output;
      tmp.destroy();
      const user = g.createNode('aten::neg', [v], [T()]);
      assertVerifyError(g, user, /input 0 %\d+ is not defined in this graph \(dangling\)/);
      const g2 = Graph.fromData(ifData());
      const ifn = byKind(g2, 'prim::If');
      const gone = g2.createNode('aten::abs', [g2.inputs[0]], [T()]);
      gone.insertBefore(ifn);
      const ghost = gone.output;
      gone.destroy();
      ifn.blocks[0].setOutputs([ghost]);
      assertVerifyError(g2, ifn, /block 0 output 0 %\d+ is not defined in this graph/);
    });

    it('duplicated value ids', () => {
      const g = Graph.fromData(ifData());
      const neg = byKind(g, 'aten::neg');
      Object.assign(neg.output, { id: 3 }); // %a's id
      assertVerifyError(g, neg, /duplicate value id 3 \(%a and %b\)/);
    });

    it('prim::If structure and types', () => {
      const d = ifData();
      d.nodes[0].blocks.pop();
      const g = Graph.fromData(d);
      assertVerifyError(g, byKind(g, 'prim::If'), /prim::If has 1 blocks, expected 2/);

      const d2 = ifData();
      d2.nodes[0].blocks[1].outputs = [4, 0];
      const g2 = Graph.fromData(d2);
      assertVerifyError(g2, byKind(g2, 'prim::If'), /block 1 yields 2 values for 1 outputs/);

      const d3 = ifData();
      d3.nodes[0].blocks[0].nodes[0].outputs[0].type = IntType;
      const g3 = Graph.fromData(d3);
      assertVerifyError(g3, byKind(g3, 'prim::If'), /block 0 output 0 \(%a\) has type int, expected Tensor/);

      const d4 = ifData();
      d4.inputs[1].type = TensorType;
      const g4 = Graph.fromData(d4);
      assertVerifyError(g4, byKind(g4, 'prim::If'), /condition has type Tensor, expected bool/);
    });

    it('prim::Loop structure and types', () => {
      const d = loopData();
      d.nodes[2].blocks[0].outputs = [2, 9];
      const g = Graph.fromData(d);
      assertVerifyError(g, byKind(g, 'prim::Loop'), /loop body yields 2 values, expected 3/);

      const d2 = loopData();
      d2.nodes[2].outputs.pop();
      d2.outputs = [4];
      const g2 = Graph.fromData(d2);
      assertVerifyError(g2, byKind(g2, 'prim::Loop'), /carries 2 values but has 1 outputs/);

      const d3 = loopData();
      d3.nodes[2].blocks[0].inputs.pop();
      d3.nodes[2].blocks[0].nodes[1].inputs = [6, 6];
      const g3 = Graph.fromData(d3);
      assertVerifyError(g3, byKind(g3, 'prim::Loop'), /loop body has 2 inputs, expected 3/);

      const d4 = loopData();
      d4.nodes[2].blocks[0].outputs = [2, 9, 9];
      const g4 = Graph.fromData(d4);
      assertVerifyError(g4, byKind(g4, 'prim::Loop'), /loop body output 2 \(%acc.2\) has type Tensor, expected int/);

      const d5 = loopData();
      d5.nodes[2].inputs = [1, 3, 0, 3];
      const g5 = Graph.fromData(d5);
      assertVerifyError(g5, byKind(g5, 'prim::Loop'), /initial condition has type int, expected bool/);
    });

    it('schema-independent input checks', () => {
      const g = Graph.fromData(linearReluData());
      const x = g.inputs[1];
      const get = g.createNode('prim::GetAttr', [x], [T()], { name: { kind: 's', value: 'w' } });
      assertVerifyError(g, get, /input 0 \(%x\) is a Tensor\(float32, \[2, 4\]\), not an object/);

      const g2 = Graph.fromData(linearReluData());
      const tup = g2.createNode('prim::TupleConstruct', [g2.inputs[1]], [TupleType([TensorType, IntType])]);
      assertVerifyError(g2, tup, /1 inputs build a Tuple\[Tensor, int\]/);

      const g3 = Graph.fromData(linearReluData());
      const lst = g3.createNode('prim::ListConstruct', [g3.inputs[1], valueNamed(g3, 'big')], [ListType(TensorType)]);
      assertVerifyError(g3, lst, /input 1 \(%big\) has type int, expected Tensor/);

      const g4 = Graph.fromData(linearReluData());
      const t4 = g4.createNode('prim::TupleConstruct', [g4.inputs[1], valueNamed(g4, 'big')], [TupleType([TensorType, IntType])]).output;
      const unpack = g4.createNode('prim::TupleUnpack', [t4], [T(), FloatType]);
      assertVerifyError(g4, unpack, /output 1 \(%\d+\) has type int, expected float/);
      unpack.eraseOutput(1);
      assertVerifyError(g4, unpack, /1 outputs unpack a Tuple\[Tensor, int\]/);
    });
  });

  describe('print', () => {
    it('dumps one aligned line per node with types, attributes and module path', () => {
      const g = Graph.fromData(linearReluData({ dtype: 'float32', shape: [3] }));
      const text = g.print();
      const lines = text.split('\n');
      assert.equal(lines[0], 'graph(%self : Net, %x : Tensor(float32, [2, 4])):');
      const linear = lines.find((l) => l.includes('aten::linear'))!;
      assert.match(linear, /^ {2}%y : Tensor\(float32, \[2, 3\]\) += aten::linear\(%x, %weight, %bias\) +# fc {2}\(model\.py:12\)$/);
      assert.match(text, /%weight : Tensor\(float32, \[3, 4\]\) += prim::GetAttr\[name="weight"\]\(%self\) +# fc\n/);
      assert.match(text, /%big : int += prim::Constant\[value=9007199254740993\]\(\)/);
      assert.match(text, /%ninf : float += prim::Constant\[value=-inf\]\(\)/);
      assert.match(text, /prim::Constant\[value=<Tensor float32 \[3\]>\]\(\)/);
      assert.match(text, /prim::Constant\[value=\[-1, 9007199254740993\]\]\(\)/);
      assert.equal(lines.at(-2), '  return (%out)');
      // the "=" column lines up across node rows
      const eqCols = new Set(lines.filter((l) => l.includes(' = ')).map((l) => l.indexOf(' = ')));
      assert.equal(eqCols.size, 1);
      assert.doesNotMatch(g.print({ tensorDetails: false }), /float32, \[2/);
      assert.doesNotMatch(g.print({ showSource: false }), /model\.py/);
    });

    it('indents nested blocks', () => {
      const text = Graph.fromData(loopData()).print();
      assert.match(text, /\n {2}%acc : Tensor, %count : int += prim::Loop\(%n, %true, %x, %zero\)\n/);
      assert.match(text, /\n {4}block0\(%i : int, %acc\.1 : Tensor, %count\.1 : int\):\n {6}%acc\.2 : Tensor += aten::mul\(%acc\.1, %x\)\n/);
      assert.match(text, /\n {6}-> \(%true, %acc\.2, %count\.2\)\n {2}return \(%acc, %count\)\n$/);
    });

    it('disambiguates clashing debug names', () => {
      const g = new Graph();
      const a = g.addInput(IntType, 'v');
      const b = g.createNode('aten::neg', [a], [IntType], {}, { outputNames: ['v'] }).output;
      g.registerOutput(b);
      assert.match(g.print(), /%v#1 : int += aten::neg\(%v#0\)/);
    });
  });

  describe('serialization', () => {
    it('toData inverts fromData exactly', () => {
      for (const make of [linearReluData, ifData, loopData]) {
        const d = make();
        assert.deepStrictEqual(Graph.fromData(d).toData(), d);
      }
    });

    it('toData after edits reflects them and shares nothing mutable', () => {
      const d = linearReluData();
      const g = Graph.fromData(d);
      const data = g.toData();
      (data.nodes[0].attrs.name as { value: string }).value = 'changed';
      data.nodes[0].scope![1].path = 'changed';
      (data.inputs[1].type as { shape: number[] }).shape[0] = 99;
      assert.equal(g.nodes()[0].attr('name'), 'weight');
      assert.equal(g.nodes()[0].modulePath, 'fc');
      assert.deepEqual(tensorShape(g.inputs[1].type), [2, 4]);
      d.nodes[2].attrs.extra = { kind: 'i', value: 1n };
      assert.equal(g.nodes()[2].attr('extra'), undefined, 'fromData copied its input');
      // the tensor handle itself is shared, by identity
      const handle = { dtype: 'float32' as const, shape: [3] };
      assert.equal(Graph.fromData(linearReluData(handle)).toData().nodes[8].attrs.value.value, handle);
    });

    it('JSON round trip with BigInt, -inf and a tensor side table', () => {
      const handle = { dtype: 'float32' as const, shape: [3] };
      const d = linearReluData(handle);
      const g = Graph.fromData(d);
      const tensors: TensorHandleLike[] = [];
      const text = JSON.stringify(g.toJSON({ tensors }));
      assert.ok(text.includes('{"$bigint":"9007199254740993"}'));
      assert.ok(text.includes('{"$float":"-Infinity"}'));
      assert.ok(text.includes('{"$tensor":0}'));
      assert.deepEqual(tensors, [handle]);
      assert.equal(tensors[0], handle);
      const back = Graph.fromJSON(text, { tensors });
      assert.deepStrictEqual(back.toData(), d);
      assert.equal(back.toData().nodes[8].attrs.value.value, handle);
      assert.throws(() => Graph.fromJSON(text), /tensor 0 is not in the side table/);
      assert.throws(() => Graph.fromJSON('{"graph": {}}'), /expected format/);
    });

    it('JSON.stringify(graph) works and tensors become placeholders without a side table', () => {
      const g = Graph.fromData(linearReluData());
      const text = JSON.stringify(g);
      assert.ok(text.includes('{"$tensor":null,"dtype":"float32","shape":[3]}'));
      const back = Graph.fromJSON(text);
      const t = back.toData().nodes[8].attrs.value.value;
      assert.ok(isTensorPlaceholder(t));
      assert.deepEqual([(t as TensorPlaceholder).dtype, (t as TensorPlaceholder).shape], ['float32', [3]]);
      const expected = linearReluData(new TensorPlaceholder('float32', [3]));
      assert.deepStrictEqual(back.toData(), expected);
      for (const make of [ifData, loopData]) assert.deepStrictEqual(Graph.fromJSON(JSON.stringify(Graph.fromData(make()))).toData(), make());
    });

    it('round-trips ival attributes and -0/NaN floats', () => {
      const g = new Graph();
      const handle = { dtype: 'int64' as const, shape: [] };
      g.createNode('prim::Constant', [], [TupleType([IntType, TensorType])], {
        value: { kind: 'ival', value: { type: 'tuple', items: [{ type: 'int', value: -BIG }, { type: 'tensor', tensor: handle }] } },
      });
      g.createNode('prim::Constant', [], [ListType(FloatType)], { value: { kind: 'fs', value: [-0, NaN, Infinity] } });
      const tensors: TensorHandleLike[] = [];
      const back = Graph.fromJSON(JSON.stringify(g.toJSON({ tensors })), { tensors });
      assert.deepStrictEqual(back.toData(), g.toData());
      assert.deepStrictEqual(back.nodes()[0].constantValue(), [-BIG, handle]);
      assert.ok(Object.is((back.nodes()[1].constantValue() as number[])[0], -0));
      assert.match(g.print(), /value=\(-9007199254740993, <Tensor int64 \[\]>\)/);
    });
  });

  describe('clone', () => {
    it('copies everything and shares nothing mutable', () => {
      const g = Graph.fromData(loopData());
      g.allNodes()[2].meta.flops = 42;
      const c = g.clone();
      assert.deepStrictEqual(c.toData(), g.toData());
      assert.equal(c.allNodes()[2].meta.flops, 42);
      assert.notEqual(c.inputs[0], g.inputs[0]);
      assert.equal(c.inputs[0].graph, c);
      c.verify();
      // mutate the clone: the original is untouched
      c.allNodes()[2].meta.flops = 0;
      c.allNodes()[0].attrs.value = { kind: 'i', value: 0n };
      const extra = c.createNode('aten::neg', [c.inputs[0]], [T()]);
      c.registerOutput(extra.output);
      assert.ok(extra.output.id >= 11, 'fresh ids continue past the copied ones');
      assert.equal(g.allNodes()[2].meta.flops, 42);
      assert.equal(g.allNodes()[0].constantValue(), true);
      assert.equal(g.outputs.length, 2);
      assert.deepEqual(useList(g.inputs[0]), ['prim::Loop:2', 'aten::mul:1']);
      assert.deepStrictEqual(g.toData(), loopData());
    });

    it('carries what is known about graph and block inputs; a clone writes only its own', () => {
      const g = Graph.fromData(loopData());
      const x: ValueInfo = { kind: 'Tensor', shape: [2], strides: [1], dtype: 'float32', bytes: 8, storageBytes: 8 };
      setValueInfo(g.inputs[0], x);
      const loopParam = g.allBlocks()[1].inputs[0];
      setValueInfo(loopParam, { kind: 'Int', value: 3 });
      const c = g.clone();
      assert.deepEqual(valueInfo(c.inputs[0]), x);
      assert.deepEqual(valueInfo(c.allBlocks()[1].inputs[0]), { kind: 'Int', value: 3 });
      setValueInfo(c.inputs[0], { kind: 'None' });
      assert.deepEqual(valueInfo(g.inputs[0]), x);
      clearValueInfo(c);
      assert.equal(valueInfo(c.inputs[0]), undefined);
      assert.deepEqual(valueInfo(g.allBlocks()[1].inputs[0]), { kind: 'Int', value: 3 });
    });
  });
});
