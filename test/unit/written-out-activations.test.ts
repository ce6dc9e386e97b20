// recognizeWrittenOutActivations (lib/transforms/written-out-activations.ts) on hand-built
// arithmetic (no libtorch): GELU (tanh and erf forms) and SiLU become one ATen op; near misses stay.
import { strict as assert } from 'assert';
import { constOf } from '../../lib/core/constants';
import type { Value } from '../../lib/core/ir';
import { recognizeWrittenOutActivations } from '../../lib/transforms/written-out-activations';
import { GB } from '../support/graph-builder';

const C = Math.sqrt(2 / Math.PI);
const ops = (b: GB) => b.g.nodes().map((n) => n.kind).filter((k) => k !== 'prim::Constant');

/** 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + k * x^3))), as transformers' NewGELU writes it. */
function newGelu(b: GB, x: Value, k = 0.044715): Value {
  const cube = b.unary('aten::pow', x, b.int(3));
  const inner = b.mulScalar(b.add(x, b.mulScalar(cube, k)), C);
  const onePlus = b.unary('aten::add', b.unary('aten::tanh', inner), b.float(1), b.int(1));
  return b.binary('aten::mul', b.mulScalar(x, 0.5), onePlus);
}

/** x * 0.5 * (1 + erf(x / sqrt(2))). */
function erfGelu(b: GB, x: Value): Value {
  const onePlus = b.unary('aten::add', b.unary('aten::erf', b.divScalar(x, Math.SQRT2)), b.float(1), b.int(1));
  return b.binary('aten::mul', b.mulScalar(x, 0.5), onePlus);
}

/** The one op that reads x and feeds `user`, with its arguments after x. */
function recognized(user: Value, x: Value): [string, ...unknown[]] {
  const n = user.node!.inputs[0].node!;
  assert.ok(n.inputs[0] === x, `${n.kind} reads x`);
  return [n.kind, ...n.inputs.slice(1).map((v) => constOf(v))];
}

describe('recognizeWrittenOutActivations', () => {
  it('GELU in the tanh form becomes aten::gelu(x, "tanh")', () => {
    const b = new GB();
    const x = b.input('x', [2, 8]);
    const y = b.relu(newGelu(b, x));
    b.out(y);
    assert.deepEqual(recognizeWrittenOutActivations(b.g), { 'GELU, tanh form': 1 });
    assert.deepEqual(recognized(y, x), ['aten::gelu', 'tanh']);
    assert.deepEqual(ops(b), ['aten::gelu', 'aten::relu'], 'the arithmetic is gone');
  });

  it('GELU in the erf form (operands of mul and add either way round) becomes aten::gelu(x, "none")', () => {
    const b = new GB();
    const x = b.input('x', [2, 8]);
    const onePlus = b.unary('aten::add', b.unary('aten::erf', b.divScalar(x, Math.SQRT2)), b.float(1), b.int(1));
    const y = b.relu(b.binary('aten::mul', onePlus, b.mulScalar(x, 0.5)));
    b.out(y, b.relu(erfGelu(b, x)));
    assert.deepEqual(recognizeWrittenOutActivations(b.g), { 'GELU, erf form': 2 });
    assert.deepEqual(recognized(y, x), ['aten::gelu', 'none']);
    assert.deepEqual(ops(b), ['aten::gelu', 'aten::relu', 'aten::gelu', 'aten::relu']);
  });

  it('x * sigmoid(x) becomes aten::silu(x)', () => {
    const b = new GB();
    const x = b.input('x', [2, 8]);
    const y = b.relu(b.binary('aten::mul', b.unary('aten::sigmoid', x), x));
    b.out(y);
    assert.deepEqual(recognizeWrittenOutActivations(b.g), { SiLU: 1 });
    assert.deepEqual(recognized(y, x), ['aten::silu']);
  });

  it('near misses stay: a wrong constant, x * sigmoid(another tensor), an intermediate read elsewhere', () => {
    const b = new GB();
    const x = b.input('x', [2, 8]), z = b.input('z', [2, 8]);
    const sig = b.unary('aten::sigmoid', x);
    b.out(newGelu(b, x, 0.04), b.binary('aten::mul', x, b.unary('aten::sigmoid', z)), b.binary('aten::mul', x, sig), sig);
    const before = b.text();
    assert.deepEqual(recognizeWrittenOutActivations(b.g), {});
    assert.equal(b.text(), before);
  });
});
