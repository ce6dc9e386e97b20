// recognizeWrittenOutOps (lib/transforms/written-out-ops.ts) on hand-built arithmetic (no
// libtorch): GELU (tanh and erf forms), SiLU and RMSNorm become one ATen op; near misses stay.
import { strict as assert } from 'assert';
import { constantOf, constOf } from '../../lib/core/constants';
import type { Value } from '../../lib/core/ir';
import { recognizeWrittenOutOps } from '../../lib/transforms/written-out-ops';
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

describe('recognizeWrittenOutOps', () => {
  it('GELU in the tanh form becomes aten::gelu(x, "tanh")', () => {
    const b = new GB();
    const x = b.input('x', [2, 8]);
    const y = b.relu(newGelu(b, x));
    b.out(y);
    assert.deepEqual(recognizeWrittenOutOps(b.g), { 'GELU, tanh form': 1 });
    assert.deepEqual(recognized(y, x), ['aten::gelu', 'tanh']);
    assert.deepEqual(ops(b), ['aten::gelu', 'aten::relu'], 'the arithmetic is gone');
  });

  it('GELU in the erf form (operands of mul and add either way round) becomes aten::gelu(x, "none")', () => {
    const b = new GB();
    const x = b.input('x', [2, 8]);
    const onePlus = b.unary('aten::add', b.unary('aten::erf', b.divScalar(x, Math.SQRT2)), b.float(1), b.int(1));
    const y = b.relu(b.binary('aten::mul', onePlus, b.mulScalar(x, 0.5)));
    b.out(y, b.relu(erfGelu(b, x)));
    assert.deepEqual(recognizeWrittenOutOps(b.g), { 'GELU, erf form': 2 });
    assert.deepEqual(recognized(y, x), ['aten::gelu', 'none']);
    assert.deepEqual(ops(b), ['aten::gelu', 'aten::relu', 'aten::gelu', 'aten::relu']);
  });

  it('x * sigmoid(x) becomes aten::silu(x)', () => {
    const b = new GB();
    const x = b.input('x', [2, 8]);
    const y = b.relu(b.binary('aten::mul', b.unary('aten::sigmoid', x), x));
    b.out(y);
    assert.deepEqual(recognizeWrittenOutOps(b.g), { SiLU: 1 });
    assert.deepEqual(recognized(y, x), ['aten::silu']);
  });

  it('near misses stay: a wrong constant, x * sigmoid(another tensor), an intermediate read elsewhere', () => {
    const b = new GB();
    const x = b.input('x', [2, 8]), z = b.input('z', [2, 8]);
    const sig = b.unary('aten::sigmoid', x);
    b.out(newGelu(b, x, 0.04), b.binary('aten::mul', x, b.unary('aten::sigmoid', z)), b.binary('aten::mul', x, sig), sig);
    const before = b.text();
    assert.deepEqual(recognizeWrittenOutOps(b.g), {});
    assert.equal(b.text(), before);
  });

  /** x * rsqrt(mean(x^2, -1, keepdim) + eps) (or x / sqrt(...)), times w when given: LlamaRMSNorm / T5LayerNorm. */
  function rmsNorm(b: GB, x: Value, o: { w?: Value; eps?: number; dim?: number; keepdim?: boolean; div?: boolean; square?: 'pow' | 'mul' } = {}): Value {
    const sq = o.square === 'mul' ? b.binary('aten::mul', x, x) : b.unary('aten::pow', x, b.int(2));
    const s = b.shape(x);
    const keep = o.keepdim ?? true;
    const dim = o.dim ?? -1;
    const d = dim < 0 ? s.length + dim : dim;
    const ms = b.fresh('aten::mean', [sq, b.ints([dim]), b.bool(keep), b.none()], keep ? s.map((n, i) => (i === d ? 1 : n)) : s.filter((_, i) => i !== d));
    const plus = b.unary('aten::add', ms, b.float(o.eps ?? 1e-6), b.int(1));
    const normed = o.div ? b.binary('aten::div', x, b.unary('aten::sqrt', plus)) : b.binary('aten::mul', x, b.unary('aten::rsqrt', plus));
    return o.w ? b.binary('aten::mul', o.w, normed) : normed;
  }

  it('RMSNorm written out (rsqrt or / sqrt, pow or x * x, with or without a weight) becomes aten::rms_norm(x, [H], w, eps)', () => {
    const b = new GB();
    const x = b.input('x', [2, 5, 8]);
    const w = b.weight('norm.weight', [8]);
    const llama = b.relu(rmsNorm(b, x, { w, eps: 1e-5 }));
    const t5 = b.relu(rmsNorm(b, x, { w, div: true, square: 'mul' }));
    const bare = b.relu(rmsNorm(b, x, { eps: 1e-6 }));
    b.out(llama, t5, bare);
    assert.deepEqual(recognizeWrittenOutOps(b.g), { RMSNorm: 2, 'RMSNorm (no weight)': 1 });
    const args = (y: Value) => { const n = y.node!.inputs[0].node!; return [n.kind, n.inputs[0] === x, ...n.inputs.slice(1).map((v) => (v === w ? 'w' : v.node?.kind === 'prim::ListConstruct' ? v.node.inputs.map((i) => constantOf(i)) : constantOf(v)))]; };
    assert.deepEqual(args(llama), ['aten::rms_norm', true, [8n], 'w', 1e-5]);
    assert.deepEqual(args(t5), ['aten::rms_norm', true, [8n], 'w', 1e-6]);
    assert.deepEqual(args(bare), ['aten::rms_norm', true, [8n], null, 1e-6]);
    assert.deepEqual(ops(b).filter((k) => k !== 'prim::GetAttr' && k !== 'prim::ListConstruct'),
      ['aten::rms_norm', 'aten::relu', 'aten::rms_norm', 'aten::relu', 'aten::rms_norm', 'aten::relu']);
  });

  it('RMSNorm near misses stay: a mean over another dim or without keepdim, a weight not of the last dim, a square read elsewhere', () => {
    const b = new GB();
    const x = b.input('x', [2, 5, 8]);
    const wrong = b.weight('w5', [5]);
    const sq = b.unary('aten::pow', x, b.int(2));
    const ms = b.fresh('aten::mean', [sq, b.ints([-1]), b.bool(true), b.none()], [2, 5, 1]);
    const shared = b.binary('aten::mul', x, b.unary('aten::rsqrt', b.unary('aten::add', ms, b.float(1e-6), b.int(1))));
    b.out(rmsNorm(b, x, { dim: 1 }), rmsNorm(b, x, { keepdim: false, dim: 0 }), b.binary('aten::mul', b.weight('w', [8]), shared), sq,
      b.binary('aten::mul', wrong, rmsNorm(b, b.input('y', [2, 5, 8]), {})));
    const found = recognizeWrittenOutOps(b.g);
    assert.deepEqual(found, { 'RMSNorm (no weight)': 1 }, 'only the unweighted RMSNorm inside the wrongly weighted one');
  });
});
